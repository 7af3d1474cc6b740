"""scripts/install, run for real on a copy of the project, with a stand-in Python whose pip
only records what it is asked: the steps, their lines, the log, the stamps; not pip itself
(installing torch takes a minute: scripts/test and CI run the real thing on a new machine)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).parents[1]
# Stands in for python3 and, copied by "-m venv", for .venv/bin/python.
STUB_PYTHON = """#!/usr/bin/env bash
case "$1 $2" in
    "-m venv") mkdir -p "$3/bin" && cp -p "$0" "$3/bin/python" ;;
    "-m pip")
        echo "pip ${*:3}"
        if [ -n "${FAIL_ON:-}" ] && [[ "$*" == *"$FAIL_ON"* ]]; then
            echo "ERROR: no matching distribution for $FAIL_ON"
            exit 1
        fi ;;
esac
"""
STEP = r"\[{n}/{total}\] {what} \(~\d+ s\) \.\.\. done in \d+ s"


def make_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "install", project / "scripts" / "install")
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy2(REPO / name, project / name)
    stub = tmp_path / "python3"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    return project


def install(project: Path, *args: str, fail_on: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHON": str(project.parent / "python3"),
        "FAIL_ON": fail_on,
    }
    return subprocess.run(
        [str(project / "scripts" / "install"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_install_prints_each_step_with_its_usual_and_its_actual_time(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = install(project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("installing progress-sidecar[test,train] into .venv: ")
    assert "(pip's output: .venv/install.log)" in lines[0]
    expected = [
        STEP.format(n=1, total=4, what=r"creating \.venv"),
        STEP.format(n=2, total=4, what="upgrading pip"),
        STEP.format(n=3, total=4, what=r"torch==2\.13\.0, CPU build"),
        STEP.format(n=4, total=4, what=r"progress-sidecar\[test,train\] and its dependencies"),
        r"installed in \d+ s",
    ]
    assert len(lines) == 1 + len(expected), lines
    for line, pattern in zip(lines[1:], expected, strict=True):
        assert re.fullmatch(pattern, line), line
    pips = (project / ".venv" / "install.log").read_text().splitlines()
    assert [line.split()[-1] for line in pips] == ["pip", "torch==2.13.0", ".[test,train]"]


def test_install_up_to_date_prints_nothing_until_setup_cfg_changes(tmp_path: Path) -> None:
    """Nothing to do for the extras installed, or fewer (scripts/demo after scripts/test);
    a newer setup.cfg installs again, in the venv already there."""
    project = make_project(tmp_path)
    assert install(project, "test,train").returncode == 0
    log = project / ".venv" / "install.log"
    before = log.read_text()
    for extras in ("test,train", "train", "test", ""):
        result = install(project, extras)
        assert (result.returncode, result.stderr) == (0, ""), extras
    assert log.read_text() == before

    stamp = (project / ".venv" / ".installed-test,train").stat().st_mtime
    os.utime(project / "setup.cfg", (stamp + 10, stamp + 10))
    result = install(project, "train")
    assert result.returncode == 0, result.stderr
    steps = [line.split(" (")[0] for line in result.stderr.splitlines()[1:-1]]
    assert steps == [
        "[1/3] upgrading pip",
        "[2/3] torch==2.13.0, CPU build",
        "[3/3] progress-sidecar[train] and its dependencies",
    ]


def test_install_failure_names_the_step_and_shows_the_end_of_the_log(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = install(project, "test,train", fail_on="torch==")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    failed = next(i for i, line in enumerate(lines) if "failed after" in line)
    assert re.fullmatch(
        r"\[3/4\] torch==2\.13\.0, CPU build \(~\d+ s\) \.\.\. failed after \d+ s; "
        r"the end of \.venv/install\.log:",
        lines[failed],
    ), lines
    log = (project / ".venv" / "install.log").read_text().splitlines()
    assert lines[failed + 1 :] == log[-30:]
    assert log[-1] == "ERROR: no matching distribution for torch=="
    assert not list((project / ".venv").glob(".installed-*"))
    assert "[4/4]" not in result.stderr
