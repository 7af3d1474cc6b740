"""scripts/demo.py end to end: a real sidecar process, real training runs, real shells."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.redis_server import require_redis_server

REPO = Path(__file__).parents[1]
DEMO = REPO / "scripts" / "demo.py"
# A new shell of a user who has not activated the venv: no .venv/bin on PATH.
FRESH_SHELL_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
# "  label: value" lines; a value that is not a URL is a command to paste.
LABELLED = re.compile(r"^\s+[a-z][a-z ]*:\s+(\S.*)$")


@pytest.mark.timeout(180)
def test_demo_once_trains_two_jobs_and_shows_one_live(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--once",
            "--root",
            str(tmp_path),
            "--port",
            "0",
            "--steps",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    live = [line for line in lines if "step " in line and "[" in line]
    steps = [int(line.split("step ")[1].split("/")[0]) for line in live]
    assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] == 40
    assert any(
        line.endswith("completed: final loss " + line.split("final loss ")[-1]) for line in lines
    )
    assert "ws://" in result.stdout and "/api/jobs" in result.stdout
    jobs = sorted(p.name for p in tmp_path.iterdir())
    assert len(jobs) == 2
    states = {job: json.loads((tmp_path / job / "progress.json").read_text()) for job in jobs}
    failed = states[next(j for j in jobs if j.endswith("-fails"))]
    completed = states[next(j for j in jobs if j.endswith("-ok"))]
    assert (completed["status"], failed["status"]) == ("completed", "failed")
    assert "injected failure" in failed["error"]


@pytest.mark.timeout(180)
async def test_demo_commands_run_as_printed_from_a_new_shell(tmp_path: Path) -> None:
    """Each command the demo prints runs, pasted as printed, in a new shell in the repository
    root without the venv on PATH: `tail` of the completed job exits 0, of the failed one 1."""
    log = (tmp_path / "demo.stderr").open("wb")
    demo = await asyncio.create_subprocess_exec(
        sys.executable, str(DEMO), "--root", str(tmp_path / "jobs"), "--port", "0", "--steps", "10",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=log,
    )  # fmt: skip
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(150):
            while not lines or "Ctrl-C to stop" not in lines[-1]:
                line = await demo.stdout.readline()
                assert line, "the demo ended early:\n" + "".join(lines)
                lines.append(line.decode())
        commands = [
            match[1]
            for line in lines
            if (match := LABELLED.match(line)) and not match[1].startswith(("http://", "ws://"))
        ]
        results = {}
        for command in commands:
            shell = await asyncio.create_subprocess_exec(
                "bash", "-c", command, cwd=REPO, env=FRESH_SHELL_ENV,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(shell.communicate(), 30)
            results[command] = (shell.returncode, out.decode(), err.decode())
        for command, (code, _, err) in results.items():
            assert code != 127 and "command not found" not in err, (command, code, err)

        tails = {c.split(" tail ")[1].split()[0]: r for c, r in results.items() if " tail " in c}
        assert {job.rsplit("-", 1)[1] for job in tails} == {"ok", "fails"}, commands
        for job, (code, out, err) in tails.items():
            if job.endswith("-ok"):
                assert code == 0 and f"{job} completed: final loss" in out, (code, out, err)
            else:
                assert code == 1 and f"{job} failed: RuntimeError" in out + err, (code, out, err)

        text = "".join(lines)
        chosen = re.search(r"the system chose port (\d+)", text)
        assert chosen and f"http://127.0.0.1:{chosen[1]}/" in text, text

        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), 30) == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
        log.close()


def test_demo_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    """A port in use: one line that says so and how to choose another, exit 1, nothing left."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                str(DEMO),
                "--once",
                "--root",
                str(tmp_path / "jobs"),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"port {port} is busy (another demo or sidecar?): choose another with --port N, "
        "or --port 0 for any free one\n"
    )
    assert result.stdout == ""
    assert not (tmp_path / "jobs").exists()


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


@pytest.mark.timeout(180)
def test_demo_puts_each_run_in_a_new_folder(tmp_path: Path) -> None:
    """Without --root, a run's jobs go to a new folder under ./jobs, which the demo watches and
    names; an earlier run's folder is left alone."""
    earlier = tmp_path / "jobs" / "20200101-000000" / "demo-20200101-000000-ok"
    earlier.mkdir(parents=True)
    (earlier / "progress.json").write_text('{"status": "completed"}')
    result = subprocess.run(
        [sys.executable, str(DEMO), "--once", "--port", "0", "--steps", "4"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = sorted(p.name for p in (tmp_path / "jobs").iterdir())
    assert len(runs) == 2 and runs[0] == "20200101-000000", runs
    new = f"jobs/{runs[1]}"
    assert f", watching {new}\n" in result.stdout
    assert f"this run's jobs, each with its trainer.log: {new}\n" in result.stdout
    jobs = sorted(p.name for p in (tmp_path / new).iterdir())
    assert [job.rsplit("-", 1)[1] for job in jobs] == ["fails", "ok"]
    assert (earlier / "progress.json").read_text() == '{"status": "completed"}'


def processes_with(*texts: str) -> list[str]:
    """The processes whose command line holds one of ``texts``."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    )
    return [line for line in listing.stdout.splitlines() if any(t in line for t in texts)]


@pytest.mark.timeout(180)
async def test_demo_cluster_serves_both_nodes_jobs_through_the_gateway(tmp_path: Path) -> None:
    """--cluster: a redis-server, two node sidecars and a gateway, real training on both nodes;
    the gateway lists each node's job with its node, and Ctrl-C stops every process."""
    require_redis_server()
    root = tmp_path / "jobs"
    log = (tmp_path / "demo.stderr").open("wb")
    demo = await asyncio.create_subprocess_exec(
        sys.executable, str(DEMO), "--cluster", "--root", str(root), "--port", "0", "--steps", "4",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=log,
    )  # fmt: skip
    assert demo.stdout is not None
    lines: list[str] = []
    redis_port = None

    async def read_until(text: str) -> str:
        while not lines or text not in lines[-1]:
            line = await demo.stdout.readline()  # type: ignore[union-attr]
            assert line, "the demo ended early:\n" + "".join(lines)
            lines.append(line.decode())
        return "".join(lines)

    async def until_listed(
        session: aiohttp.ClientSession, url: str, expected: set[tuple[str, ...]]
    ) -> None:
        """Until ``url`` lists just these jobs: (ok or fails, node[, status]) each."""
        while True:
            async with session.get(f"{url}/api/jobs") as response:
                jobs = (await response.json())["jobs"]
            fields = [(j["job_id"].rsplit("-", 1)[1], j["node"], j["status"]) for j in jobs]
            if {f[: len(next(iter(expected)))] for f in fields} == expected:
                return
            assert len(jobs) <= 2, (url, jobs)
            await asyncio.sleep(0.05)

    try:
        async with asyncio.timeout(150), aiohttp.ClientSession() as session:
            text = await read_until("in a terminal:")
            gateway = re.search(r"^gateway at (http://127\.0\.0\.1:\d+)", text, re.M)
            redis = re.search(r"^  redis: +redis://127\.0\.0\.1:(\d+)/0", text, re.M)
            nodes = dict(re.findall(r"^  (node-[ab]): +(http://127\.0\.0\.1:\d+)/", text, re.M))
            assert gateway and redis and set(nodes) == {"node-a", "node-b"}, text
            redis_port = redis[1]
            # While they train: the gateway lists the job of each node, with its node.
            await until_listed(session, gateway[1], {("ok", "node-a"), ("fails", "node-b")})
            await read_until("Ctrl-C to stop")
            ended = {("ok", "node-a", "completed"), ("fails", "node-b", "failed")}
            for url in (gateway[1], *nodes.values()):  # each node serves the other's job too
                await until_listed(session, url, ended)
        assert sorted(p.name for p in root.iterdir()) == ["node-a", "node-b"]

        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), 30) == 0
        assert processes_with(str(tmp_path), f"127.0.0.1:{redis_port}") == []
        assert "Traceback" not in (tmp_path / "demo.stderr").read_text()
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
        log.close()


def test_demo_cluster_without_redis_server_says_so_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--cluster", "--root", str(tmp_path / "jobs"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": str(tmp_path), "LANG": "C.UTF-8"},  # no redis-server there
    )
    assert result.returncode == 1
    assert result.stderr == (
        "--cluster runs a Redis of its own, and redis-server is not installed: "
        "apt-get install redis-server\n"
    )
    assert result.stdout == ""
    assert not (tmp_path / "jobs").exists()


def test_demo_cluster_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    """The gateway's port in use: the same line as without --cluster, and nothing left, its
    redis-server included."""
    require_redis_server()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        demo = subprocess.Popen(
            [
                sys.executable,
                str(DEMO),
                "--cluster",
                "--root",
                str(tmp_path / "jobs"),
                "--port",
                str(port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 1
    assert err == (
        f"port {port} is busy (another demo or sidecar?): choose another with --port N, "
        "or --port 0 for any free one\n"
    )
    assert out == ""
    assert not (tmp_path / "jobs").exists()
