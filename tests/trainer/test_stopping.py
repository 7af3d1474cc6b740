"""trainer.stopping with real signals sent to this process."""

from __future__ import annotations

import os
import signal

import pytest

from trainer.stopping import Cancelled, CancelOnSignals, uninterrupted


def test_a_cancel_waits_for_the_end_of_the_write_it_arrives_in() -> None:
    runs: list[str] = []

    def action() -> str:
        runs.append("began")
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs here, between two bytecodes
        runs.append("ended")
        return "done"

    with CancelOnSignals() as stop, pytest.raises(Cancelled, match="SIGTERM"):
        uninterrupted(action)
    assert runs == ["began", "ended"]  # whole, once; the Cancelled after it
    assert (stop.received, stop.cancelled) == (["SIGTERM"], "SIGTERM")


def test_an_interrupt_of_another_handler_has_the_write_run_again_whole() -> None:
    """Python's own SIGINT handler raises KeyboardInterrupt at once: the write is cut, run
    again from the start, and the interrupt goes on after it."""
    runs: list[str] = []

    def action() -> str:
        runs.append("began")
        if len(runs) == 1:
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(1000))
        runs.append("ended")
        return "done"

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            uninterrupted(action)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert runs == ["began", "began", "ended"]


def test_a_cancel_by_hand_has_an_exit_status() -> None:
    assert Cancelled("SIGTERM").exit_status == 143
    assert Cancelled("SIGINT").exit_status == 130
    assert Cancelled("asked by the user").exit_status == 1
    assert Cancelled().exit_status == 1


def test_uninterrupted_lets_an_error_through_as_it_is() -> None:
    def action() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        uninterrupted(action)


def test_only_the_first_signal_raises() -> None:
    with CancelOnSignals() as stop:
        with pytest.raises(Cancelled, match="SIGINT"):  # noqa: PT012 (the handler raises later)
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(1000))  # the handler runs between two bytecodes
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            os.kill(os.getpid(), signum)
        sum(range(1000))
    assert stop.received == ["SIGINT", "SIGTERM", "SIGINT", "SIGTERM"]


def test_no_signal_raises_once_the_job_is_ending() -> None:
    with CancelOnSignals(ending=lambda: True) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))
    assert stop.received == ["SIGTERM"]


def test_the_handlers_before_are_put_back() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with CancelOnSignals():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_forked_child_is_handled_as_before_not_cancelled() -> None:
    """A process forked while the handler is in place (a DataLoader worker) is not the one to
    cancel: a signal there does what the handler before would have done (here: end it)."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with CancelOnSignals():
            pid = os.fork()
            if pid == 0:  # the child
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    sum(range(1000))
                finally:
                    os._exit(3)  # reached only if the signal did not end the child
            _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
