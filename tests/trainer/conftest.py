from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.small_tmpfs import SmallTmpfs


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[SmallTmpfs]:
    """Real small tmpfs file systems for full-disk tests (root only; see small_tmpfs.py)."""
    tmpfs = SmallTmpfs(tmp_path / "mounts")
    try:
        yield tmpfs
    finally:
        tmpfs.unmount_all()
