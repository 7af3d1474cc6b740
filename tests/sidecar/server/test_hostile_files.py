"""Files an attacker can write under the root stop nothing (issue 20, points 1 to 3): the bad
job shows what can be shown, every other job keeps updating, new jobs are still found, no
background task fails, and ``/healthz`` stays honest."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sidecar.core.codec import REPLACEMENT
from sidecar.files import watcher as watcher_module
from sidecar.server.keys import SUPERVISOR, WATCHER
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import StreamClient, wait_for, write_atomic
from tests.trainer.small_tmpfs import SmallTmpfs

SURROGATE_ERROR = b'{"status": "failed", "error": "cannot open /data/\\ud800.bin"}'


async def still_serving(sidecar: Sidecar, root: Path) -> None:
    """Another job's writes reach its client, a new job is found, and no task failed."""
    write_atomic(root / "control" / "progress.json", {"status": "running", "current_step": 0})
    await _wait_listed(sidecar, "control")
    client = await sidecar.connect("control")
    for step in range(1, 4):
        write_atomic(
            root / "control" / "progress.json", {"status": "running", "current_step": step}
        )
        await client.until(lambda s, step=step: s.get("current_step") == step)
    write_atomic(root / "later" / "progress.json", {"status": "running"})
    await _wait_listed(sidecar, "later")
    status, health = await sidecar.get_json("/healthz")
    assert status == 200 and health["status"] == "ok", health
    assert sum(sidecar.app[SUPERVISOR].restarts.values()) == 0


async def _wait_listed(sidecar: Sidecar, job_id: str) -> None:
    async def listed() -> bool:
        status, body = await sidecar.get_json("/api/jobs")
        assert status == 200, body
        return job_id in {job["job_id"] for job in body["jobs"]}

    await wait_for(listed, what=f"{job_id} in /api/jobs")


async def test_a_lone_surrogate_in_a_progress_file_is_shown_replaced(
    start_sidecar: StartSidecar, jobs_root: Path
) -> None:
    """Point 1: the escape the trainer writes for a path that is not UTF-8."""
    sidecar = await start_sidecar()
    (jobs_root / "bad").mkdir()
    (jobs_root / "bad" / "progress.json").write_bytes(SURROGATE_ERROR)
    await _wait_listed(sidecar, "bad")
    client = await sidecar.connect("bad")
    state = await client.until(lambda s: s["status"] == "failed")
    assert state["error"] == f"cannot open /data/{REPLACEMENT}.bin" and state["complete"] is True
    await still_serving(sidecar, jobs_root)
    status, body = await sidecar.get_json("/api/jobs/bad")
    assert status == 200 and body["error"] == f"cannot open /data/{REPLACEMENT}.bin"


async def test_a_lone_surrogate_in_a_followed_history_is_shown_replaced(
    start_sidecar: StartSidecar, jobs_root: Path
) -> None:
    """Point 1, in metrics.jsonl: a line appended while a client follows the history."""
    write_atomic(jobs_root / "bad" / "progress.json", {"status": "running"})
    (jobs_root / "bad" / "metrics.jsonl").write_bytes(b'{"step": 1, "loss": 2.0}\n')
    sidecar = await start_sidecar()
    client = await sidecar.connect("bad", "history=1")
    await wait_for_next(client, lambda: client.history is not None and len(client.history) == 1)
    with (jobs_root / "bad" / "metrics.jsonl").open("ab") as history:
        history.write(b'{"step": 2, "note": "\\udc80 at \\ud800"}\n')
    await wait_for_next(client, lambda: client.history is not None and len(client.history) == 2)
    assert client.history is not None
    assert client.history[1] == {"step": 2, "note": f"{REPLACEMENT} at {REPLACEMENT}"}
    status, body = await sidecar.get_json("/api/jobs/bad/history")
    assert status == 200 and body["entries"][1]["note"] == f"{REPLACEMENT} at {REPLACEMENT}"
    await still_serving(sidecar, jobs_root)


async def wait_for_next(client: StreamClient, condition: Callable[[], bool]) -> None:
    """Read the client's messages until ``condition`` holds (at most 20)."""
    for _ in range(20):
        if condition():
            return
        await client.next()
    raise AssertionError("condition never held")


@pytest.mark.parametrize("depth", [65, 500, 999])
async def test_a_deep_document_is_a_read_error_and_nothing_restarts(
    start_sidecar: StartSidecar, jobs_root: Path, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Point 2: deep enough to parse, too deep to walk: refused once, not a crash loop."""
    write_atomic(jobs_root / "deep" / "progress.json", {"status": "running", "current_step": 7})
    sidecar = await start_sidecar()
    client = await sidecar.connect("deep")
    await client.until(lambda s: s.get("current_step") == 7)
    with caplog.at_level(logging.INFO):
        write_atomic(jobs_root / "deep" / "progress.json", b'{"a":' * depth + b"1" + b"}" * depth)
        state = await client.until(lambda s: "read_error" in s)
        await still_serving(sidecar, jobs_root)
    assert state["read_error"] == "nesting too deep (over 64 levels)"
    assert state["current_step"] == 7  # the last good state stays
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"
    assert caplog.text.count("nesting too deep") == 1


@pytest.fixture
def tmpfs_root(tmp_path: Path) -> Iterator[Path]:
    """A jobs root on a tmpfs: it keeps file times past the year 9999 (ext4 stops at 2446)."""
    mounts = SmallTmpfs(tmp_path)
    try:
        yield mounts.mount(size_kib=1024)
    finally:
        mounts.unmount_all()


@pytest.mark.parametrize("with_timestamp", [True, False])
async def test_a_file_dated_past_the_year_9999_is_listed(
    start_sidecar: StartSidecar, tmpfs_root: Path, with_timestamp: bool
) -> None:
    """Point 3: ``touch -d @1e12``; with a ``timestamp`` field the list answered 500, without
    one the watcher died."""
    document = {"status": "running", "current_step": 1}
    if with_timestamp:
        document["timestamp"] = "2025-11-06T12:30:00Z"  # type: ignore[assignment]
    write_atomic(tmpfs_root / "future" / "progress.json", document)
    os.utime(tmpfs_root / "future" / "progress.json", (1e12, 1e12))
    os.utime(tmpfs_root / "future", (1e12, 1e12))
    (tmpfs_root / "future-pending").mkdir()
    os.utime(tmpfs_root / "future-pending", (-1e11, -1e11))
    sidecar = await start_sidecar(root=tmpfs_root)
    status, body = await sidecar.get_json("/api/jobs")
    assert status == 200
    jobs = {job["job_id"]: job for job in body["jobs"]}
    assert jobs["future"]["updated_at"] == "9999-12-31T23:59:59.000Z"
    assert jobs["future-pending"]["updated_at"] == "1970-01-01T00:00:00.000Z"
    client = await sidecar.connect("future")
    state = await client.until(lambda s: s.get("current_step") == 1)
    if not with_timestamp:
        assert state["timestamp"] == "9999-12-31T23:59:59.000Z"
    await still_serving(sidecar, tmpfs_root)


@pytest.mark.parametrize("when", ["before start", "while watching"])
async def test_a_name_that_is_not_utf8_under_the_root_stops_no_update(
    start_sidecar: StartSidecar,
    jobs_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    when: str,
) -> None:
    """Any byte string is a Linux file name; watchfiles' core cannot report one that is not
    UTF-8, and stops reporting anything once it meets one. The watcher polls meanwhile, tries
    inotify again, and goes back to it once the name is gone."""
    monkeypatch.setattr(watcher_module, "INOTIFY_RETRY", 0.3)
    bad = os.fsencode(jobs_root) + b"/\xff\xfe-job"
    if when == "before start":
        os.mkdir(bad)
    with caplog.at_level(logging.INFO):
        sidecar = await start_sidecar()
        if when == "while watching":
            await wait_for(lambda: sidecar.app[WATCHER].mode == "inotify", what="inotify")
            os.mkdir(bad)
            os.mkdir(bad + b"/\xed\xa0\x80")
        await wait_for(lambda: sidecar.app[WATCHER].mode == "polling", what="polling")
        await still_serving(sidecar, jobs_root)
        status, health = await sidecar.get_json("/healthz")
        assert status == 200
        assert (
            health["watcher_reason"]
            == "a name under the root is not utf-8: inotify cannot report it"
        )
        for name in os.listdir(bad):
            os.rmdir(os.path.join(bad, name))
        os.rmdir(bad)
        await wait_for(lambda: sidecar.app[WATCHER].mode == "inotify", what="inotify again")
        await still_serving(sidecar, jobs_root)
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"
    assert caplog.text.count(f"watching {jobs_root} by inotify failed") == 1
