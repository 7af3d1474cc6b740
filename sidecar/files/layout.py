"""Where a job's files lie under the jobs root: job ids, the path pattern, and the scan."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from sidecar.core.contract import HISTORY_FILE, JOB_ID_PATTERN, is_valid_job_id
from sidecar.files.beneath import stat_beneath

PLACEHOLDER = "{job_id}"


class FileSignature(NamedTuple):
    """What a stat says of a file; any change in it means the content may have changed."""

    inode: int
    size: int
    mtime_ns: int
    mode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileSignature:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, stat.S_IFMT(st.st_mode))


class Scan(NamedTuple):
    """What a scan found: each job and its file's signature (None: a job directory without a
    file), how many stat calls it made on jobs (directory listings aside), the paths it did not
    follow because they are symlinks (or lie behind one), and the mtime of the directory of
    each job without a file that the scan was not told it knows (the usual layout only), so
    that such a job can be published as pending without another look."""

    jobs: dict[str, FileSignature | None]
    stats: int
    links: list[Path]
    dir_mtimes: dict[str, float]


@dataclass(frozen=True)
class JobLayout:
    """Maps job ids to paths under ``root`` by a pattern such as ``{job_id}/progress.json``.

    Args:
        root: the jobs root.
        pattern: a relative path holding ``{job_id}`` once. When ``{job_id}`` is a whole
            directory name, that directory is the job directory: the job exists (as pending)
            while it exists, even before its file does.
    """

    root: Path
    pattern: str
    _job_re: re.Pattern[str] = field(init=False, repr=False)
    _dir_parts: tuple[str, ...] | None = field(init=False, repr=False)
    _root_length: int = field(init=False, repr=False)  # of "<root>/", to make paths relative
    _name_in_dir: str | None = field(init=False, repr=False)  # of "{job_id}/<name>" patterns

    def __post_init__(self) -> None:
        parts = PurePosixPath(self.pattern).parts
        if (
            not parts
            or PurePosixPath(self.pattern).is_absolute()
            or self.pattern.count(PLACEHOLDER) != 1
            or self.pattern.replace(PLACEHOLDER, "").count("{")
            or self.pattern.replace(PLACEHOLDER, "").count("}")
            or any(p in (".", "..") for p in parts)
            or "\\" in self.pattern
        ):
            raise ValueError(
                f"invalid pattern {self.pattern!r}: want a relative path with {PLACEHOLDER} once"
            )
        index = next(i for i, p in enumerate(parts) if PLACEHOLDER in p)
        dir_parts = (
            parts[: index + 1] if parts[index] == PLACEHOLDER and index < len(parts) - 1 else None
        )
        file_re = "/".join(_part_regex(p) for p in parts)
        if dir_parts is not None:
            job_re = "/".join(_part_regex(p) for p in dir_parts) + "(?:/.*)?"
        else:
            job_re = file_re
        object.__setattr__(self, "_job_re", re.compile(job_re))
        object.__setattr__(self, "_root_length", len(str(self.root)) + 1)
        object.__setattr__(self, "_dir_parts", dir_parts)
        in_dir = len(parts) == 2 and parts[0] == PLACEHOLDER
        object.__setattr__(self, "_name_in_dir", parts[1] if in_dir else None)

    @property
    def file_name(self) -> str | None:
        """The name of a job's file in the usual layout, ``{job_id}/<name>``; None in others."""
        return self._name_in_dir

    def file_for(self, job_id: str) -> Path:
        """The progress file of a job; ``job_id`` must be valid."""
        assert is_valid_job_id(job_id), job_id
        return self.root / self.pattern.replace(PLACEHOLDER, job_id)

    def history_for(self, job_id: str) -> Path:
        """The job's metrics history, beside its progress file."""
        return self.file_for(job_id).with_name(HISTORY_FILE)

    def dir_for(self, job_id: str) -> Path | None:
        """The job directory, when the pattern has one."""
        assert is_valid_job_id(job_id), job_id
        if self._dir_parts is None:
            return None
        return self.root.joinpath(*self._dir_parts[:-1], job_id)

    def job_of(self, path: str) -> str | None:
        """The job that a changed path (anywhere under the root) concerns, if any."""
        prefix = str(self.root) + os.sep
        if not path.startswith(prefix):
            return None
        match = self._job_re.fullmatch(path[len(prefix) :])
        return match.group("job_id") if match else None

    def role_of(self, path: str) -> tuple[str, str] | None:
        """The job a changed path concerns and what it is to that job: ``progress`` (its file),
        ``history`` (its metrics.jsonl), ``dir`` (its directory) or ``other``."""
        job_id = self.job_of(path)
        if job_id is None:
            return None
        if path == str(self.file_for(job_id)):
            return job_id, "progress"
        if path == str(self.history_for(job_id)):
            return job_id, "history"
        if path == str(self.dir_for(job_id)):
            return job_id, "dir"
        return job_id, "other"

    def scan(self, *, known: Container[str] = ()) -> Scan:
        """Every job under the root, by stat alone (no file is opened), following no symlink
        below the root. Blocking.

        Args:
            known: jobs whose directory's mtime is not wanted (looked up from the scan's thread:
                a stale answer costs only a look or a read more).
        """
        found: dict[str, FileSignature | None] = {}
        links: set[Path] = set()
        stats = 0
        # Listing the root (the usual layout) needs it opened for reading; the other layouts
        # glob by path and need only a handle to stat from (a root they may search, not read).
        mode = os.O_RDONLY if self._name_in_dir is not None else os.O_PATH
        try:
            root_fd = os.open(self.root, mode | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return Scan(found, stats, [], {})
        try:
            if self._name_in_dir is not None:
                return self._scan_job_directories(root_fd, self._name_in_dir, known)
            if self._dir_parts is not None:
                glob = "/".join(self._dir_parts).replace(PLACEHOLDER, "*")
                for job_dir in self.root.glob(glob):
                    job_id = self.job_of(str(job_dir))
                    if job_id is None:
                        continue
                    stats += 2
                    dir_stat = self._lstat(root_fd, job_dir)
                    if isinstance(dir_stat, Path):
                        links.add(dir_stat)
                    elif dir_stat is not None and stat.S_ISLNK(dir_stat.st_mode):
                        links.add(job_dir)
                    elif dir_stat is not None and stat.S_ISDIR(dir_stat.st_mode):
                        file_stat = self._lstat(root_fd, self.file_for(job_id), below=job_dir)
                        signature = (
                            FileSignature.of(file_stat)
                            if isinstance(file_stat, os.stat_result)
                            else None
                        )
                        found[job_id] = signature
            else:
                for file in self.root.glob(self.pattern.replace(PLACEHOLDER, "*")):
                    job_id = self.job_of(str(file))
                    stats += 1
                    file_stat = self._lstat(root_fd, file)
                    if isinstance(file_stat, Path):
                        links.add(file_stat)
                    elif job_id is not None and file_stat is not None:
                        found[job_id] = FileSignature.of(file_stat)
        finally:
            os.close(root_fd)
        return Scan(found, stats, sorted(links), {})

    def _scan_job_directories(self, root_fd: int, name: str, known: Container[str]) -> Scan:
        """The scan of the usual layout, ``{job_id}/<name>``: one listing of the root and one
        ``fstatat`` a job, from the open root, with no path object made (a scan runs every few
        seconds over every job: docs/benchmarks.md, idle). A directory's kind comes from the
        listing; one swapped for a symlink before the ``fstatat`` can only lend a signature,
        which makes the job be read again (through ``open_beneath``), never followed."""
        found: dict[str, FileSignature | None] = {}
        links: list[Path] = []
        dir_mtimes: dict[str, float] = {}
        stats = 0
        with os.scandir(root_fd) as entries:
            for entry in entries:
                job_id = entry.name
                if not is_valid_job_id(job_id):
                    continue
                try:
                    if entry.is_symlink():
                        links.append(self.root / job_id)
                        continue
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                stats += 1
                try:
                    file_stat = os.stat(f"{job_id}/{name}", dir_fd=root_fd, follow_symlinks=False)
                except OSError:
                    found[job_id] = None
                    if job_id not in known:
                        with contextlib.suppress(OSError):
                            dir_mtimes[job_id] = entry.stat(follow_symlinks=False).st_mtime
                else:
                    found[job_id] = FileSignature.of(file_stat)
        return Scan(found, stats, sorted(links), dir_mtimes)

    def _lstat(
        self, root_fd: int, path: Path, *, below: Path | None = None
    ) -> os.stat_result | Path | None:
        """``lstat`` for the scan: one ``fstatat`` from the open root when ``path`` lies
        directly in the root, or directly in ``below``, a directory this scan found real (the
        usual ``{job_id}/progress.json``: two calls a job); ``lstat`` otherwise. A symlink
        swapped in for ``below`` meanwhile could only lend a signature, which makes the job be
        read again (through ``open_beneath``), never followed."""
        parent = path.parent
        if parent == self.root or parent == below:
            try:
                return os.stat(
                    str(path)[self._root_length :], dir_fd=root_fd, follow_symlinks=False
                )
            except OSError:
                return None
        return self.lstat(path)

    def lstat(self, path: Path) -> os.stat_result | Path | None:
        """``lstat`` of a path below the root, reached without following any symlink below the
        root; if a directory on the way is a symlink, that symlink's path; None if absent."""
        try:
            return stat_beneath(self.root, path)
        except OSError as e:
            if e.errno != errno.ENOTDIR:
                return None
            below = [p for p in path.parents if p != self.root and p.is_relative_to(self.root)]
            return next((p for p in reversed(below) if p.is_symlink()), None)


def _part_regex(part: str) -> str:
    before, placeholder, after = part.partition(PLACEHOLDER)
    if not placeholder:
        return re.escape(part)
    return f"{re.escape(before)}(?P<job_id>{JOB_ID_PATTERN}){re.escape(after)}"
