"""How a trainer stops: SIGTERM and SIGINT cancel training, and never cut a write short.

A Python signal handler runs between any two bytecodes of the main thread, so the exception it
raises can land anywhere: in the middle of writing progress.json, or while the final state is
being written. Two rules keep the file whole and the final state in it:

- ``uninterrupted(action)``: an interrupt (``KeyboardInterrupt``, ``Cancelled``, ``SystemExit``)
  that arrives while ``action`` runs waits until it has run to its end (it is run again, whole:
  actions are idempotent), then goes on its way.
- ``CancelOnSignals``: only the first signal raises, and not even that one once the job is
  ending; later signals are noted and do nothing, so a shutdown is never cut short. SIGKILL
  cannot be caught: that case is the sidecar's (``process exited``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

TRIES = 100
"""How many interrupts one action may absorb before it gives up and lets the first through."""


class Cancelled(BaseException):
    """Training was asked to stop by a signal (its name is the argument: ``SIGTERM``); a
    BaseException, like KeyboardInterrupt."""

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by this signal: 128 + its number."""
        return 128 + signal.Signals[self.args[0]].value


def uninterrupted(action: Callable[[], T]) -> T:
    """Run ``action`` to its end even if an interrupt arrives meanwhile, then re-raise that interrupt.

    An interrupt is any BaseException that is not an Exception; ``action`` is run again from the
    start after one, so it must be idempotent. An Exception from ``action`` propagates as usual.
    """
    interrupt: BaseException | None = None
    for _ in range(TRIES):
        try:
            result = action()
        except Exception:
            if interrupt is not None:
                raise interrupt from None
            raise
        except BaseException as e:
            if interrupt is None:
                interrupt = e
            continue
        if interrupt is not None:
            raise interrupt
        return result
    assert interrupt is not None
    raise interrupt


class CancelOnSignals:
    """While open, SIGTERM and SIGINT cancel training: the first raises ``Cancelled`` (its
    argument is the signal's name) in the main thread, unless ``ending()`` says the job is
    already ending; every later one is only noted in ``received``.

    Args:
        ending: whether the job is already ending (its final state being written); a signal
            then raises nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, *, ending: Callable[[], bool] = lambda: False) -> None:
        self.ending = ending
        self.received: list[str] = []
        """The names of the signals received, in order."""
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> CancelOnSignals:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)
        if len(self.received) == 1 and not self.ending():
            raise Cancelled(self.received[0])
