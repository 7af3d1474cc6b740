"""``ProgressCallback``: one line to make any ``transformers.Trainer`` write live progress."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from trainer.eta import Pace, whole
from trainer.gpu import GpuMonitor
from trainer.job import JobProgress, now_iso
from trainer.stopping import Cancelled

F = TypeVar("F", bound=Callable[..., Any])


__all__ = ["Cancelled", "ProgressCallback"]


def _hook(method: F) -> F:
    """The one guard of every hook: an exception never reaches training (it is logged once per
    hook and kind, and that hook's work is skipped), and the time each hook takes is counted in
    ``hook_seconds``, so the callback's cost is known. Cancellation (a BaseException) passes."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: ProgressCallback, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        except Exception as e:
            self._failed(name, e)
            return None
        finally:
            self.hook_seconds[name] = self.hook_seconds.get(name, 0.0) + time.perf_counter() - began

    return wrapper  # type: ignore[return-value]


class ProgressCallback(JobProgress, TrainerCallback):
    """Writes ``<job_dir>/progress.json`` (the seed's fields) and ``metrics.jsonl`` as training runs.

    ``trainer.add_callback(ProgressCallback("/srv/jobs/job_abc123"))`` is all it takes; wrap
    ``trainer.train()`` in ``with callback.guard(signals=True):`` so that a crash, Ctrl-C or
    SIGTERM is written too (see ``JobProgress.guard``). Only the world's process zero writes.
    Nothing here raises into training.

    Args:
        job_dir: the job's directory (``<jobs-root>/<job_id>``).
        job_id: the job's id; the directory's name by default.
        min_interval: seconds between two writes of progress.json (terminal states are
            written at once).
        gpu: where GPU figures come from; NVML and torch.cuda by default.
    """

    def __init__(
        self,
        job_dir: str | os.PathLike[str],
        *,
        job_id: str | None = None,
        min_interval: float = 0.5,
        gpu: GpuMonitor | None = None,
    ) -> None:
        super().__init__(job_dir, job_id=job_id, min_interval=min_interval, gpu=gpu)
        self.hook_seconds: dict[str, float] = {}
        """Seconds spent in each hook so far: the callback's own cost to training."""
        self.pace = Pace()
        self._trainer_state: TrainerState | None = None  # the latest, for the final figures

    # --- hooks -------------------------------------------------------------------------

    @_hook
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._active = state.is_world_process_zero
        if not self._active:
            return
        if self._ending is not None:  # a second run with this callback: it starts afresh
            self._ending = self._final = None
            for name in ("started_at", "final_loss", "error"):
                self._fields.pop(name, None)
        self.pace.begin(
            step=state.global_step,
            samples_per_step=(
                args.per_device_train_batch_size
                * args.gradient_accumulation_steps
                * args.world_size
            ),
        )
        self._fields.update(
            total_steps=state.max_steps,
            total_epochs=whole(state.num_train_epochs or args.num_train_epochs),
        )
        self.start()

    @_hook
    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._still_cancelled()
        if not self._active:
            return
        self._trainer_state = state
        self.pace.step_ended()
        if self.writer.due():
            self._write(state)

    @_hook
    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._active or not logs or self.ending:
            return
        for name in ("loss", "learning_rate", "eval_loss"):  # Trainer.evaluate logs its own too
            if name in logs:
                self._fields[name] = logs[name]
        self._history(state, logs)
        if self.writer.due():
            self._write(state)

    @_hook
    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._active or not metrics or self.ending:
            return
        if "eval_loss" in metrics:
            self._fields["eval_loss"] = metrics["eval_loss"]
        if self.writer.due():
            self._write(state)

    @_hook
    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not self._active or self.ending:
            return
        self._trainer_state = state
        self.finish("completed", final_loss=self._fields.get("loss"))

    @_hook
    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._still_cancelled()

    # --- inside --------------------------------------------------------------------------

    def _final_figures(self) -> dict[str, Any]:
        state = self._trainer_state
        return {} if state is None else self._figures(state)

    def _figures(self, state: TrainerState) -> dict[str, Any]:
        return self.pace.figures(
            step=state.global_step,
            total=state.max_steps or 0,
            epoch=state.epoch,
            total_epochs=self._fields.get("total_epochs"),
        )

    def _still_cancelled(self) -> None:
        # The signal's Cancelled was raised and training goes on: it was lost on the way.
        if self.signals is not None and self.signals.cancelled and not self.ending:
            raise Cancelled(self.signals.cancelled)

    def _write(self, state: TrainerState) -> None:
        if self.ending:  # a hook after the end (an evaluation): the end stands
            return
        self._fields.update(self._figures(state))
        self._emit("running")

    def _history(self, state: TrainerState, logs: dict[str, Any]) -> None:
        entry = {"step": state.global_step, "epoch": state.epoch, "timestamp": now_iso()}
        entry.update({k: v for k, v in logs.items() if isinstance(v, int | float)})
        self.writer.append_history(entry)
