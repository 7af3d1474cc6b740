"""A real, small tmpfs, mounted for a test and filled to the free space it asks for.

Mounting needs root: CI runs as root; elsewhere the tests that need one are skipped, with the
reason, and under ``CI=true`` they fail instead, so that CI cannot skip them quietly.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

from tests.helpers import unavailable


def _cannot(reason: str) -> None:
    unavailable(f"{reason} (CI runs these tests as root)")


class SmallTmpfs:
    """Mounts tmpfs file systems under ``base``; ``unmount_all`` takes them down."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.mounted: list[Path] = []

    def mount(self, *, size_kib: int) -> Path:
        """A new tmpfs of ``size_kib`` KiB, empty."""
        if os.geteuid() != 0:
            _cannot("mounting a tmpfs needs root")
        point = self.base / f"tmpfs{len(self.mounted)}"
        point.mkdir(parents=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            _cannot(f"cannot mount a tmpfs: {done.stderr.strip()}")
        self.mounted.append(point)
        return point

    def fill(self, point: Path, *, leave_kib: int = 0) -> Path:
        """Fill the file system at ``point`` with a file of zeros until ``leave_kib`` KiB are free;
        returns that file (delete it to free the space again)."""
        filler = point / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
        os.truncate(filler, max(0, filler.stat().st_size - leave_kib * 1024))
        return filler

    def unmount_all(self) -> None:
        for point in reversed(self.mounted):
            subprocess.run(["umount", "--lazy", str(point)], check=True)
        self.mounted.clear()
