"""A hint for a jobs root one level off: a new user's usual mistake.

``--root /data`` where the jobs lie in ``/data/jobs/<id>/progress.json`` (one level too high),
or ``--root /data/jobs/7f3a``, a job's own folder, which holds ``progress.json`` itself: either
way the sidecar serves no job, or a bogus pending one named after a folder. After each scan
that found no job's file, a look around the root, of a few entries at most (however many jobs
there are), says which ``--root`` was likely meant: once in the log, and in ``/healthz``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Final, NamedTuple

from sidecar.files.layout import JobLayout, Scan

logger = logging.getLogger(__name__)

MAX_DIRECTORIES: Final = 4
"""Folders of the root looked into for a job's file one level down."""
MAX_ENTRIES: Final = 64
"""Entries looked at in each listing (the root's, and each of those folders')."""


class Sighting(NamedTuple):
    """What a look around the root saw, beyond the scan."""

    own_file: bool
    """The root holds the job file's name itself (``<root>/progress.json``)."""
    file_below: Path | None
    """A job's file one level further down (``<root>/<folder>/<id>/progress.json``)."""


def root_hint(root: Path, name: str, *, jobs_with_file: bool, seen: Sighting) -> str | None:
    """The hint for ``root``, if it looks one level off; None when it looks right.

    Args:
        root: the jobs root.
        name: the name of a job's file (``progress.json``).
        jobs_with_file: whether the scan found any job with its file: then the root is right.
        seen: what a look around the root saw.
    """
    if jobs_with_file:
        return None
    if seen.own_file and root.parent != root:
        return (
            f"--root {root} holds {name} itself: it looks like a job's own folder; did you mean "
            f"--root {root.parent}?"
        )
    if seen.file_below is not None:
        return (
            f"--root {root} looks one level too high: {seen.file_below} is a job's file; did "
            f"you mean --root {seen.file_below.parent.parent}?"
        )
    return None


def look_around(root: Path, name: str) -> Sighting:
    """Whether ``root`` holds ``name``, and the first ``<root>/<folder>/<id>/<name>``, looking
    into ``MAX_DIRECTORIES`` folders and ``MAX_ENTRIES`` entries of each listing at most, by
    stat alone, following no symlink. Blocking."""
    own_file = _is_file(root / name)
    file_below = None
    try:
        folders = _folders(root)
    except OSError:
        folders = []
    for folder in folders[:MAX_DIRECTORIES]:
        try:
            jobs = _folders(folder)
        except OSError:
            continue
        file_below = next((job / name for job in jobs if _is_file(job / name)), None)
        if file_below is not None:
            break
    return Sighting(own_file, file_below)


def _folders(directory: Path) -> list[Path]:
    """The folders (not symlinks) among the first ``MAX_ENTRIES`` entries of ``directory``."""
    found = []
    with os.scandir(directory) as entries:
        for count, entry in enumerate(entries):
            if count >= MAX_ENTRIES:
                break
            try:
                if entry.is_dir(follow_symlinks=False):
                    found.append(Path(entry.path))
            except OSError:
                continue
    return found


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class RootHint:
    """The hint for the watched root, checked after each scan; a change is logged once.

    Args:
        layout: the jobs root and pattern. Only the usual layout, ``{job_id}/<name>``, gets
            hints.
    """

    def __init__(self, layout: JobLayout) -> None:
        self.layout = layout
        self.text: str | None = None
        """The hint now; None when the root looks right."""

    async def check(self, scan: Scan) -> None:
        """Update the hint after ``scan``; looks around the root (in a thread) only when the
        scan found no job's file."""
        name = self.layout.file_name
        if name is None:
            return
        root = self.layout.root
        jobs_with_file = any(signature is not None for signature in scan.jobs.values())
        if jobs_with_file:
            seen = Sighting(own_file=False, file_below=None)
        else:
            seen = await asyncio.to_thread(look_around, root, name)
        text = root_hint(root, name, jobs_with_file=jobs_with_file, seen=seen)
        if text == self.text:
            return
        if text is not None:
            logger.warning("%s", text)
        else:
            logger.info("the hint about --root %s no longer applies", root)
        self.text = text
