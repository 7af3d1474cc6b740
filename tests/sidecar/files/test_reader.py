from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar.files.reader import Document, Missing, Unreadable, read_progress


def test_reads_an_object(tmp_path: Path) -> None:
    file = tmp_path / "p.json"
    file.write_text('{"status": "running", "loss": NaN}')
    result = read_progress(file)
    assert isinstance(result, Document)
    assert result.data == {"status": "running", "loss": None}
    assert result.signature.inode == file.stat().st_ino
    assert result.modified_at == pytest.approx(file.stat().st_mtime)


def test_missing_file(tmp_path: Path) -> None:
    assert read_progress(tmp_path / "nope.json") == Missing()
    assert read_progress(tmp_path / "nodir" / "p.json") == Missing()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"  \n", "empty file"),
        (b'{"a": ', "invalid json: Expecting value at line 1 column 7"),
        (b"[1]", "json is an array, not an object"),
        (b"3", "json is a number, not an object"),
        (b'"s"', "json is a string, not an object"),
        (b"true", "json is a boolean, not an object"),
        (b"null", "json is null, not an object"),
        (b'{"a": "\xc3\x28"}', "not utf-8 (byte 7)"),
        (b"[" * 10_000 + b"]" * 10_000, "nesting too deep (over 64 levels)"),
        # Deep enough to pass the parser yet break a recursive walk after it (issue 20).
        (b'{"a":' * 700 + b"1" + b"}" * 700, "nesting too deep (over 64 levels)"),
    ],
)
def test_unreadable_content(tmp_path: Path, content: bytes, reason: str) -> None:
    file = tmp_path / "p.json"
    file.write_bytes(content)
    assert read_progress(file) == Unreadable(reason)


def test_size_cap(tmp_path: Path) -> None:
    file = tmp_path / "p.json"
    file.write_bytes(b'{"a": "' + b"x" * 2000 + b'"}')
    assert read_progress(file, max_bytes=1000) == Unreadable(
        "file too large (2009 bytes, limit 1000)"
    )
    assert isinstance(read_progress(file, max_bytes=2009), Document)


def test_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "outside.json"
    target.write_text("{}")
    link = tmp_path / "p.json"
    link.symlink_to(target)
    assert read_progress(link) == Unreadable("symlink not followed")


def test_fifo_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    assert read_progress(fifo) == Unreadable("not a regular file")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "p.json").mkdir()
    assert read_progress(tmp_path / "p.json") == Unreadable("not a regular file")
