"""Network filesystems: detection by statfs magic, and the watcher's switch to polling."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sidecar.core.hub import JobHub
from sidecar.files.fstype import detect_network_filesystem, filesystem_magic, network_filesystem
from sidecar.files.layout import JobLayout
from sidecar.files.watcher import FileWatcher
from tests.helpers import wait_for, write_atomic


@pytest.mark.parametrize(
    ("magic", "name"),
    [
        (0x6969, "nfs"),
        (0xFF534D42, "cifs"),
        (-0xACB2BE, "cifs"),
        (0xFE534D42, "smb2"),
        (0x65735546, "fuse"),
    ],
)
def test_network_magics(magic: int, name: str) -> None:
    """Including a magic read back sign-extended from a 64-bit f_type."""
    assert network_filesystem(magic) == name


@pytest.mark.parametrize("magic", [0xEF53, 0x01021994, 0x9123683E, 0x58465342, 0x794C7630])
def test_local_magics(magic: int) -> None:
    """ext4, tmpfs, btrfs, xfs, overlayfs."""
    assert network_filesystem(magic) is None


def test_this_machines_temp_directory_is_local(tmp_path: Path) -> None:
    assert filesystem_magic(tmp_path) is not None
    assert detect_network_filesystem(tmp_path) is None
    assert filesystem_magic(tmp_path / "missing") is None


async def test_a_network_root_is_polled_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The watcher polls by itself on NFS, and polling still sees every atomic replace."""
    file = tmp_path / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 0})
    hub = JobHub()
    watcher = FileWatcher(
        JobLayout(tmp_path, "{job_id}/progress.json"),
        hub.apply,
        origin="here",
        poll_interval=0.02,
        detect_filesystem=lambda _: "nfs",
    )
    with caplog.at_level(logging.INFO, logger="sidecar.files.watcher"):
        task = asyncio.create_task(watcher.run())
        try:
            await asyncio.wait_for(watcher.ready.wait(), 5)
            assert watcher.mode == "polling"
            assert watcher.mode_reason.startswith("network filesystem (nfs)")
            for step in range(1, 4):
                write_atomic(file, {"status": "running", "step": step})
                await wait_for(
                    lambda step=step: hub.get("j").document.get("step") == step, what=f"step {step}"
                )  # type: ignore[union-attr]
        finally:
            task.cancel()
            await asyncio.wait([task])
    assert any("by polling (network filesystem (nfs)" in r.getMessage() for r in caplog.records)
