from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import signal
from pathlib import Path

import pytest

from sidecar.core.contract import strict_json
from tests.trainer.job_files import read_progress
from tests.trainer.small_tmpfs import SmallTmpfs
from trainer.writer import ProgressWriter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_write_is_immediate_then_throttled(tmp_path: Path) -> None:
    clock = Clock()
    writer = ProgressWriter(tmp_path / "job", min_interval=0.5, clock=clock)
    assert writer.write({"status": "running", "step": 1})
    assert not writer.write({"status": "running", "step": 2})
    assert read_progress(writer.job_dir)["step"] == 1
    clock.now += 0.5
    assert writer.write({"status": "running", "step": 3})
    assert read_progress(writer.job_dir)["step"] == 3


def test_terminal_state_is_written_at_once(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path, min_interval=60, clock=Clock())
    writer.write({"status": "running"})
    assert writer.write({"status": "Failed", "error": "boom"})
    assert read_progress(writer.job_dir) == {"status": "Failed", "error": "boom"}


def test_flush_writes_the_held_state(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path, min_interval=60, clock=Clock())
    writer.write({"step": 1})
    writer.write({"step": 2})
    writer.write({"step": 3})
    assert writer.flush()
    assert read_progress(writer.job_dir) == {"step": 3}
    assert not writer.flush()


def test_nan_and_infinity_are_written_as_null(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path)
    writer.write({"loss": math.nan, "nested": {"x": math.inf, "y": [-math.inf, 1.5]}})
    text = writer.path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "nested": {"x": None, "y": [None, 1.5]}}


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path, min_interval=0)
    for step in range(50):
        writer.write({"step": step, "padding": "x" * 1000})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.json"]
    assert read_progress(writer.job_dir)["step"] == 49


def test_a_failed_write_never_raises_and_is_logged_once_per_file_and_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "job"
    blocker.write_text("a file where the job directory should be")
    writer = ProgressWriter(blocker, min_interval=0)
    with caplog.at_level(logging.WARNING, logger="trainer"):
        for step in range(5):
            assert not writer.write({"step": step})
            assert not writer.append_history({"step": step})
        writer.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot write {blocker}/progress.json: [Errno 20] Not a directory: "
        f"'{blocker}/.progress.json.{os.getpid()}.tmp'; training goes on (said once)",
        f"cannot write {blocker}/metrics.jsonl: [Errno 20] Not a directory: "
        f"'{blocker}/metrics.jsonl'; training goes on (said once)",
    ]
    assert blocker.read_text() == "a file where the job directory should be"


def test_history_lines_are_appended_whole(tmp_path: Path) -> None:
    writer = ProgressWriter(tmp_path)
    writer.append_history({"step": 1, "loss": 2.0})
    writer.append_history({"step": 2, "loss": math.nan})
    writer.close()
    lines = writer.history_path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "loss": 2.0},
        {"step": 2, "loss": None},
    ]


def test_strict_json_keeps_other_values() -> None:
    assert strict_json({"a": (1, 2.5, "x", None, True)}) == {"a": [1, 2.5, "x", None, True]}


def history(writer: ProgressWriter) -> list[dict[str, object]]:
    text = writer.history_path.read_text()
    assert text == "" or text.endswith("\n"), f"a cut last line: {text[-80:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def test_a_job_directory_deleted_mid_run_is_made_again_with_both_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whichever write notices first, the directory comes back with progress.json (the last
    state) and metrics.jsonl (from there on), and one warning says so."""
    writer = ProgressWriter(tmp_path / "job", min_interval=0)
    writer.write({"status": "running", "step": 1})
    writer.append_history({"step": 1})
    with caplog.at_level(logging.WARNING, logger="trainer"):
        shutil.rmtree(writer.job_dir)
        assert writer.append_history({"step": 2})  # noticed by an append
        assert read_progress(writer.job_dir)["step"] == 1
        assert history(writer) == [{"step": 2}]
        shutil.rmtree(writer.job_dir)
        assert writer.write({"status": "running", "step": 3})  # noticed by a write
        assert history(writer) == []
        assert writer.append_history({"step": 3})
        writer.history_path.unlink()  # the history file alone
        assert writer.append_history({"step": 4})
    assert history(writer) == [{"step": 4}]
    assert read_progress(writer.job_dir)["step"] == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"{writer.job_dir} (or a file in it) was deleted during the run: writing progress.json "
        "and metrics.jsonl there again; the history before this point is gone (said once)"
    ]
    writer.close()


def test_a_cut_line_left_by_an_earlier_run_is_cut_back(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    writer = ProgressWriter(job)
    writer.append_history({"step": 4})
    writer.close()
    assert history(writer) == [{"step": 1}, {"step": 2}, {"step": 4}]


def test_a_failed_append_leaves_no_cut_line(small_tmpfs: SmallTmpfs) -> None:
    """On a real full tmpfs a long line goes in part (to the end of the file's last page),
    then fails: the part is cut away, and once there is room the next line goes in whole."""
    disk = small_tmpfs.mount(size_kib=64)
    writer = ProgressWriter(disk / "job")
    assert writer.append_history({"step": 1})
    filler = small_tmpfs.fill(disk)
    assert not writer.append_history({"step": 2, "note": "x" * 6000})
    assert history(writer) == [{"step": 1}]
    assert isinstance(writer.error, OSError) and writer.error.errno == errno.ENOSPC
    filler.unlink()
    assert writer.append_history({"step": 3})
    writer.close()
    assert history(writer) == [{"step": 1}, {"step": 3}]


def test_the_final_state_is_written_in_place_on_a_full_disk(
    small_tmpfs: SmallTmpfs, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk has no room for the temp file of an atomic write; the final state goes over
    the old file, in its own space, whole."""
    disk = small_tmpfs.mount(size_kib=64)
    writer = ProgressWriter(disk / "job", min_interval=0, retry_after=0)
    assert writer.write({"status": "running", "step": 7, "padding": "x" * 300})
    small_tmpfs.fill(disk)
    with caplog.at_level(logging.WARNING, logger="trainer"):
        assert not writer.write({"status": "running", "step": 8})
        assert writer.write_final({"status": "completed", "step": 9})
    assert read_progress(writer.job_dir) == {"status": "completed", "step": 9}
    assert sorted(p.name for p in writer.job_dir.iterdir()) == ["progress.json"]
    assert writer.status == "completed"
    assert len(caplog.records) == 1  # the one ENOSPC of progress.json
    assert "No space left on device" in caplog.records[0].getMessage()


def test_a_final_state_with_no_old_file_to_go_over_is_not_written(
    small_tmpfs: SmallTmpfs,
) -> None:
    disk = small_tmpfs.mount(size_kib=64)
    small_tmpfs.fill(disk)
    writer = ProgressWriter(disk / "job", retry_after=0)
    assert not writer.write_final({"status": "completed"})
    assert writer.status is None
    assert not writer.path.exists()


def block_the_temp_file(writer: ProgressWriter) -> None:
    """A directory where the temp file of an atomic write goes: such a write then fails."""
    (writer.job_dir / f".progress.json.{os.getpid()}.tmp").mkdir()


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_no_write_goes_through_a_link_or_into_a_fifo(tmp_path: Path, kind: str) -> None:
    """progress.json or metrics.jsonl made a symbolic link (or a FIFO) in the job directory:
    the writes fail, the file the link points to stays as it was, and nothing hangs."""
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's file\nwithout a newline at the end")
    writer = ProgressWriter(tmp_path / "job", min_interval=0, retry_after=0)
    writer.job_dir.mkdir()
    for name in ("progress.json", "metrics.jsonl"):
        if kind == "symlink":
            (writer.job_dir / name).symlink_to(outside)
        else:
            os.mkfifo(writer.job_dir / name)
    block_the_temp_file(writer)
    assert not writer.append_history({"step": 1})
    assert not writer.write_final({"status": "completed"})
    assert outside.read_text() == "someone else's file\nwithout a newline at the end"


def test_a_final_state_larger_than_the_old_files_space_is_not_forced_in(
    small_tmpfs: SmallTmpfs,
) -> None:
    """In place, the final state may only use the blocks the old file has: a larger one is
    refused, and the old file stays whole."""
    disk = small_tmpfs.mount(size_kib=64)
    writer = ProgressWriter(disk / "job", min_interval=0, retry_after=0)
    assert writer.write({"status": "running", "step": 7})
    small_tmpfs.fill(disk)
    assert not writer.write_final({"status": "completed", "notes": "x" * 5000})
    assert read_progress(writer.job_dir) == {"status": "running", "step": 7}
    assert str(writer.error) == "[Errno 28] no room for the final state in progress.json"


def test_a_job_directory_deleted_before_the_final_write_comes_back_with_both_files(
    tmp_path: Path,
) -> None:
    writer = ProgressWriter(tmp_path / "job", min_interval=0)
    writer.write({"status": "running"})
    writer.append_history({"step": 1})
    shutil.rmtree(writer.job_dir)
    assert writer.write_final({"status": "completed"})
    assert sorted(p.name for p in writer.job_dir.iterdir()) == ["metrics.jsonl", "progress.json"]
    assert read_progress(writer.job_dir) == {"status": "completed"}


def test_a_job_directory_replaced_by_a_file_is_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ProgressWriter(tmp_path / "job", min_interval=0)
    writer.write({"status": "running"})
    writer.append_history({"step": 1})
    shutil.rmtree(writer.job_dir)
    writer.job_dir.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="trainer"):
        assert not writer.append_history({"step": 2})
    assert caplog.records[-1].getMessage() == (
        f"cannot write {writer.job_dir}/metrics.jsonl: [Errno 20] the job directory is not a "
        f"directory: '{writer.job_dir}'; training goes on (said once)"
    )
    writer.close()


def test_an_interrupt_inside_the_final_write_has_it_run_again_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's own SIGINT handler raises KeyboardInterrupt in the middle of the write (here
    from inside its fsync): the write is run again whole, then the interrupt goes on."""
    writer = ProgressWriter(tmp_path / "job", min_interval=0)
    writer.write({"status": "running"})
    fsync = os.fsync
    sent: list[int] = []

    def fsync_then_sigint(fd: int) -> None:
        if not sent:
            sent.append(fd)
            os.kill(os.getpid(), signal.SIGINT)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_sigint)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            writer.write_final({"status": "completed"})
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sent and read_progress(writer.job_dir) == {"status": "completed"}
    assert sorted(p.name for p in writer.job_dir.iterdir()) == ["progress.json"]


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_whatever_is_at_the_temp_files_name_is_not_written_through(
    tmp_path: Path, kind: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's file")
    writer = ProgressWriter(tmp_path / "job", min_interval=0)
    writer.job_dir.mkdir()
    tmp = writer.job_dir / f".progress.json.{os.getpid()}.tmp"
    if kind == "symlink":
        tmp.symlink_to(outside)
    else:
        os.mkfifo(tmp)
    assert writer.write({"status": "running"})  # and no hang on the FIFO
    assert read_progress(writer.job_dir) == {"status": "running"}
    assert outside.read_text() == "someone else's file"


def test_a_history_file_with_other_hard_links_is_not_cut_or_appended_to(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's file\nwithout a newline at the end")
    writer = ProgressWriter(tmp_path / "job")
    writer.job_dir.mkdir()
    os.link(outside, writer.history_path)
    assert not writer.append_history({"step": 1})
    assert outside.read_text() == "someone else's file\nwithout a newline at the end"
    assert str(writer.error) == f"[Errno 31] {writer.history_path} has other hard links"
