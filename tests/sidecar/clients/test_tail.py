"""``progress-sidecar tail``: its lines, and the command itself as a real process against a real
sidecar process (or nothing listening)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from scripts.support.ports import free_port
from sidecar.clients.tail import main, one_decimal, outcome, render
from tests.conftest import StartSidecar
from tests.helpers import spawn_sidecar, stop_sidecar, unavailable, write_atomic

# The environment of the tail processes: no token unless a test gives one.
ENV = {name: value for name, value in os.environ.items() if name != "SIDECAR_TOKEN"}


def test_render_and_outcome() -> None:
    line = render(
        {"status": "running", "progress": 50.0, "current_step": 5, "total_steps": 10, "loss": 0.25,
         "eval_loss": 0.3, "samples_per_second": 12.34, "eta_seconds": 3725, "stalled": True}
    )  # fmt: skip
    assert line == (
        "running  [############------------]  50.0%  step 5/10  loss 0.2500  eval 0.3000"
        "  12.3 samples/s  ETA 1:02:05  STALLED"
    )
    assert render({"status": "pending"}) == "pending"
    assert outcome({"status": "completed", "final_loss": 0.1}) == (
        "completed: final loss 0.1000",
        0,
    )
    assert outcome({"status": "failed", "error": "OOM"}) == ("failed: OOM", 1)
    assert outcome({"status": "cancelled"}) == ("cancelled", 1)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "status",
                "progress",
                "current_step",
                "total_steps",
                "loss",
                "eval_loss",
                "error",
                "samples_per_second",
                "eta_seconds",
                "read_error",
                "final_loss",
                "stalled",
            ]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
            lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=2), c, max_size=2),
            max_leaves=4,
        ),
    )
)
@example({"status": "running\x1b]0;PWNED\x07\x1b[2J", "error": "\u202eevil\x9b", "eta_seconds": -5})
@example({"status": ["running"], "samples_per_second": 1e308, "current_step": 10**30})
def test_render_shows_any_state_without_a_terminal_control(state: dict[str, Any]) -> None:
    """Whoever writes a job's file may put anything in it: ``tail``'s lines never carry a
    character a terminal acts on (escape sequences could set its title or clear its screen),
    nor a bidi override, nor a number hundreds of digits long."""
    state = {**state, "complete": True}
    for line in (render(state), outcome(state)[0]):
        assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", line)
        assert all(len(word) < 260 for word in line.split())
    if isinstance(state.get("status"), str) and "\x1b" in state["status"]:
        assert render(state).startswith("running\ufffd]0;PWNED\ufffd\ufffd[2J")


# What the dashboard shows, `(value).toFixed(1)`, as node 20 prints it. Ties (x.x5) whose double
# is exact or just above go up, those just below go down: toFixed rounds the exact binary value,
# half away from zero.
DASHBOARD = [
    (33.25, "33.3"), (7.25, "7.3"), (10.75, "10.8"), (0.25, "0.3"), (0.05, "0.1"), (0.15, "0.1"),
    (0.35, "0.3"), (0.45, "0.5"), (1.45, "1.4"), (12.35, "12.3"), (12.45, "12.4"),
    (45.55, "45.5"), (50.05, "50.0"), (87.65, "87.7"), (99.95, "100.0"), (99.96, "100.0"),
    (33.3333, "33.3"), (66.6667, "66.7"), (0, "0.0"), (-0.0, "0.0"), (100, "100.0"),
]  # fmt: skip


def test_render_rounds_progress_as_the_dashboard_does() -> None:
    shown = [render({"status": "running", "progress": value}) for value, _ in DASHBOARD]
    assert [line.split("] ")[1] for line in shown] == [f"{text:>5}%" for _, text in DASHBOARD]


NODE_MISSING = "node is not installed (apt-get install nodejs); .ci/run installs it"


def require_node() -> str:
    """The path of ``node``; skips the test without it, or fails under CI."""
    path = shutil.which("node")
    if path is None:
        unavailable(NODE_MISSING)
    return path


def test_one_decimal_is_javascript_to_fixed() -> None:
    """Every hundredth from 0 to 100 (every tie) and random values as the trainer writes them
    (6 significant digits): the same text as node's toFixed(1)."""
    node_path = require_node()
    rng = random.Random(9)
    values = [k / 100 for k in range(10_001)]
    values += [float(f"{rng.uniform(0, 100):.6g}") for _ in range(5_000)]
    node = subprocess.run(
        [node_path, "-e", "const v = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
         "process.stdout.write(JSON.stringify(v.map((x) => x.toFixed(1))));"],
        input=json.dumps(values), capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    expected = json.loads(node.stdout)
    assert [v for v, js in zip(values, expected, strict=True) if one_decimal(v) != js] == []


@pytest.mark.parametrize(
    ("final", "code", "last_line"),
    [
        ({"status": "completed", "final_loss": 0.5}, 0, "j completed: final loss 0.5000"),
        ({"status": "failed", "error": "CUDA out of memory"}, 1, "j failed: CUDA out of memory"),
    ],
)
async def test_tail_command(
    jobs_root: Path, start_sidecar: StartSidecar, final: dict[str, Any], code: int, last_line: str
) -> None:
    file = jobs_root / "j" / "progress.json"
    write_atomic(
        file, {"status": "running", "progress": 10.0, "current_step": 1, "total_steps": 10}
    )
    sidecar = await start_sidecar()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "tail", "j", "--url", sidecar.url("/"),
        stdout=asyncio.subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    assert first.startswith("j  running  [##") and "step 1/10" in first
    write_atomic(file, {**final, "progress": 100.0})
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert await process.wait() == code
    assert out.decode().splitlines()[-1] == last_line


@pytest.fixture
async def sidecar_url(jobs_root: Path) -> AsyncIterator[str]:
    """A sidecar process on the jobs root; its URL."""
    process, host, port = await spawn_sidecar(jobs_root)
    try:
        yield f"http://{host}:{port}"
    finally:
        await stop_sidecar(process)


async def start_tail(*args: str, env: dict[str, str] = ENV) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "tail", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip


async def finish(process: asyncio.subprocess.Process, timeout: float) -> tuple[int, str, str]:
    """Its exit status, stdout and stderr; killed if it takes over ``timeout`` seconds."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"tail still running after {timeout} s") from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_tail_unknown_job_exits_1_at_once(sidecar_url: str) -> None:
    code, out, err = await finish(await start_tail("nope", "--url", sidecar_url), 10)
    assert (code, out, err) == (1, "", f"nope: no such job on {sidecar_url}\n")


async def test_tail_nothing_listening_exits_1_naming_the_url() -> None:
    port = free_port()
    started = time.monotonic()
    code, out, err = await finish(await start_tail("j", "--url", f"http://127.0.0.1:{port}"), 20)
    assert (code, out, err) == (
        1,
        "",
        f"j: cannot reach http://127.0.0.1:{port}: connection refused\n",
    )
    assert time.monotonic() - started < 12  # the default retry lasts 5 s


async def test_tail_url_without_a_scheme(jobs_root: Path, sidecar_url: str) -> None:
    """host:port is http://host:port; and the progress is the dashboard's 33.3, not 33.2."""
    write_atomic(
        jobs_root / "j" / "progress.json",
        {"status": "completed", "progress": 33.25, "final_loss": 0.5},
    )
    host_port = sidecar_url.removeprefix("http://")
    code, out, err = await finish(await start_tail("j", "--url", host_port), 10)
    assert (code, err) == (0, "")
    assert (
        out == "j  completed  [########----------------]  33.3%\nj completed: final loss 0.5000\n"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://x", "scheme 'ftp' not supported: use http or https"),
        ("http://", "no host"),
        ("not a url", "want http://host:port"),
    ],
)
async def test_tail_refuses_a_url_it_cannot_use(url: str, reason: str) -> None:
    code, out, err = await finish(await start_tail("j", "--url", url), 10)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        f"progress-sidecar tail: error: argument --url: invalid sidecar url {url!r}: {reason}"
    )


async def test_tail_without_the_token(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar(token="s3cret")
    url = sidecar.url("/").rstrip("/")
    code, out, err = await finish(await start_tail("j", "--url", url), 10)
    assert (code, out) == (1, "")
    assert err == f"j: unauthorized on {url}: it needs a token (--token, env SIDECAR_TOKEN)\n"


async def test_tail_wait_follows_a_job_that_appears(jobs_root: Path, sidecar_url: str) -> None:
    process = await start_tail("later", "--wait", "--url", sidecar_url)
    assert process.stderr is not None
    waiting = await asyncio.wait_for(process.stderr.readline(), 10)
    assert waiting.decode() == f"waiting for job later to appear on {sidecar_url}\n"
    file = jobs_root / "later" / "progress.json"
    write_atomic(file, {"status": "running", "progress": 10.0})
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 10)
    assert first.decode() == "later  running  [##----------------------]  10.0%\n"
    write_atomic(file, {"status": "completed", "progress": 100.0, "final_loss": 0.5})
    code, out, err = await finish(process, 10)
    assert (code, err) == (0, "")  # the waiting line was said once
    assert out.splitlines()[-1] == "later completed: final loss 0.5000"


@pytest.fixture
def sigint_not_ignored() -> Iterator[None]:
    """SIGINT as a terminal gives it: a suite started as a background job of a script has it
    ignored, and a child inherits that (Python then never raises KeyboardInterrupt in it)."""
    before = signal.getsignal(signal.SIGINT)
    if before is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("sigint_not_ignored")
async def test_tail_ctrl_c_exits_130_quietly(sidecar_url: str) -> None:
    process = await start_tail("later", "--wait", "--url", sidecar_url)
    assert process.stderr is not None
    await asyncio.wait_for(process.stderr.readline(), 10)  # waiting for job later...
    process.send_signal(signal.SIGINT)
    assert await finish(process, 10) == (130, "", "")


def test_tail_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in (
        "--url URL the sidecar: http[s]://host:port, or host:port (default: http://127.0.0.1:8765)",
        "--token TOKEN the sidecar's token (default: env SIDECAR_TOKEN)",
        "--wait wait for a job that does not exist yet (default: exit 1 at once)",
        "(default: 5)",
    ):
        assert shown in text
    assert "None" not in text


async def test_tail_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """``tail ... | head -c 1`` ends at tail's next line, without a BrokenPipeError traceback."""
    progress = tmp_path / "j" / "progress.json"
    write_atomic(progress, {"status": "running", "progress": 1.0})
    process, host, port = await spawn_sidecar(tmp_path)
    try:
        piped = await asyncio.create_subprocess_shell(
            f"{sys.executable} -m sidecar tail j --url http://{host}:{port} | head -c 1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        ended = asyncio.ensure_future(piped.communicate())
        for step in range(2, 200):  # new lines for tail to write, until it has stopped
            write_atomic(progress, {"status": "running", "progress": float(step)})
            done, _ = await asyncio.wait([ended], timeout=0.1)
            if done:
                break
        _out, err = await asyncio.wait_for(ended, 10)
    finally:
        await stop_sidecar(process)
    assert piped.returncode == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
