"""Where the demo's jobs go: a new folder for each run, and the folders it made, removed again
when it stops before anything was written there."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path


def run_folder(base: Path, stamp: str) -> Path:
    """A new folder under ``base`` for this run's jobs."""
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    return folder


def make_job_folders(folders: Sequence[Path]) -> list[Path]:
    """Make ``folders`` (and their missing parents); returns every folder made, deepest first."""
    created: list[Path] = []
    for folder in folders:
        created[:0] = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True)
    return created


def remove_empty(created: Sequence[Path]) -> None:
    """Remove the folders ``make_job_folders`` made, as long as nothing was written there."""
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()
