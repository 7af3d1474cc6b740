"""Reading one progress file safely: no symlinks, no FIFOs, a size cap, strict JSON."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sidecar.core.codec import JSONObject, decode_document
from sidecar.core.contract import MAX_FILE_BYTES, clamp_time
from sidecar.files.beneath import open_beneath
from sidecar.files.layout import FileSignature

DEFAULT_MAX_BYTES = MAX_FILE_BYTES


@dataclass(frozen=True, slots=True)
class Document:
    """A good read: a JSON object and the stat of the file it came from."""

    data: JSONObject
    signature: FileSignature

    @property
    def modified_at(self) -> float:
        """The file's mtime, within the times a timestamp can show (a file may be dated in
        the year 33658, or before 1970)."""
        return clamp_time(self.signature.mtime_ns / 1e9)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The file exists but gave no JSON object; ``reason`` is short and lowercase."""

    reason: str

    @property
    def kind(self) -> str:
        """The reason as one of a few stable words (a metric's label)."""
        return next((kind for prefix, kind in _KINDS if self.reason.startswith(prefix)), "other")


_KINDS = (
    ("empty", "empty"),
    ("invalid json", "invalid_json"),
    ("json is", "not_object"),
    ("not utf-8", "not_utf8"),
    ("nesting too deep", "too_deep"),
    ("file too large", "too_large"),
    ("symlink", "symlink"),
    ("not a regular file", "not_regular"),
    ("permission denied", "permission"),
    ("progress file missing", "missing"),
    ("cannot", "io"),
)


@dataclass(frozen=True, slots=True)
class Missing:
    """There is no file at the path."""


ReadResult = Document | Unreadable | Missing

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK


def read_progress(
    path: Path, *, root: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> ReadResult:
    """Read and parse a progress file without ever blocking on it or following a link.

    Args:
        path: the file.
        root: the jobs root: no symlink below it is followed (a symlinked job directory reads
            as no file at all); by default the file's own directory.
        max_bytes: larger files are refused unread.
    """
    try:
        fd = open_beneath(root or path.parent, path, _OPEN_FLAGS)
    except FileNotFoundError:
        return Missing()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return Unreadable("symlink not followed")
        if e.errno in (errno.EACCES, errno.EPERM):
            return Unreadable("permission denied")
        if e.errno == errno.ENOTDIR:
            return Missing()
        return Unreadable(f"cannot open: {os.strerror(e.errno or 0).lower()}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return Unreadable("not a regular file")
        if st.st_size > max_bytes:
            return Unreadable(f"file too large ({st.st_size} bytes, limit {max_bytes})")
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as e:
        return Unreadable(f"cannot read: {os.strerror(e.errno or 0).lower()}")
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return Unreadable(f"file too large (over {max_bytes} bytes)")
    if not data.strip():
        return Unreadable("empty file")
    try:
        value = decode_document(data)
    except ValueError as e:
        return Unreadable(str(e))
    if not isinstance(value, dict):
        return Unreadable(f"json is {_kind(value)}, not an object")
    return Document(value, FileSignature.of(st))


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
