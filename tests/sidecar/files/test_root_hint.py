"""The hint for a jobs root one level off: the decision alone, then the look around real
directories, and its cost."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sidecar.files import root_hint as module
from sidecar.files.root_hint import MAX_DIRECTORIES, Sighting, look_around, root_hint
from tests.helpers import write_atomic

NOTHING = Sighting(own_file=False, file_below=None)
RUNNING = {"status": "running"}


def test_root_hint_too_high_names_the_folder_above_the_job() -> None:
    seen = Sighting(own_file=False, file_below=Path("/data/jobs/7f3a/progress.json"))
    assert root_hint(Path("/data"), "progress.json", jobs_with_file=False, seen=seen) == (
        "--root /data looks one level too high: /data/jobs/7f3a/progress.json is a job's "
        "file; did you mean --root /data/jobs?"
    )


def test_root_hint_own_folder_names_its_parent() -> None:
    seen = Sighting(own_file=True, file_below=None)
    assert root_hint(Path("/x/job1"), "progress.json", jobs_with_file=False, seen=seen) == (
        "--root /x/job1 holds progress.json itself: it looks like a job's own folder; did you "
        "mean --root /x?"
    )


@pytest.mark.parametrize(
    "seen",
    [NOTHING, Sighting(True, None), Sighting(False, Path("/r/a/b/progress.json"))],
)
def test_root_hint_none_once_a_job_has_its_file(seen: Sighting) -> None:
    """A root where any job has its file is right, whatever lies around it."""
    assert root_hint(Path("/r"), "progress.json", jobs_with_file=True, seen=seen) is None


def test_root_hint_none_for_an_empty_root_or_the_filesystem_root() -> None:
    assert root_hint(Path("/r"), "progress.json", jobs_with_file=False, seen=NOTHING) is None
    own = Sighting(own_file=True, file_below=None)
    assert root_hint(Path("/"), "progress.json", jobs_with_file=False, seen=own) is None


def test_look_around_finds_a_job_one_level_down(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    write_atomic(tmp_path / "jobs" / "7f3a" / "progress.json", RUNNING)
    seen = look_around(tmp_path, "progress.json")
    assert seen == Sighting(False, tmp_path / "jobs" / "7f3a" / "progress.json")


def test_look_around_finds_the_roots_own_file(tmp_path: Path) -> None:
    write_atomic(tmp_path / "progress.json", RUNNING)
    (tmp_path / "checkpoint-100").mkdir()
    assert look_around(tmp_path, "progress.json") == Sighting(True, None)


def test_look_around_follows_no_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write_atomic(elsewhere / "7f3a" / "progress.json", RUNNING)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "jobs").symlink_to(elsewhere)
    (tmp_path / "root" / "progress.json").symlink_to(elsewhere / "7f3a" / "progress.json")
    assert look_around(tmp_path / "root", "progress.json") == NOTHING


def test_look_around_a_missing_root_sees_nothing(tmp_path: Path) -> None:
    assert look_around(tmp_path / "missing", "progress.json") == NOTHING


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every directory the look around lists (a spy on the real ``os.scandir``)."""
    listed: list[str] = []
    real = os.scandir

    def scandir(path: Any) -> Any:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(module.os, "scandir", scandir)
    return listed


def test_look_around_many_job_folders_opens_a_handful(tmp_path: Path, listings: list[str]) -> None:
    """A root of many folders without a job file (all pending) costs a few listings, not one
    a folder."""
    for i in range(300):
        (tmp_path / f"job{i}" / "checkpoints").mkdir(parents=True)
    assert look_around(tmp_path, "progress.json") == NOTHING
    assert len(listings) == 1 + MAX_DIRECTORIES
