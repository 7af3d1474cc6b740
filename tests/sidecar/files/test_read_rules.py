"""What a read of a progress file means, without files: the rules alone."""

from __future__ import annotations

from sidecar.files.layout import FileSignature
from sidecar.files.read_rules import (
    FILE_MISSING,
    PENDING,
    TORN_READ_RETRIES,
    Keep,
    Known,
    Publish,
    Remove,
    Retry,
    decide,
)
from sidecar.files.reader import Document, Missing, Unreadable

NOW = 1_762_432_200.0
GOOD = Document({"status": "running", "step": 3}, FileSignature(1, 10, 5_000_000_000, 0o100000))
RUNNING = Known({"status": "running", "step": 2}, 4.0, has_file=True)
PENDING_JOB = Known(dict(PENDING), 7.0, has_file=False)
LAST = len(TORN_READ_RETRIES)


def test_read_rules_a_good_read_is_published() -> None:
    for known in (None, RUNNING, PENDING_JOB):
        decision = decide(GOOD, known=known, attempt=0, dir_mtime=None, now=NOW)
        assert decision == Publish({"status": "running", "step": 3}, 5.0, has_file=True)


def test_read_rules_no_file_is_a_pending_job_while_its_directory_stands() -> None:
    assert decide(Missing(), known=None, attempt=0, dir_mtime=7.0, now=NOW) == Publish(
        PENDING, 7.0, has_file=False
    )
    assert decide(Missing(), known=PENDING_JOB, attempt=0, dir_mtime=7.0, now=NOW) == Keep()
    assert decide(Missing(), known=PENDING_JOB, attempt=0, dir_mtime=None, now=NOW) == Remove()
    assert decide(Missing(), known=None, attempt=0, dir_mtime=None, now=NOW) == Keep()


def test_read_rules_a_bad_read_is_read_again_first() -> None:
    bad = Unreadable("empty file")
    for attempt, delay in enumerate(TORN_READ_RETRIES):
        assert decide(bad, known=RUNNING, attempt=attempt, dir_mtime=None, now=NOW) == Retry(delay)
    first = decide(bad, known=None, attempt=0, dir_mtime=None, now=NOW)
    assert first == Retry(TORN_READ_RETRIES[0], Publish(PENDING, NOW, has_file=False))
    # A file that vanished from a job that had one: a writer may be replacing it.
    assert decide(Missing(), known=RUNNING, attempt=0, dir_mtime=7.0, now=NOW) == Retry(
        TORN_READ_RETRIES[0]
    )


def test_read_rules_past_the_re_reads_the_last_good_state_stays_with_the_reason() -> None:
    bad = Unreadable("invalid json: Expecting value at line 1 column 1")
    assert decide(bad, known=RUNNING, attempt=LAST, dir_mtime=None, now=NOW) == Publish(
        RUNNING.document, 4.0, has_file=True, read_error=bad.reason
    )
    assert decide(bad, known=None, attempt=LAST, dir_mtime=None, now=NOW) == Publish(
        PENDING, NOW, has_file=False, read_error=bad.reason
    )


def test_read_rules_a_vanished_file_keeps_the_job_while_its_directory_stands() -> None:
    assert decide(Missing(), known=RUNNING, attempt=LAST, dir_mtime=7.0, now=NOW) == Publish(
        RUNNING.document, 4.0, has_file=True, read_error=FILE_MISSING
    )
    assert decide(Missing(), known=RUNNING, attempt=LAST, dir_mtime=None, now=NOW) == Remove()
