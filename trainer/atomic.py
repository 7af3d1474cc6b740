"""Replacing a file atomically: a temp file in the same directory, then ``os.replace``.

A reader sees the old text or the new one, never half of either.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_atomically(
    path: Path, text: str, *, durable: bool, make_dir: Callable[[], None]
) -> None:
    """Write ``text`` to a temp file next to ``path``, then rename it over ``path``.

    Raises what the file system raises; the temp file is gone after a failure.

    Args:
        path: the file to replace (it need not exist).
        text: its whole new text.
        durable: fsync the file and then its directory, so the new text survives a power cut.
        make_dir: called when ``path``'s directory is missing, to make it; tried once more after.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # A new file of our own, whatever was at that name (a leftover, a link, a FIFO).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileExistsError:
        tmp.unlink()
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        make_dir()
        fd = os.open(tmp, flags, 0o644)
    try:
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries durable (a rename is durable once its directory is)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
