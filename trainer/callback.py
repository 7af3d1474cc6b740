"""``ProgressCallback``: one line to make any ``transformers.Trainer`` write live progress."""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from sidecar.core.contract import JOB_ID_PATTERN, is_valid_job_id, isoformat_utc
from trainer.gpu import GpuMonitor
from trainer.stopping import Cancelled, CancelOnSignals, uninterrupted
from trainer.writer import ProgressWriter, progress_document

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


__all__ = ["Cancelled", "ProgressCallback"]


def _now_iso() -> str:
    return isoformat_utc(time.time())


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
            self._hook_failed(name, e)
            return None
        finally:
            self.hook_seconds[name] = self.hook_seconds.get(name, 0.0) + time.perf_counter() - began

    return wrapper  # type: ignore[return-value]


class ProgressCallback(TrainerCallback):
    """Writes ``<job_dir>/progress.json`` (the seed's fields) and ``metrics.jsonl`` as training runs.

    ``trainer.add_callback(ProgressCallback("/srv/jobs/job_abc123"))`` is all it takes; wrap
    ``trainer.train()`` in ``with callback.guard(signals=True):`` so that a crash, Ctrl-C or
    SIGTERM is written too. Only the world's process zero writes. Nothing here raises into
    training.

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
        self.job_id = job_id or Path(job_dir).name
        self.writer = ProgressWriter(Path(job_dir), min_interval=min_interval)
        self.gpu = gpu or GpuMonitor()
        self.hook_seconds: dict[str, float] = {}
        """Seconds spent in each hook so far: the callback's own cost to training."""
        self._active = True
        self._fields: dict[str, Any] = {}
        self._began: float | None = None
        self._steps_at_begin = 0
        self._samples_per_step = 1
        self._last_step_time: float | None = None
        self._step_seconds: float | None = None  # moving average
        self._loss: float | None = None
        self._ending: tuple[str, dict[str, Any]] | None = None  # status and fields, once begun
        self._final: bool | None = None  # whether it reached progress.json, once known
        self._trainer_state: TrainerState | None = None  # the latest, for a failure's figures
        self._failures_said: set[tuple[str, str]] = set()
        self.signals: CancelOnSignals | None = None
        """The signal handler that cancels this run (``guard(signals=True)`` sets it): should
        its ``Cancelled`` be lost on the way (raised inside a ``__del__``), the next step or
        evaluation batch raises it again."""

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
        self._began = self._last_step_time = time.monotonic()
        self._steps_at_begin = state.global_step
        self._samples_per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        )
        self._fields.update(
            total_steps=state.max_steps,
            total_epochs=_whole(state.num_train_epochs or args.num_train_epochs),
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
        now = time.monotonic()
        if self._last_step_time is not None:
            took = now - self._last_step_time
            self._step_seconds = (
                took if self._step_seconds is None else 0.9 * self._step_seconds + 0.1 * took
            )
        self._last_step_time = now
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
        if "loss" in logs:
            self._loss = logs["loss"]
            self._fields["loss"] = logs["loss"]
        if "learning_rate" in logs:
            self._fields["learning_rate"] = logs["learning_rate"]
        if "eval_loss" in logs:  # Trainer.evaluate logs its metrics too
            self._fields["eval_loss"] = logs["eval_loss"]
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
        self.finish("completed", final_loss=self._loss)

    @_hook
    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._still_cancelled()

    # --- outside the hooks ---------------------------------------------------------------

    def start(self) -> None:
        """Write a first ``running`` state at once (before the model is even built, if called then)."""
        if not self._active:
            return
        if "started_at" not in self._fields and not is_valid_job_id(self.job_id):
            # The sidecar serves only such ids: a job under another name would go unseen.
            logger.warning(
                "job directory name %r is not a job id the sidecar accepts (%s): progress-sidecar "
                "will not show this job",
                self.job_id,
                JOB_ID_PATTERN,
            )
        self._fields.setdefault("started_at", _now_iso())
        self._fields.setdefault("progress", 0.0)
        self._fields.setdefault("current_step", 0)
        self._emit("running", force=True)

    def finish(self, status: str, **fields: Any) -> bool:
        """End the job with a terminal state (``completed``, ``failed``, ``cancelled``).

        metrics.jsonl is closed, then the state is written at once and fsynced (tried twice;
        see ``ProgressWriter.write_final``). An interrupt that arrives meanwhile waits until
        this is done. Only the first call counts. Returns whether progress.json holds the
        final state; when it does not, one error line says so.
        """
        if not self._active:
            return False
        if self._ending is None:
            self._ending = (status, fields)  # one step: from here on, the job is ending
        try:
            return uninterrupted(self._finish)
        except Exception as e:  # an odd state; the writer itself never raises
            self._hook_failed("finish", e)
            return False

    @property
    def ending(self) -> bool:
        """Whether the job's final state is being written (or has been)."""
        return self._ending is not None

    @property
    def ended(self) -> str | None:
        """The job's terminal status, once ``finish`` has begun."""
        return self._ending[0] if self._ending is not None else None

    @property
    def final_written(self) -> bool:
        """Whether progress.json holds the job's final state."""
        return bool(self._final)

    @contextmanager
    def guard(self, *, signals: bool = False) -> Iterator[ProgressCallback]:
        """If the body raises, write ``cancelled`` (``Cancelled``, ``KeyboardInterrupt``,
        ``sys.exit(0)``) or ``failed`` (anything else, with the error), then re-raise.

        Args:
            signals: also cancel training on SIGTERM and SIGINT while open (main thread only;
                the handlers before are put back after; see ``trainer.stopping``): the first
                signal raises ``Cancelled`` (after any write under way), later ones do nothing,
                so none can cut the final write short.
        """
        stop: AbstractContextManager[object] = nullcontext()
        if signals:
            self.signals = CancelOnSignals(ending=lambda: self.ending)
            stop = self.signals
        with stop:
            body_ended = False
            try:
                yield self
                body_ended = True
            except BaseException as e:
                if isinstance(e, Cancelled | KeyboardInterrupt) or (
                    isinstance(e, SystemExit) and not e.code
                ):
                    self.finish("cancelled")
                else:
                    self.finish("failed", error=f"{type(e).__name__}: {e}", final_loss=self._loss)
                raise
            finally:
                if not body_ended:  # an interrupt cut the lines above short: end all the same
                    self.finish("cancelled")
                self.signals = None  # the safety net of _still_cancelled ends with the guard

    # --- inside --------------------------------------------------------------------------

    def _hook_failed(self, hook: str, error: Exception) -> None:
        kind = (hook, type(error).__name__)
        if kind not in self._failures_said:
            self._failures_said.add(kind)
            logger.warning(
                "job %s: progress callback's %s failed (%s: %s); training goes on (said once)",
                self.job_id,
                hook,
                type(error).__name__,
                error,
            )

    def _progress_fields(self, state: TrainerState) -> dict[str, Any]:
        step = state.global_step
        total = state.max_steps or 0
        fields: dict[str, Any] = {
            "current_step": step,
            "progress": round(min(100.0, 100.0 * step / total), 2) if total else None,
        }
        if step > total:  # a run past its plan (max_steps=0 still takes a step): steps done
            fields.update(total_steps=step, progress=100.0)
        if state.epoch is not None and math.isfinite(state.epoch):
            total_epochs = self._fields.get("total_epochs")
            current = int(state.epoch) + 1
            # A run of 0 epochs is at epoch 0 of 0, not 1 of 0.
            fields["current_epoch"] = (
                current if total_epochs is None else min(current, total_epochs)
            )
        if self._step_seconds:
            fields["samples_per_second"] = round(self._samples_per_step / self._step_seconds, 2)
        if self._began is not None and total:
            done = step - self._steps_at_begin
            if done > 0:
                per_step = (time.monotonic() - self._began) / done
                fields["eta_seconds"] = round(per_step * max(0, total - step), 1)
        return fields

    def _finish(self) -> bool:
        # Run again whole after an interrupt (see finish): every step here may be repeated.
        if self._final is not None:
            return self._final
        assert self._ending is not None
        status, fields = self._ending
        try:
            if self._trainer_state is not None:
                self._fields.update(self._progress_fields(self._trainer_state))
            if status == "completed":
                self._fields.update(progress=100.0, eta_seconds=0)
            else:
                self._fields.pop("eta_seconds", None)
        except Exception as e:  # an odd state: the final state goes out without its figures
            self._hook_failed("finish", e)
        self._fields.update(fields)
        written = self._final = self.writer.write_final(self._document(status))
        if not written:
            logger.error(
                "job %s: its final state (%s) could not be written to %s: %s; the file %s",
                self.job_id,
                status,
                self.writer.path,
                self.writer.error,
                f"still says {self.writer.status!r}" if self.writer.status else "was never written",
            )
        return written

    def _still_cancelled(self) -> None:
        # The signal's Cancelled was raised and training goes on: it was lost on the way.
        if self.signals is not None and self.signals.cancelled and not self.ending:
            raise Cancelled(self.signals.cancelled)

    def _write(self, state: TrainerState) -> None:
        if self.ending:  # a hook after the end (an evaluation): the end stands
            return
        self._fields.update(self._progress_fields(state))
        self._emit("running")

    def _emit(self, status: str, *, force: bool = False) -> None:
        self.writer.write(self._document(status), force=force)

    def _document(self, status: str) -> dict[str, Any]:
        try:
            gpu = self.gpu.sample()
        except Exception as e:  # a GpuMonitor of one's own that fails: the state goes without
            self._hook_failed("gpu.sample", e)
            gpu = {}
        fields = {k: _significant(v) for k, v in self._fields.items()}
        return progress_document(self.job_id, status, {**fields, **gpu})

    def _history(self, state: TrainerState, logs: dict[str, Any]) -> None:
        entry = {"step": state.global_step, "epoch": state.epoch, "timestamp": _now_iso()}
        entry.update({k: v for k, v in logs.items() if isinstance(v, int | float)})
        self.writer.append_history(entry)


def _significant(value: Any, digits: int = 6) -> Any:
    """Floats to ``digits`` significant digits: enough to show, and short on the wire (the
    full values are in metrics.jsonl)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.{digits}g}")
    return value


def _whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
