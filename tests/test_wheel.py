"""The project as a wheel, installed in a clean venv of its own, as a team with its own training
environment would use it (docs/trainer.md, "Use it in your own environment"): the sidecar serves
its dashboard and a job written by the wheel's trainer, with nothing taken from the checkout.

The wheel is built from a copy of the checkout's packaging files and packages: an in-tree build
would write build/ and *.egg-info into the checkout, under the feet of anything else running
there. The venv gets the wheel's dependencies from the package index (a few MB), so this test
needs it reachable.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from scripts.support.listening import wait_listening
from tests.helpers import unavailable

REPO = Path(__file__).parents[1]
STATIC = REPO / "sidecar" / "server" / "static"
PACKAGING = ("setup.cfg", "pyproject.toml", "README.md")
PACKAGES = ("sidecar", "trainer")
UNREACHABLE = re.compile(
    r"Network is unreachable|Temporary failure in name resolution|NewConnectionError|"
    r"No matching distribution found"
)

WRITE_JOB = """
import json, sys
from pathlib import Path

import trainer
from trainer.writer import ProgressWriter, progress_document

root, job_id = sys.argv[1], sys.argv[2]
writer = ProgressWriter(Path(root) / job_id)
assert writer.write(progress_document(job_id, "running", {"progress": 42.0, "current_step": 42}))
print(json.dumps({"trainer": trainer.__file__, "torch": "torch" in sys.modules}))
"""


def run(*args: str | Path, cwd: Path, timeout: float) -> str:
    """Run a command outside the checkout, with no trace of it in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def install_from_the_index(venv: Path, wheel: Path, *, cwd: Path) -> None:
    """Install the wheel, its dependencies from the package index (a machine that cannot
    reach it skips the test; CI, which can, fails it)."""
    try:
        run(
            venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check",
            wheel, cwd=cwd, timeout=240,
        )  # fmt: skip
    except AssertionError as e:
        if UNREACHABLE.search(str(e)) is None:
            raise
        unavailable(f"the package index is not reachable: {str(e).strip().splitlines()[-1]}")


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in PACKAGING:
        shutil.copy2(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    dist = tmp_path / "dist"
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "-w", dist, source,
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    (wheel,) = dist.glob("progress_sidecar-*.whl")
    return wheel


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


@pytest.mark.timeout(300)
def test_wheel_in_a_clean_venv_serves_the_dashboard_and_a_job_of_its_trainer(
    tmp_path: Path,
) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    static = {p.relative_to(REPO).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    assert static and static <= packed, f"not in the wheel: {sorted(static - packed)}"
    assert "trainer/data/corpus.txt" in packed

    outside = tmp_path / "elsewhere"  # every command runs here, out of the checkout
    outside.mkdir()
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=outside, timeout=120)
    install_from_the_index(venv, wheel, cwd=outside)
    where = run(
        venv / "bin" / "python", "-c", "import sidecar, trainer; print(sidecar.__file__); "
        "print(trainer.__file__)", cwd=outside, timeout=30,
    ).split()  # fmt: skip
    assert all(Path(p).is_relative_to(venv) for p in where), where

    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    said = run(venv / "bin" / "standalone-trainer", "--version", cwd=outside, timeout=30)
    assert said == f"standalone-trainer {setup['metadata']['version']}\n"  # without torch

    jobs = tmp_path / "jobs"
    written = json.loads(
        run(venv / "bin" / "python", "-c", WRITE_JOB, jobs, "wheel-job", cwd=outside, timeout=30)
    )
    assert Path(written["trainer"]).is_relative_to(venv) and not written["torch"]

    with subprocess.Popen(
        [str(venv / "bin" / "progress-sidecar"), "--root", str(jobs), "--port", "0"],
        cwd=outside, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as sidecar:  # fmt: skip
        try:
            url = wait_listening(sidecar, timeout=30, what="the installed sidecar").url
            status, kind, page = get(f"{url}/")
            assert status == 200 and kind.startswith("text/html")
            html = page.decode()
            assert "<title>progress-sidecar</title>" in html
            referenced = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
            assert any(path.endswith(".js") for path in referenced), referenced
            for path in referenced:
                status, _, body = get(f"{url}{path}")
                assert status == 200 and body, path
            status, _, body = get(f"{url}/api/jobs")
            assert status == 200
            (job,) = [j for j in json.loads(body)["jobs"] if j["job_id"] == "wheel-job"]
            assert (job["status"], job["progress"]) == ("running", 42.0)
        finally:
            sidecar.send_signal(signal.SIGTERM)
            try:
                sidecar.wait(timeout=10)
            finally:
                sidecar.kill()
