from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar.core.contract import is_valid_job_id
from sidecar.files.layout import JobLayout


@pytest.mark.parametrize("job_id", ["a", "job_abc123", "A.b-c_d", "0", "a" * 128, "a..b"])
def test_valid_job_ids(job_id: str) -> None:
    assert is_valid_job_id(job_id)


@pytest.mark.parametrize(
    "job_id",
    [
        "",
        ".",
        "..",
        ".hidden",
        "-x",
        "_x",
        "a/b",
        "a\\b",
        "a" * 129,
        "a b",
        "é",
        "a\x00",
        "a\n",
        "%2e%2e",
    ],
)
def test_invalid_job_ids(job_id: str) -> None:
    assert not is_valid_job_id(job_id)


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "/abs/{job_id}.json",
        "progress.json",
        "{job_id}/{job_id}.json",
        "../{job_id}.json",
        "{job_id}/{x}",
        "a\\{job_id}",
    ],
)
def test_invalid_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid pattern"):
        JobLayout(Path("/r"), pattern)


def test_default_pattern_maps_ids_and_paths() -> None:
    layout = JobLayout(Path("/r"), "{job_id}/progress.json")
    assert layout.file_for("j1") == Path("/r/j1/progress.json")
    assert layout.dir_for("j1") == Path("/r/j1")
    assert layout.job_of("/r/j1/progress.json") == "j1"
    assert layout.job_of("/r/j1/.progress.json.tmp") == "j1"
    assert layout.job_of("/r/j1") == "j1"
    assert layout.job_of("/r") is None
    assert layout.job_of("/r/.git/x") is None
    assert layout.job_of("/other/j1/progress.json") is None


def test_pattern_without_a_job_directory() -> None:
    layout = JobLayout(Path("/r"), "runs/progress-{job_id}.json")
    assert layout.file_for("j1") == Path("/r/runs/progress-j1.json")
    assert layout.dir_for("j1") is None
    assert layout.job_of("/r/runs/progress-j1.json") == "j1"
    assert layout.job_of("/r/runs/other.json") is None


def test_nested_job_directory() -> None:
    layout = JobLayout(Path("/r"), "team/{job_id}/out/progress.json")
    assert layout.dir_for("j1") == Path("/r/team/j1")
    assert layout.job_of("/r/team/j1/out") == "j1"


def test_scan_finds_files_and_bare_job_directories(tmp_path: Path) -> None:
    (tmp_path / "with-file").mkdir()
    (tmp_path / "with-file" / "progress.json").write_text("{}")
    (tmp_path / "bare").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a-file").write_text("")
    found = JobLayout(tmp_path, "{job_id}/progress.json").scan().jobs
    assert sorted(found) == ["bare", "with-file"]
    assert found["bare"] is None
    signature = found["with-file"]
    assert signature is not None
    st = os.stat(tmp_path / "with-file" / "progress.json")
    assert (signature.inode, signature.size, signature.mtime_ns) == (st.st_ino, 2, st.st_mtime_ns)


def test_scan_without_job_directories(tmp_path: Path) -> None:
    (tmp_path / "p-a.json").write_text("{}")
    (tmp_path / "p-.json").write_text("{}")
    assert list(JobLayout(tmp_path, "p-{job_id}.json").scan().jobs) == ["a"]
