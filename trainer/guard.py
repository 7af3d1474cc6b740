"""``guard``: whatever ends a job's training, its terminal state is written first.

With ``signals``, SIGTERM and SIGINT cancel training while the guard is open (see
``trainer.stopping``), and a run so cancelled ends the process the way a shell expects of a
program stopped by that signal: ``cancelled`` written, one line on stderr, exit status 128 + the
signal's number (130 for SIGINT, 143 for SIGTERM), no traceback. It does so by raising
``CancelledExit``: a ``SystemExit`` that is still a ``Cancelled``, so a script's own
``except Cancelled`` or ``finally`` runs as before.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, TypeVar

from trainer.stopping import Cancelled, CancelledExit, CancelOnSignals

if TYPE_CHECKING:
    from trainer.job import JobProgress

J = TypeVar("J", bound="JobProgress")


@contextmanager
def guard(job: J, *, signals: bool = False) -> Iterator[J]:
    """If the body raises, write ``cancelled`` (``Cancelled``, ``KeyboardInterrupt``,
    ``sys.exit(0)``) or ``failed`` (anything else, with the error), then re-raise.

    Args:
        job: the job whose terminal state is written.
        signals: also cancel training on SIGTERM and SIGINT while open (main thread only; the
            handlers before are put back after): the first signal raises ``Cancelled`` (after
            any write under way), later ones do nothing, so none can cut the final write
            short; that ``Cancelled`` leaves the guard as ``CancelledExit`` (exit 130 or 143),
            after one line on stderr.
    """
    handler = CancelOnSignals(ending=lambda: job.ending) if signals else None
    if handler is not None:
        job.signals = handler
    stop: AbstractContextManager[object] = handler if handler is not None else nullcontext()
    try:
        with stop:
            body_ended = False
            try:
                yield job
                body_ended = True
            except BaseException as e:
                if isinstance(e, Cancelled | KeyboardInterrupt) or (
                    isinstance(e, SystemExit) and not e.code
                ):
                    job.finish("cancelled")
                else:
                    job.fail(e)
                raise
            finally:
                if not body_ended:  # an interrupt cut the lines above short: end all the same
                    job.finish("cancelled")
                job.signals = None  # the safety net of a lost Cancelled ends with the guard
    except Cancelled as e:
        if handler is None or handler.cancelled is None or isinstance(e, CancelledExit):
            raise
        job.finish("cancelled")  # done already, unless the signal came as the body ended
        _say_cancelled(job, handler.cancelled)
        raise CancelledExit(handler.cancelled) from e


def _say_cancelled(job: JobProgress, signal_name: str) -> None:
    # One line, as a shell would show a program stopped by Ctrl-C: the traceback of where
    # training happened to be says nothing the user needs.
    unsaid = (
        ", but progress.json does not say so (see the error above)"
        if job.ended == "cancelled" and not job.final_written
        else ""
    )
    print(f"job {job.job_id}: cancelled by {signal_name}{unsaid}", file=sys.stderr, flush=True)
