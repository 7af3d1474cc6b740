"""--event-loop: uvloop when installed (the fast extra), asyncio's own loop otherwise."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from sidecar.core.protocol import JOB_COMPLETE
from sidecar.server.cli import parse_settings
from sidecar.server.event_loop import LoopUnavailable, loop_factory
from tests.helpers import write_atomic
from tests.sidecar.server.test_lifecycle import start


def test_auto_takes_uvloop_when_it_is_installed() -> None:
    import uvloop

    assert loop_factory("auto") == ("uvloop", uvloop.new_event_loop)
    assert loop_factory("asyncio") == ("asyncio", None)


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an absent package gives import
    assert loop_factory("auto") == ("asyncio", None)
    with pytest.raises(LoopUnavailable, match=r"progress-sidecar\[fast\]"):
        loop_factory("uvloop")


def test_asking_for_uvloop_without_it_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(["--root", str(tmp_path), "--event-loop", "uvloop"])
    assert exit_info.value.code == 2
    assert "--event-loop uvloop needs uvloop: pip install 'progress-sidecar[fast]'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_the_sidecar_serves_a_job_to_its_end_on_either_loop(
    tmp_path: Path, loop: str
) -> None:
    file = tmp_path / "j" / "progress.json"
    write_atomic(file, {"status": "running", "current_step": 1})
    process, url = await start(tmp_path, "--event-loop", loop)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{url}/ws/training/j") as ws,
        ):
            assert (await ws.receive_json(timeout=10))["current_step"] == 1
            write_atomic(file, {"status": "completed", "current_step": 2})
            last = await ws.receive_json(timeout=10)
            assert (last["type"], last["status"], last["current_step"]) == ("patch", "completed", 2)
            close = await ws.receive(timeout=10)
            assert (close.type, close.data) == (aiohttp.WSMsgType.CLOSE, JOB_COMPLETE.code)
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    assert process.stderr is not None
    assert f"event loop: {loop}" in (await process.stderr.read()).decode()
