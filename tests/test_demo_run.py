"""scripts/demo.py run end to end: a real sidecar process, real training runs, real shells."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo import DEMO, REPO

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
