"""``JobProgress``: one job's progress.json from its first ``running`` state to its terminal one.

It knows nothing of transformers: ``trainer.callback.ProgressCallback`` feeds it from a
``Trainer``'s hooks. Nothing here raises into training; an error is logged once per place and
kind, and a terminal state, once asked for, is written whole whatever interrupts it.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Self

from sidecar.core.contract import JOB_ID_PATTERN, is_valid_job_id, isoformat_utc
from trainer.eta import significant
from trainer.gpu import GpuMonitor
from trainer.guard import guard
from trainer.stopping import CancelOnSignals, uninterrupted
from trainer.writer import ProgressWriter, progress_document

logger = logging.getLogger(__name__)


def now_iso() -> str:
    """The time now, as progress.json writes it."""
    return isoformat_utc(time.time())


class JobProgress:
    """Writes one job's ``<job_dir>/progress.json`` (and, through its writer, metrics.jsonl).

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
        self._active = True  # only the world's process zero writes
        self._fields: dict[str, Any] = {}
        self._ending: tuple[str, dict[str, Any]] | None = None  # status and fields, once begun
        self._final: bool | None = None  # whether it reached progress.json, once known
        self._failures_said: set[tuple[str, str]] = set()
        self.signals: CancelOnSignals | None = None
        """The signal handler that cancels this run (``guard(signals=True)`` sets it): should
        its ``Cancelled`` be lost on the way (raised inside a ``__del__``), the next step or
        evaluation batch raises it again."""

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
        self._fields.setdefault("started_at", now_iso())
        self._fields.setdefault("progress", 0.0)
        self._fields.setdefault("current_step", 0)
        self._emit("running", force=True)

    def finish(self, status: str, **fields: Any) -> bool:
        """End the job with a terminal state (``completed``, ``failed``, ``cancelled``).

        metrics.jsonl is closed, then the state is written at once and fsynced (tried twice;
        see ``ProgressWriter.write_final``). An interrupt that arrives meanwhile waits until
        this is done. Only the first call counts. Returns whether progress.json holds the
        final state; when it does not, one error line says so.

        Args:
            status: the terminal status.
            fields: fields of the final state (``error``, ``final_loss``).
        """
        if not self._active:
            return False
        if self._ending is None:
            self._ending = (status, fields)  # one step: from here on, the job is ending
        try:
            return uninterrupted(self._finish)
        except Exception as e:  # an odd state; the writer itself never raises
            self._failed("finish", e)
            return False

    def fail(self, error: BaseException) -> bool:
        """End the job as ``failed``, with the error and the latest loss (see ``finish``).

        Args:
            error: what failed the run; written as ``ExceptionType: message``.
        """
        return self.finish(
            "failed", error=f"{type(error).__name__}: {error}", final_loss=self._fields.get("loss")
        )

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

    def guard(self, *, signals: bool = False) -> AbstractContextManager[Self]:
        """If the body raises, write ``cancelled`` (``Cancelled``, ``KeyboardInterrupt``,
        ``sys.exit(0)``) or ``failed`` (anything else, with the error), then re-raise.

        Args:
            signals: also cancel training on SIGTERM and SIGINT while open (main thread only;
                the handlers before are put back after; see ``trainer.guard``): the first
                signal raises ``Cancelled`` (after any write under way), later ones do
                nothing, so none can cut the final write short; once ``cancelled`` is
                written, one line on stderr says so and the process exits 130 (SIGINT) or
                143 (SIGTERM), without a traceback (``CancelledExit``).
        """
        return guard(self, signals=signals)

    # --- for subclasses ----------------------------------------------------------------

    def _final_figures(self) -> dict[str, Any]:
        """The figures of the final state (step, progress, ...), as the run last stood."""
        return {}

    def _failed(self, what: str, error: Exception) -> None:
        """Log an error that training does not see, once per place and kind."""
        kind = (what, type(error).__name__)
        if kind not in self._failures_said:
            self._failures_said.add(kind)
            logger.warning(
                "job %s: progress callback's %s failed (%s: %s); training goes on (said once)",
                self.job_id,
                what,
                type(error).__name__,
                error,
            )

    def _emit(self, status: str, *, force: bool = False) -> None:
        self.writer.write(self._document(status), force=force)

    # --- inside ------------------------------------------------------------------------

    def _finish(self) -> bool:
        # Run again whole after an interrupt (see finish): every step here may be repeated.
        if self._final is not None:
            return self._final
        assert self._ending is not None
        status, fields = self._ending
        try:
            self._fields.update(self._final_figures())
            if status == "completed":
                self._fields.update(progress=100.0, eta_seconds=0)
            else:
                self._fields.pop("eta_seconds", None)
        except Exception as e:  # an odd state: the final state goes out without its figures
            self._failed("finish", e)
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

    def _document(self, status: str) -> dict[str, Any]:
        try:
            gpu = self.gpu.sample()
        except Exception as e:  # a GpuMonitor of one's own that fails: the state goes without
            self._failed("gpu.sample", e)
            gpu = {}
        fields = {k: significant(v) for k, v in self._fields.items()}
        return progress_document(self.job_id, status, {**fields, **gpu})
