"""standalone-trainer under real signals: whatever their timing, the process ends with a
terminal state in progress.json, written whole.

Each case is a real trainer process (the tiny model, on the CPU). Signals sent from inside a
write come from the child itself: its ``os.fsync`` (called by every write that must be durable:
the first state and every terminal one) sends them, to itself, in the middle of that write.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.trainer.job_files import read_progress

CHILD = """
import json, os, signal, sys
from trainer.cli import run

plan = json.loads(os.environ["SIGNAL_PLAN"])  # {status: [signal names]}
fsync = os.fsync

def fsync_then_signal(fd):
    path = os.readlink(f"/proc/self/fd/{fd}")
    if path.endswith(".tmp"):  # the temp file of a write of progress.json
        with open(path) as f:
            status = json.load(f)["status"]
        for name in plan.pop(status, []):
            os.kill(os.getpid(), signal.Signals[name])
    return fsync(fd)

os.fsync = fsync_then_signal

if "init" in plan:  # signals sent as soon as the callback is made, before its guard opens
    import trainer.callback

    init = trainer.callback.ProgressCallback.__init__

    def init_then_signal(self, *args, **kwargs):
        init(self, *args, **kwargs)
        for name in plan.pop("init"):
            os.kill(os.getpid(), signal.Signals[name])

    trainer.callback.ProgressCallback.__init__ = init_then_signal
run(sys.argv[1:])
"""


def trainer(
    root: Path, *args: str, plan: dict[str, list[str]] | None = None
) -> subprocess.Popen[str]:
    env = {**os.environ, "SIGNAL_PLAN": json.dumps(plan or {})}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, "--jobs-root", str(root), "--job-id", "j", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def ended(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    try:
        _, stderr = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, stderr


def final_state(root: Path) -> dict[str, object]:
    job = root / "j"
    names = {p.name for p in job.iterdir()}
    assert "progress.json" in names and names <= {"progress.json", "metrics.jsonl"}  # no temp file
    return read_progress(job)  # whole, or this fails


@pytest.mark.parametrize(
    ("plan", "extra", "code", "status", "said"),
    [
        pytest.param(
            {"completed": ["SIGTERM"]},
            [],
            0,
            "completed",
            "completed (SIGTERM arrived as training finished)",
            id="SIGTERM-inside-the-write-of-completed",
        ),
        pytest.param(
            {"completed": ["SIGTERM", "SIGINT", "SIGTERM", "SIGINT", "SIGTERM"]},
            [],
            0,
            "completed",
            "completed (SIGTERM, SIGINT, SIGTERM, SIGINT, SIGTERM arrived as training finished)",
            id="a-burst-inside-the-write-of-completed",
        ),
        pytest.param(
            {"running": ["SIGTERM"], "cancelled": ["SIGINT", "SIGTERM"]},
            [],
            143,
            "cancelled",
            "cancelled by SIGTERM; SIGINT, SIGTERM while it stopped: ignored",
            id="SIGTERM-inside-the-first-write-then-two-inside-the-write-of-cancelled",
        ),
        pytest.param(
            {"init": ["SIGTERM"]},
            [],
            143,
            "cancelled",
            "job j: cancelled by SIGTERM",
            id="SIGTERM-between-the-callback-and-its-guard",
        ),
        pytest.param(
            {"failed": ["SIGTERM"]},
            ["--fail-at-step", "2"],
            1,
            "failed",
            "job j: failed: injected failure at step 2",
            id="SIGTERM-inside-the-write-of-failed",
        ),
    ],
)
def test_a_signal_inside_a_write_does_not_cut_it(
    tmp_path: Path,
    plan: dict[str, list[str]],
    extra: list[str],
    code: int,
    status: str,
    said: str,
) -> None:
    code_seen, stderr = ended(trainer(tmp_path, "--max-steps", "3", *extra, plan=plan))
    assert code_seen == code, stderr[-3000:]
    assert final_state(tmp_path)["status"] == status
    assert said in stderr
    if status != "failed":
        assert "Traceback" not in stderr, stderr[-3000:]


def test_a_signal_while_torch_loads_leaves_cancelled(tmp_path: Path) -> None:
    """Before the job has begun (torch and transformers take seconds to import), a signal
    still ends it with ``cancelled`` in progress.json, and one line."""
    process = trainer(tmp_path, "--max-steps", "3")
    deadline = time.monotonic() + 30
    while not loading_torch(process.pid):
        assert process.poll() is None and time.monotonic() < deadline, "torch never loaded"
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    code, stderr = ended(process)
    assert code == 143, stderr[-3000:]
    assert final_state(tmp_path)["status"] == "cancelled"
    assert "job j: cancelled by SIGTERM before it began" in stderr
    assert "Traceback" not in stderr, stderr[-3000:]


def loading_torch(pid: int) -> bool:
    """Whether the process has begun to load torch (its libraries are mapped): it has read its
    job by then, and torch and transformers take a second or more to finish loading. (Before
    its exec, the process is a fork of this one, which has torch: its command line tells.)"""
    proc = Path(f"/proc/{pid}")
    try:
        return (
            b"--job-id" in (proc / "cmdline").read_bytes()
            and b"libtorch" in (proc / "maps").read_bytes()
        )
    except OSError:
        return False


def current_step(root: Path) -> int:
    try:
        step = json.loads((root / "j" / "progress.json").read_text()).get("current_step")
    except (OSError, ValueError):
        return 0
    return step if isinstance(step, int) else 0


def test_signals_sent_together_mid_run_end_it_cancelled(tmp_path: Path) -> None:
    """Two signals 0 ms apart, a burst of ten, and pairs a few ms apart (the second one lands
    while the first is stopping the run), at different steps, in runs side by side: each run
    ends cancelled by the signal its log names, its progress.json whole."""
    term, interrupt = signal.SIGTERM, signal.SIGINT
    plans = [  # (at step, signals, seconds between two)
        (1, [term, term], 0.0),
        (5, [term, interrupt] * 5, 0.0),
        (2, [term, term], 0.003),
        (4, [interrupt, interrupt], 0.006),
    ]
    args = ["--max-steps", "100000", "--progress-interval", "0.01", "--logging-steps", "1"]
    runs = [(tmp_path / f"run{n}", trainer(tmp_path / f"run{n}", *args)) for n in range(len(plans))]
    try:
        waiting = set(range(len(runs)))
        deadline = time.monotonic() + 120
        while waiting:
            for n in sorted(waiting):
                root, process = runs[n]
                at_step, signals, gap = plans[n]
                assert process.poll() is None, process.communicate()[1][-3000:]
                if current_step(root) >= at_step:
                    for k, signum in enumerate(signals):
                        if k and gap:
                            time.sleep(gap)
                        process.send_signal(signum)
                    waiting.discard(n)
            assert time.monotonic() < deadline, "training never reached its step"
            time.sleep(0.005)
        for (root, process), (_, signals, _) in zip(runs, plans, strict=True):
            code, stderr = ended(process, timeout=60)
            assert final_state(root)["status"] == "cancelled"
            # Signals pending together are handled lowest number first, not in the order sent:
            # the one that cancelled the run is the one the log names, and the exit status.
            said = re.search(r"cancelled by (SIG[A-Z]+)", stderr)
            assert said, stderr[-3000:]
            first = signal.Signals[said[1]]
            assert first in signals and code == 128 + first.value, stderr[-3000:]
            assert "Traceback" not in stderr, stderr[-3000:]
    finally:
        for _, process in runs:
            process.kill()
            process.wait()
