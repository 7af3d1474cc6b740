"""What goes wrong around ProgressCallback is said once in the log, never raised into training."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tests.trainer.job_files import read_progress
from tests.trainer.small_tmpfs import SmallTmpfs
from tests.trainer.tiny_trainer import NoGpu, run_training
from trainer import ProgressCallback


def test_no_hook_raises_into_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An odd state (a NaN epoch) or a failing write is logged once per hook and kind; training
    goes on, and the next good call writes again."""
    callback = ProgressCallback(tmp_path / "j", min_interval=0, gpu=NoGpu())
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    state = TrainerState()
    state.epoch = math.nan
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_log(args, state, TrainerControl(), logs={"loss": 1.0})  # no ValueError
    assert "current_epoch" not in read_progress(tmp_path / "j")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    callback.writer.write = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="trainer"):
        for step in range(3):
            state.global_step = step
            callback.on_step_end(args, state, TrainerControl())
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "job j: progress callback's on_step_end failed (OSError: [Errno 28] No space left on "
        "device); training goes on (said once)"
    ]
    callback.writer.close()


def test_a_job_directory_name_the_sidecar_refuses_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = ProgressCallback(tmp_path / "my run", min_interval=0, gpu=NoGpu())
    with caplog.at_level(logging.WARNING, logger="trainer"):
        callback.start()
        callback.start()
    assert [r.getMessage() for r in caplog.records] == [
        "job directory name 'my run' is not a job id the sidecar accepts "
        "([A-Za-z0-9][A-Za-z0-9._-]{0,127}): progress-sidecar will not show this job"
    ]
    callback.finish("completed")


def test_an_odd_state_at_the_end_still_ends_the_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A trainer state whose figures cannot be read (no step count) costs the final state its
    figures, not its status."""
    callback = ProgressCallback(tmp_path / "j", min_interval=0, gpu=NoGpu())
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    state = TrainerState()
    callback.on_train_begin(args, state, TrainerControl())
    state.global_step = None  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="trainer"), callback.guard():
        callback.on_train_end(args, state, TrainerControl())
    final = read_progress(tmp_path / "j")
    assert (final["status"], callback.final_written) == ("completed", True)
    assert "progress callback's finish failed (TypeError" in caplog.records[0].getMessage()


class DeleteJobDirectory(TrainerCallback):
    def __init__(self, job_dir: Path, at_step: int) -> None:
        self.job_dir, self.at_step = job_dir, at_step

    def on_step_end(self, args: Any, state: TrainerState, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.at_step:
            shutil.rmtree(self.job_dir)


def test_a_job_directory_deleted_mid_run_comes_back_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job_dir = tmp_path / "jobs" / "j"
    with caplog.at_level(logging.WARNING, logger="trainer"):
        run_training(job_dir, max_steps=12, callbacks=[DeleteJobDirectory(job_dir, at_step=5)])
    final = read_progress(job_dir)
    assert (final["status"], final["current_step"]) == ("completed", 12)
    history = [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "loss" in h] == [6, 8, 10, 12]
    said = [r.getMessage() for r in caplog.records if r.name.startswith("trainer")]
    assert len(said) == 1 and "was deleted during the run" in said[0]


def test_a_final_state_that_cannot_be_written_is_said_in_one_error_line(
    small_tmpfs: SmallTmpfs, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk full from the start: nothing can be written; training is not hurt, and the end
    says, once and at error level, that progress.json does not hold the final state."""
    disk = small_tmpfs.mount(size_kib=64)
    small_tmpfs.fill(disk)
    callback = ProgressCallback(disk / "j", min_interval=0, gpu=NoGpu())
    callback.writer.retry_after = 0
    with caplog.at_level(logging.WARNING, logger="trainer"):
        callback.start()
        assert not callback.finish("completed")
        assert not callback.finish("completed")  # asked again: said no more
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"job j: its final state (completed) could not be written to {disk}/j/progress.json: "
        f"[Errno 28] No space left on device; the file was never written"
    ]
    assert (callback.ended, callback.final_written) == ("completed", False)


class FailingGpu(NoGpu):
    def sample(self) -> dict[str, float | int | None]:
        raise RuntimeError("NVML went away")


def test_a_gpu_monitor_that_fails_costs_the_state_its_gpu_fields_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = ProgressCallback(tmp_path / "j", min_interval=0, gpu=FailingGpu())
    with caplog.at_level(logging.WARNING, logger="trainer"):
        callback.start()
        assert callback.finish("completed")
    final = read_progress(tmp_path / "j")
    assert final["status"] == "completed" and "gpu_utilization_percent" not in final
    assert [r.getMessage() for r in caplog.records] == [
        "job j: progress callback's gpu.sample failed (RuntimeError: NVML went away); "
        "training goes on (said once)"
    ]
