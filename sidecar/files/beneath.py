"""Opening a file under the jobs root without ever leaving it: no symlink is followed below it.

``O_NOFOLLOW`` guards only a path's last component; a job directory that is a symlink
(``root/job -> /etc``) would still lead out of the root. Here every component below the root is
opened on its own, relative to its parent (``openat``) and with ``O_NOFOLLOW``, so a symlink
anywhere on the way fails (``ENOTDIR`` for a directory on the way, ``ELOOP`` for the file
itself) instead of being followed. The root itself may be a
symlink: it is the operator's choice.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class OutsideRoot(ValueError):
    """The path is not below the root."""


def open_beneath(root: Path, path: Path, flags: int) -> int:
    """Open ``path`` (below ``root``) with ``flags``, following no symlink below ``root``.

    Args:
        root: the jobs root (followed if it is a symlink).
        path: the file, below ``root``.
        flags: ``os.open`` flags; ``O_NOFOLLOW`` and ``O_CLOEXEC`` are added.

    Returns:
        The file descriptor; the caller closes it.

    Raises:
        OutsideRoot: ``path`` does not lie below ``root``.
        OSError: as ``os.open``; ``ENOTDIR`` for a symlink (or a file) where a directory
            should be, ``ELOOP`` when the file itself is a symlink.
    """
    parts = relative_parts(root, path)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def relative_parts(root: Path, path: PurePath) -> tuple[str, ...]:
    """The components of ``path`` below ``root``; none of them is ``.`` or ``..``.

    Raises:
        OutsideRoot: ``path`` is ``root`` itself or does not lie below it.
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError as e:
        raise OutsideRoot(f"{path} is not below {root}") from e
    if not parts or any(part in (".", "..") for part in parts):
        raise OutsideRoot(f"{path} is not below {root}")
    return parts


def stat_beneath(root: Path, path: Path) -> os.stat_result:
    """``lstat`` of ``path`` reached as ``open_beneath`` does: a symlinked directory on the way
    fails with ``ENOTDIR``, and a symlink at the end is reported as one, not followed.

    Raises:
        OutsideRoot: ``path`` does not lie below ``root``.
        OSError: as ``os.open`` and ``os.stat``.
    """
    parts = relative_parts(root, path)
    if len(parts) > 1:
        parent = open_beneath(root, path.parent, os.O_PATH | os.O_DIRECTORY)
    else:
        parent = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)
