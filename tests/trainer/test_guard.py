"""guard(): the terminal state first; with signals=True, a cancelled run exits as a shell expects."""

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
from trainer import Cancelled, CancelledExit
from trainer.gpu import GpuMonitor
from trainer.job import JobProgress

DOC = Path(__file__).parents[2] / "docs" / "trainer.md"
DOC_JOBS_ROOT = "/srv/training/jobs"

# What the documented snippet expects to exist: a transformers.Trainer and a job id. Its
# training runs far longer than the test, which cancels it.
PRELUDE = """
import sys
from transformers import Trainer, TrainingArguments
from trainer.corpus import BlockDataset, default_corpus, load_texts
from trainer.model import build_tiny

job_id = "snippet"
texts = load_texts(default_corpus())
lm = build_tiny(texts)
trainer = Trainer(
    model=lm.model,
    args=TrainingArguments(
        output_dir=sys.argv[1], max_steps=100_000, per_device_train_batch_size=8,
        save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
    ),
    train_dataset=BlockDataset(lm.encode(texts), lm.block_size),
)
"""


class NoGpu(GpuMonitor):
    def __init__(self) -> None:
        super().__init__(nvml=None, cuda=None)
        self._started = True


def signalled(sent: signal.Signals) -> None:
    os.kill(os.getpid(), sent)
    sum(range(1000))  # the handler runs here, between two bytecodes


def documented_snippet() -> str:
    """The one snippet of docs/trainer.md that uses ``guard(signals=True)``, as printed."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    guarded = [block for block in blocks if "guard(signals=True)" in block]
    assert len(guarded) == 1, guarded
    assert DOC_JOBS_ROOT in guarded[0]
    return guarded[0]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("sent", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_documented_guard_exits_with_the_signals_status_in_one_line(
    tmp_path: Path, sent: signal.Signals, status: int
) -> None:
    """The snippet of docs/trainer.md, run as printed in a script with a real Trainer: a real
    SIGINT (SIGTERM) ends it with cancelled in progress.json, exit 130 (143) and one line on
    stderr, no traceback."""
    jobs = tmp_path / "jobs"
    script = PRELUDE + documented_snippet().replace(DOC_JOBS_ROOT, str(jobs))
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "out")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = jobs / "snippet" / "progress.json"
    try:
        deadline = time.monotonic() + 120
        while not (progress.exists() and json.loads(progress.read_text())["current_step"] > 0):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "no step was taken"
            time.sleep(0.05)
        process.send_signal(sent)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == status, stderr
    assert stderr.splitlines() == [f"job snippet: cancelled by {sent.name}"]
    assert read_progress(jobs / "snippet")["status"] == "cancelled"


def test_a_signal_under_the_guard_leaves_it_as_a_cancelled_exit(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """In the process itself: the guard's SystemExit is still a Cancelled, with the signal's
    name and the shell's status, after cancelled is written."""
    job = JobProgress(tmp_path / "j", gpu=NoGpu())
    job.start()
    with pytest.raises(CancelledExit) as raised, job.guard(signals=True):
        signalled(signal.SIGTERM)
    assert issubclass(CancelledExit, Cancelled) and issubclass(CancelledExit, SystemExit)
    assert (raised.value.code, str(raised.value)) == (143, "SIGTERM")
    assert read_progress(tmp_path / "j")["status"] == "cancelled"
    assert capfd.readouterr().err == "job j: cancelled by SIGTERM\n"


def test_a_cancelled_of_ones_own_passes_the_guard_as_it_is(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Only a signal's cancellation ends the process: a Cancelled raised by the script's own
    code is written as cancelled and goes on, not a SystemExit."""
    job = JobProgress(tmp_path / "j", gpu=NoGpu())
    with pytest.raises(Cancelled) as raised, job.guard(signals=True):
        raise Cancelled("enough")
    assert not isinstance(raised.value, SystemExit)
    assert read_progress(tmp_path / "j")["status"] == "cancelled"
    assert capfd.readouterr().err == ""


def test_a_failure_under_the_guard_is_written_with_its_error(tmp_path: Path) -> None:
    job = JobProgress(tmp_path / "j", gpu=NoGpu())
    with pytest.raises(ValueError, match="bad batch"), job.guard(signals=True):
        raise ValueError("bad batch")
    final = read_progress(tmp_path / "j")
    assert (final["status"], final["error"], final["final_loss"]) == (
        "failed",
        "ValueError: bad batch",
        None,  # no loss was logged
    )


def test_the_handlers_before_the_guard_are_back_after_it(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    job = JobProgress(tmp_path / "j", gpu=NoGpu())
    with pytest.raises(CancelledExit), job.guard(signals=True):
        signalled(signal.SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
