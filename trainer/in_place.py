"""Writing a job's file in place: the last resort for a final state on a full disk.

Only a plain file of the job's own is written in place (or cut back, as metrics.jsonl is):
anything else (a FIFO, a device, a file with other hard links) would change something else too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def overwrite_in_place(path: Path, text: str) -> None:
    """Write ``text`` over ``path`` in the old file's own blocks, padded with spaces (JSON
    allows them) to the old length so that no tail of the old text is left; fsynced.

    This needs no new space, so a full disk does not stop it on a file system that writes in
    place (ext4, XFS, tmpfs). It is not atomic: a reader may see a mix, for the moment of one
    ``pwrite``.

    Raises:
        FileNotFoundError: there is no old file to go over.
        OSError: it is not a plain file of its own (``EINVAL``, ``EMLINK``), or ``text`` does
            not fit in its blocks (``ENOSPC``).
    """
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # no O_CREAT: no space
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        check_own_file(st, path)
        data = text.encode()
        if len(data) > st.st_blocks * 512:
            raise OSError(errno.ENOSPC, f"no room for the final state in {path.name}")
        data += b" " * (st.st_size - len(data))
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(errno.ENOSPC, f"{path.name} written in part")
        os.fsync(fd)
    finally:
        os.close(fd)


def check_own_file(st: os.stat_result, path: Path) -> None:
    """Refuse what is not a plain file of the job's own.

    Raises:
        OSError: ``EINVAL`` for anything but a regular file, ``EMLINK`` for one with other
            hard links.
    """
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"{path} is not a regular file")
    if st.st_nlink > 1:
        raise OSError(errno.EMLINK, f"{path} has other hard links")
