"""trainer.stopping with real signals sent to this process."""

from __future__ import annotations

import os
import signal

import pytest

from trainer.stopping import Cancelled, CancelOnSignals, uninterrupted


def test_uninterrupted_runs_the_action_to_its_end_then_lets_the_signal_through() -> None:
    runs: list[str] = []

    def action() -> str:
        runs.append("began")
        if len(runs) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises on the next bytecode
        runs.append("ended")
        return "done"

    with CancelOnSignals() as stop, pytest.raises(Cancelled, match="SIGTERM"):
        uninterrupted(action)
    assert runs == ["began", "began", "ended"]  # cut once, then run again whole
    assert stop.received == ["SIGTERM"]


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
