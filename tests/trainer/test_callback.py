"""ProgressCallback inside a real transformers.Trainer, on the tiny model, on the CPU."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from tests.trainer.job_files import read_progress
from tests.trainer.small_tmpfs import SmallTmpfs
from trainer import Cancelled, ProgressCallback
from trainer.corpus import BlockDataset, default_corpus, load_texts
from trainer.gpu import GpuMonitor
from trainer.model import build_tiny

SEED_FIELDS = {
    "job_id", "status", "progress", "current_epoch", "total_epochs", "current_step", "total_steps",
    "loss", "eval_loss", "learning_rate", "samples_per_second", "gpu_memory_allocated_gb",
    "gpu_utilization_percent", "eta_seconds", "timestamp", "pid", "hostname", "started_at",
}  # fmt: skip


class NoGpu(GpuMonitor):
    def __init__(self) -> None:
        super().__init__(nvml=None, cuda=None)
        self._started = True  # as if NVML had said there is no driver


def run_training(
    job_dir: Path, *, max_steps: int = 12, callbacks: Sequence[TrainerCallback] = ()
) -> tuple[ProgressCallback, list[dict[str, Any]]]:
    trainer, callback, written = make_trainer(job_dir, max_steps=max_steps, callbacks=callbacks)
    with callback.guard():
        trainer.train()
    return callback, written


def make_trainer(
    job_dir: Path, *, max_steps: int = 12, callbacks: Sequence[TrainerCallback] = ()
) -> tuple[Trainer, ProgressCallback, list[dict[str, Any]]]:
    """A real Trainer of the tiny model with a ProgressCallback whose writes are recorded."""
    texts = load_texts(default_corpus())
    lm = build_tiny(texts)
    dataset = BlockDataset(lm.encode(texts), lm.block_size)
    callback = ProgressCallback(job_dir, min_interval=0, gpu=NoGpu())
    written: list[dict[str, Any]] = []
    real_write = callback.writer.write

    def recording_write(state: dict[str, Any], *, force: bool = False) -> bool:
        written.append(json.loads(json.dumps(state)))
        return real_write(state, force=force)

    real_final = callback.writer.write_final

    def recording_final(state: dict[str, Any]) -> bool:
        written.append(json.loads(json.dumps(state)))
        return real_final(state)

    callback.writer.write = recording_write  # type: ignore[method-assign]
    callback.writer.write_final = recording_final  # type: ignore[method-assign]
    args = TrainingArguments(
        output_dir=str(job_dir.parent / "out"),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=4,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=lm.model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        callbacks=[callback, *callbacks],
    )
    return trainer, callback, written


def test_callback_in_a_real_trainer(tmp_path: Path) -> None:
    job_dir = tmp_path / "jobs" / "tiny-run"
    callback, written = run_training(job_dir)
    statuses = [w["status"] for w in written]
    assert statuses[0] == "running" and statuses[-1] == "completed"
    assert set(statuses) == {"running", "completed"}
    steps = [w["current_step"] for w in written]
    assert steps == sorted(steps) and steps[-1] == 12
    running = [w for w in written if w["status"] == "running" and w["current_step"] > 0]
    assert all(0 < w["progress"] <= 100 for w in running)
    etas = [w["eta_seconds"] for w in running if "eta_seconds" in w]
    assert len(etas) >= 3 and etas[-1] < etas[0]
    final = read_progress(job_dir)
    assert final.keys() >= SEED_FIELDS
    assert final["job_id"] == "tiny-run"
    assert (final["status"], final["progress"], final["current_step"], final["total_steps"]) == (
        "completed",
        100.0,
        12,
        12,
    )
    assert final["final_loss"] == final["loss"] > 0
    assert final["eval_loss"] > 0 and final["learning_rate"] >= 0
    assert final["gpu_memory_allocated_gb"] is None and final["gpu_utilization_percent"] is None
    assert final["samples_per_second"] > 0 and final["eta_seconds"] == 0
    assert final["current_epoch"] <= final["total_epochs"]
    history = [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "loss" in h] == [2, 4, 6, 8, 10, 12]
    assert [h["step"] for h in history if "eval_loss" in h] == [4, 8, 12]
    assert all({"step", "epoch", "timestamp"} <= h.keys() for h in history)
    assert sorted(p.name for p in job_dir.iterdir()) == ["metrics.jsonl", "progress.json"]
    assert callback.hook_seconds.keys() >= {
        "on_train_begin",
        "on_step_end",
        "on_log",
        "on_train_end",
    }


def test_only_world_process_zero_writes(tmp_path: Path) -> None:
    callback = ProgressCallback(tmp_path / "j", gpu=NoGpu())
    state = TrainerState()
    state.is_world_process_zero = False
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_log(args, state, TrainerControl(), logs={"loss": 1.0})
    callback.on_step_end(args, state, TrainerControl())
    callback.on_train_end(args, state, TrainerControl())
    assert not (tmp_path / "j").exists()


def test_guard_writes_failed_with_the_error(tmp_path: Path) -> None:
    callback = ProgressCallback(tmp_path / "j", gpu=NoGpu())
    callback.start()
    with pytest.raises(RuntimeError, match="out of memory"), callback.guard():
        raise RuntimeError("CUDA out of memory")
    final = read_progress(tmp_path / "j")
    assert (final["status"], final["error"]) == ("failed", "RuntimeError: CUDA out of memory")


def test_guard_writes_cancelled_on_keyboard_interrupt(tmp_path: Path) -> None:
    callback = ProgressCallback(tmp_path / "j", gpu=NoGpu())
    with pytest.raises(KeyboardInterrupt), callback.guard():
        raise KeyboardInterrupt
    assert read_progress(tmp_path / "j")["status"] == "cancelled"


def test_tiny_model_is_built_offline_and_trains() -> None:
    texts = load_texts(default_corpus())
    lm = build_tiny(texts)
    ids = lm.encode(texts[:2])
    assert ids and max(ids) < lm.model.config.vocab_size
    batch = BlockDataset(lm.encode(texts), lm.block_size)[0]
    loss = lm.model(input_ids=batch["input_ids"][None], labels=batch["labels"][None]).loss
    assert torch.isfinite(loss)


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


def test_a_run_of_zero_epochs_is_at_epoch_zero_of_zero(tmp_path: Path) -> None:
    callback = ProgressCallback(tmp_path / "j", min_interval=0, gpu=NoGpu())
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, num_train_epochs=0
    )
    state = TrainerState()
    state.num_train_epochs, state.epoch = 0, 0.0
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_train_end(args, state, TrainerControl())
    final = read_progress(tmp_path / "j")
    assert (final["status"], final["total_epochs"], final["current_epoch"]) == ("completed", 0, 0)


def test_a_run_of_zero_steps_is_not_past_its_total(tmp_path: Path) -> None:
    """``max_steps=0`` still takes a step in transformers: the totals follow what was done."""
    _, written = run_training(tmp_path / "j", max_steps=0)
    final = read_progress(tmp_path / "j")
    assert final["status"] == "completed"
    assert final["current_step"] == final["total_steps"] and final["progress"] == 100.0
    assert all(w["current_step"] <= w["total_steps"] for w in written if "total_steps" in w)
    assert final["current_epoch"] <= final["total_epochs"]


def test_an_evaluation_after_the_end_leaves_the_end(tmp_path: Path) -> None:
    trainer, callback, written = make_trainer(tmp_path / "j", max_steps=4)
    with callback.guard():
        trainer.train()
    history = (tmp_path / "j" / "metrics.jsonl").read_text()
    trainer.evaluate()
    assert [w["status"] for w in written][-1] == "completed"
    assert read_progress(tmp_path / "j")["status"] == "completed"
    assert (tmp_path / "j" / "metrics.jsonl").read_text() == history  # nothing after the end
    assert not callback.writer.history.is_open  # and no file left open


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


class LoseTheCancel(TrainerCallback):
    """At step 3 a SIGTERM lands inside a ``__del__``, where Python drops what it raises."""

    def on_step_end(self, args: Any, state: TrainerState, control: Any, **kwargs: Any) -> None:
        if state.global_step == 3:
            Dropped()


class Dropped:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs here, and its Cancelled goes nowhere


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_cancel_lost_on_the_way_is_raised_again_at_the_next_step(tmp_path: Path) -> None:
    trainer, callback, _ = make_trainer(tmp_path / "j", max_steps=50, callbacks=[LoseTheCancel()])
    with pytest.raises(Cancelled, match="SIGTERM"), callback.guard(signals=True):
        trainer.train()
    final = read_progress(tmp_path / "j")
    assert (final["status"], final["current_step"]) == ("cancelled", 4)


def test_a_second_run_with_the_same_callback_starts_afresh(tmp_path: Path) -> None:
    trainer, callback, written = make_trainer(tmp_path / "j", max_steps=3)
    with callback.guard():
        trainer.train()
    with callback.guard():
        trainer.train()
    statuses = [w["status"] for w in written]
    assert statuses.count("completed") == 2 and statuses[-1] == "completed"
    assert read_progress(tmp_path / "j")["status"] == "completed"


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


def test_the_guards_signal_handler_is_gone_with_the_guard(tmp_path: Path) -> None:
    callback = ProgressCallback(tmp_path / "j", min_interval=0, gpu=NoGpu())
    with callback.guard(signals=True):
        assert callback.signals is not None
    assert callback.signals is None
    callback.finish("completed")
