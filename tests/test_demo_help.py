"""scripts/demo and demo.py --help: fast, before any install, with every default shown."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.demo import DEMO, REPO


def project_before_install(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the scripts and of the one sidecar module the demo's options need, with a
    scripts/install that only leaves a mark; and an environment whose ``python3`` is the
    interpreter beneath the venv, with no package of the venv's (nor of a user's) to import."""
    project = tmp_path / "project"
    shutil.copytree(
        REPO / "scripts", project / "scripts", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("sidecar/__init__.py", "sidecar/core/__init__.py", "sidecar/core/argtypes.py"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, project / name)
    install = project / "scripts" / "install"
    install.write_text(f'#!/usr/bin/env bash\ntouch "{project / "installed"}"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (bin_dir / "python3").symlink_to(Path(sys.base_prefix) / "bin" / version)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "100"}
    return project, env


def test_demo_wrapper_help_answers_at_once_without_installing(tmp_path: Path) -> None:
    """`scripts/demo --help` prints demo.py's own help within seconds, before (and without)
    the install, on the system's Python; a mistake fails as fast, and valid options do install."""
    project, env = project_before_install(tmp_path)
    demo = [str(project / "scripts" / "demo")]
    files = sorted(project.rglob("*"))
    began = time.monotonic()
    result = subprocess.run([*demo, "--help"], capture_output=True, text=True, env=env, timeout=20)
    took = time.monotonic() - began
    own = subprocess.run(
        [sys.executable, str(DEMO), "--help"], capture_output=True, text=True, timeout=20,
        env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.startswith("usage: scripts/demo ") and result.stdout == own.stdout
    assert took < 5, took
    assert sorted(project.rglob("*")) == files  # no install, nor anything else written

    result = subprocess.run(
        [*demo, "--no-such-option"], capture_output=True, text=True, env=env, timeout=20
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert "unrecognized arguments: --no-such-option" in result.stderr
    assert sorted(project.rglob("*")) == files

    # Valid options go on to the install (here the stand-in), which the checks above would see.
    subprocess.run([*demo, "--once"], capture_output=True, env=env, timeout=20)
    assert (project / "installed").exists()


def test_demo_help_shows_every_default() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--help"], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for option, default in [
        ("--root DIR", "(default: a new folder for each run: ./jobs/<date>-<time>)"),
        ("--port PORT", "(default: 8765)"),
        ("--steps STEPS", "(default: 400)"),
        ("--once", "(default: keep serving until Ctrl-C)"),
        ("--cluster", "(default: one sidecar, no Redis)"),
    ]:
        assert re.search(re.escape(option) + r" [^-]*" + re.escape(default), text), option
    assert "None" not in text and "False" not in text
