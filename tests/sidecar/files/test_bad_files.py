"""Bad progress files: no crash, no partial message, the last good state kept, one log line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.core.hub import JobHub
from sidecar.files.layout import JobLayout
from sidecar.files.watcher import FileWatcher
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic, write_in_place

GOOD = {"status": "running", "current_step": 1, "loss": 0.5}
# Short text in which lone surrogates (written by json.dumps as "\udXXX") are as likely as
# any other character.
HOSTILE_TEXT = st.lists(
    st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=5
).map("".join)


def fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def symlink_outside(path: Path) -> None:
    outside = path.parents[2] / "outside.json"
    outside.write_text('{"status": "completed", "secret": true}')
    path.unlink()
    path.symlink_to(outside)


def huge(path: Path) -> None:
    with open(path, "wb") as f:
        f.write(b'{"padding": "')
        f.write(b"x" * (50 << 20))
        f.write(b'"}')


BAD: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty": (lambda p: write_in_place(p, b""), "empty file"),
    "truncated": (
        lambda p: write_atomic(p, b'{"status": "runn'),
        "invalid json: Unterminated string",
    ),
    "list": (lambda p: write_atomic(p, b"[1, 2]"), "json is an array, not an object"),
    "number": (lambda p: write_atomic(p, b"42"), "json is a number, not an object"),
    "string": (lambda p: write_atomic(p, b'"running"'), "json is a string, not an object"),
    "50 MB": (huge, "file too large"),
    "deep": (lambda p: write_atomic(p, b"[" * 10_000 + b"]" * 10_000), "nesting too deep"),
    "utf-8": (lambda p: write_atomic(p, b'{"status": "\xff\xfe"}'), "not utf-8"),
    "symlink": (symlink_outside, "symlink not followed"),
    "fifo": (fifo, "not a regular file"),
    "deleted": (lambda p: p.unlink(), "progress file missing"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_file(
    case: str, jobs_root: Path, start_sidecar: StartSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    action, reason = BAD[case]
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, GOOD)
    sidecar = await start_sidecar()
    client = await sidecar.connect("j")
    await client.next()
    with caplog.at_level(logging.WARNING, logger="sidecar"):
        action(file)
        state = await client.until(lambda s: "read_error" in s, timeout=10)
    assert state["read_error"].startswith(reason)
    assert {k: state[k] for k in GOOD} == GOOD  # the last good state, kept
    status, body = await sidecar.get_json("/api/jobs/j")
    assert status == 200 and body["read_error"] == state["read_error"] and body["current_step"] == 1
    assert (await sidecar.get_json("/healthz"))[0] == 200  # the server did not block or fall
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("sidecar")]
    assert len(lines) == 1 and "job j" in lines[0] and reason in lines[0], lines
    assert all(json.loads(json.dumps(m)) == m for m in client.messages)
    # A good write again clears the error.
    if file.is_symlink() or (file.exists() and not file.is_file()):
        file.unlink()
    write_atomic(file, {**GOOD, "current_step": 2})
    state = await client.until(lambda s: s.get("current_step") == 2)
    assert "read_error" not in state


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | HOSTILE_TEXT,
            lambda c: st.lists(c, max_size=3) | st.dictionaries(HOSTILE_TEXT, c, max_size=3),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_bytes_keep_the_invariants(tmp_path: Path, data: bytes) -> None:
    """Whatever a file holds: no exception, a strict JSON state, the last good state kept."""
    asyncio.run(_check_bytes(tmp_path, data))


async def _check_bytes(root: Path, data: bytes) -> None:
    file = root / "j" / "progress.json"
    write_atomic(file, GOOD)
    hub = JobHub()
    watcher = FileWatcher(JobLayout(root, "{job_id}/progress.json"), hub.apply, origin="here")
    watcher.refresh("j")
    file.write_bytes(data)
    watcher.refresh("j")
    await wait_for(lambda: not watcher.jobs.retries, what="the re-reads to end")
    state = hub.get("j")
    version = hub.version("j")
    assert state is not None and version is not None
    # Strict JSON in strict UTF-8, always (json.loads of bytes would let a surrogate pass).
    json.loads(version.snapshot_frame().decode("utf-8"), parse_constant=_reject)
    try:  # the oracle: what a strict reader makes of the bytes
        parsed = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        assert state.read_error is None
    else:
        assert state.read_error is not None
        assert state.document == GOOD


def _reject(name: str) -> None:
    raise AssertionError(f"{name} in output")
