"""A jobs root one level off, in either direction, gets a hint: one warning line at start, and
``hint`` in ``/healthz`` (still 200 "ok"), until a job appears at the right level."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import wait_for, write_atomic
from tests.sidecar.server.test_cli import Running, start

RUNNING = {"status": "running"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        return response.status, await response.json()


async def log_of(running: Running) -> list[str]:
    """Stop the sidecar; its log lines."""
    running.process.terminate()
    assert await asyncio.wait_for(running.process.wait(), 5) == 0
    assert running.process.stderr is not None
    return (await running.process.stderr.read()).decode().splitlines()


def warnings_in(log: list[str]) -> list[str]:
    return [line.split(" WARNING ", 1)[1] for line in log if " WARNING " in line]


@pytest.mark.parametrize("folder", ["jobs", "2026-12-06"])
async def test_root_one_level_too_high_is_hinted_until_a_job_appears_at_its_level(
    tmp_path: Path, session: aiohttp.ClientSession, folder: str
) -> None:
    """``--root /data`` with ``/data/jobs/7f3a/progress.json`` (or a date folder between)."""
    root = tmp_path / "data"
    write_atomic(root / folder / "7f3a" / "progress.json", RUNNING)
    hint = (
        f"--root {root} looks one level too high: {root / folder / '7f3a' / 'progress.json'} "
        f"is a job's file; did you mean --root {root / folder}?"
    )
    running = await start("--root", str(root), "--rescan-interval", "0.1")
    try:
        status, health = await get(session, f"{running.url}/healthz")
        assert (status, health["status"], health["hint"]) == (200, "ok", hint)
        write_atomic(root / "j2" / "progress.json", RUNNING)

        async def hint_gone() -> bool:
            return "hint" not in (await get(session, f"{running.url}/healthz"))[1]

        await wait_for(hint_gone, what="the hint to go once a job lies at the root's level")
    finally:
        log = await log_of(running)
    assert warnings_in(log) == [f"sidecar.files.root_hint: {hint}"]
    assert any(f"the hint about --root {root} no longer applies" in line for line in log)


async def test_root_at_a_jobs_own_folder_is_hinted(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """``--root /x/job1``, which holds progress.json itself: no job, but a hint."""
    root = tmp_path / "x" / "job1"
    write_atomic(root / "progress.json", RUNNING)
    hint = (
        f"--root {root} holds progress.json itself: it looks like a job's own folder; did you "
        f"mean --root {tmp_path / 'x'}?"
    )
    running = await start("--root", str(root))
    try:
        status, health = await get(session, f"{running.url}/healthz")
        assert (status, health["status"], health["hint"]) == (200, "ok", hint)
        assert await get(session, f"{running.url}/api/jobs") == (200, {"jobs": []})
    finally:
        log = await log_of(running)
    assert warnings_in(log) == [f"sidecar.files.root_hint: {hint}"]


async def test_a_right_root_gets_no_hint(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """Jobs at the root's level, and a folder of other things beside them: no hint."""
    root = tmp_path / "jobs"
    write_atomic(root / "7f3a" / "progress.json", RUNNING)
    write_atomic(root / "archive" / "old" / "progress.json", RUNNING)
    running = await start("--root", str(root))
    try:
        status, health = await get(session, f"{running.url}/healthz")
        assert (status, health["status"], health["jobs"]) == (200, "ok", 2)
        assert "hint" not in health
    finally:
        log = await log_of(running)
    assert warnings_in(log) == []
