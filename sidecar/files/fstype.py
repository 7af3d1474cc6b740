"""Which filesystem a path is on, by statfs(2) magic number: inotify sees no writes that other
machines make on a network filesystem, so the watcher polls there."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

# From linux/magic.h and the filesystems' own sources. GlusterFS, sshfs, s3fs and gcsfuse are
# FUSE filesystems: FUSE counts as network, since it is remote more often than not.
NETWORK_FILESYSTEMS = {
    0x6969: "nfs",
    0x517B: "smb",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x00C36400: "ceph",
    0x01021997: "9p",
    0x65735546: "fuse",
    0x0BD00BD0: "lustre",
    0x47504653: "gpfs",
    0x5346414F: "afs",
    0x6B414653: "kafs",
    0x73757245: "coda",
    0x564C: "ncp",
    0x19830326: "beegfs",
    0xAAD7AAEA: "panfs",
    0x013111A8: "ibrix",
}

_STATFS_BUFFER = 256  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first


def network_filesystem(magic: int) -> str | None:
    """The name of the network filesystem with this statfs magic, or None for a local one."""
    return NETWORK_FILESYSTEMS.get(magic & 0xFFFFFFFF)


def filesystem_magic(path: Path) -> int | None:
    """statfs(2)'s f_type for ``path``; None where it cannot be had (not Linux, an error)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buffer = ctypes.create_string_buffer(_STATFS_BUFFER)
        if libc.statfs(os.fsencode(path), buffer) != 0:
            return None
    except (OSError, AttributeError):
        return None
    size = ctypes.sizeof(ctypes.c_long)  # f_type is a __fsword_t: a long
    return int.from_bytes(buffer.raw[:size], sys.byteorder, signed=True)


def detect_network_filesystem(path: Path) -> str | None:
    """The network filesystem ``path`` is on, if any."""
    magic = filesystem_magic(path)
    return network_filesystem(magic) if magic is not None else None
