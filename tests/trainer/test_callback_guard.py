"""ProgressCallback's guard: a failed, cancelled or interrupted run ends the job with its status."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback, TrainerState

from tests.trainer.job_files import read_progress
from tests.trainer.tiny_trainer import NoGpu, make_trainer
from trainer import Cancelled, ProgressCallback


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


def test_the_guards_signal_handler_is_gone_with_the_guard(tmp_path: Path) -> None:
    callback = ProgressCallback(tmp_path / "j", min_interval=0, gpu=NoGpu())
    with callback.guard(signals=True):
        assert callback.signals is not None
    assert callback.signals is None
    callback.finish("completed")
