"""How a trainer stops: SIGTERM and SIGINT cancel training, and never cut a write short.

A Python signal handler runs between any two bytecodes of the main thread, so the exception it
raises can land anywhere: in the middle of writing progress.json, or while the final state is
being written. Three rules keep the file whole and the final state in it:

- ``uninterrupted(action)`` marks a write. ``CancelOnSignals``'s handler raises nothing inside
  one: its ``Cancelled`` waits until the write is done. An interrupt raised by another handler
  (Python's own ``KeyboardInterrupt``) cannot wait: the write is run again, whole (writes are
  idempotent), and the interrupt goes on its way after it.
- ``CancelOnSignals`` cancels once: the first signal raises, unless the job is already ending;
  later signals are noted and do nothing, so a shutdown is never cut short. Should that one
  ``Cancelled`` be lost (raised inside a ``__del__``, which Python ignores), the training
  callback raises it again at the next step (``cancelled``).
- SIGKILL cannot be caught: that case is the sidecar's (``process exited``).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

TRIES = 100
"""How many interrupts one action may absorb before it gives up and lets the first through."""

_writing = 0  # uninterrupted() sections the main thread is in now
_held: list[BaseException] = []  # a Cancelled that waits for the section to end


class Cancelled(BaseException):
    """Training was asked to stop, by a signal (its name is the argument: ``SIGTERM``) or by
    code of one's own; a BaseException, like KeyboardInterrupt."""

    @property
    def exit_status(self) -> int:
        """The shell's status for a process so ended: 128 + the signal's number (1 without one)."""
        name = self.args[0] if self.args else None
        if isinstance(name, str) and name in signal.Signals.__members__:
            return 128 + signal.Signals[name].value
        return 1


class CancelledExit(SystemExit, Cancelled):
    """A ``Cancelled`` on its way out of the process: a ``SystemExit`` whose ``code`` is its
    ``exit_status``, so that Python, left to itself, exits with 130 or 143 and no traceback,
    while an ``except Cancelled`` still catches it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.code = self.exit_status


def uninterrupted(action: Callable[[], T]) -> T:
    """Run ``action`` to its end even if an interrupt arrives meanwhile, then raise that interrupt.

    An interrupt is any BaseException that is not an Exception. ``CancelOnSignals`` holds its
    own back until ``action`` returns; any other is caught and ``action`` run again from the
    start, so ``action`` must be idempotent. An Exception from ``action`` propagates as usual.
    """
    global _writing
    main = threading.current_thread() is threading.main_thread()
    interrupt: BaseException | None = None
    error: Exception | None = None
    if main:
        _writing += 1
    try:
        for _ in range(TRIES):
            try:
                result = action()
            except Exception as e:
                error = e
            except BaseException as e:
                interrupt = interrupt or e
                continue
            break
    finally:
        if main:
            _writing -= 1
            if _writing == 0 and _held:
                interrupt = interrupt or _held[0]
                _held.clear()
    if interrupt is not None:
        if error is not None:
            interrupt.__context__ = error  # not lost: shown with the interrupt's traceback
        raise interrupt
    if error is not None:
        raise error
    return result


class CancelOnSignals:
    """While open, SIGTERM and SIGINT cancel training: the first signal raises ``Cancelled``
    (its argument is the signal's name) in the main thread, unless ``ending()`` says the job is
    already ending, and after any write under way (see ``uninterrupted``); every signal is
    noted in ``received``, and the one that cancelled in ``cancelled``.

    Args:
        ending: whether the job is already ending (its final state being written); a signal
            then raises nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, *, ending: Callable[[], bool] = lambda: False) -> None:
        self.ending = ending
        self.received: list[str] = []
        """The names of the signals received, in order."""
        self.cancelled: str | None = None
        """The name of the signal that raised ``Cancelled``."""
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    def install(self) -> None:
        """Handle the signals from now on (``restore`` puts the earlier handlers back)."""
        self._pid = os.getpid()
        for signum in self.SIGNALS:
            self._previous.setdefault(signum, signal.signal(signum, self._handle))

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def __enter__(self) -> CancelOnSignals:
        self.install()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.restore()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked child (a DataLoader worker): not ours to stop
            self._as_before(signum, frame)
            return
        name = signal.Signals(signum).name
        self.received.append(name)
        if self.cancelled is not None or self.ending():
            return
        self.cancelled = name
        if _writing:  # the main thread is in a write: the Cancelled waits for its end
            _held.append(Cancelled(name))
            return
        raise Cancelled(name)

    def _as_before(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
