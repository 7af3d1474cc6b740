"""The command line, run as a real subprocess."""

from __future__ import annotations

import asyncio
import configparser
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from scripts.support.listening import await_listening
from sidecar.server import arguments
from sidecar.server.cli import main, parse_settings
from sidecar.server.settings import Settings
from tests.helpers import write_atomic
from tests.sidecar.server.test_lifecycle import unprivileged

CONSOLE_SCRIPT = Path(sys.executable).with_name("progress-sidecar")


def help_text(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``--help`` prints (it exits 0)."""
    monkeypatch.delenv("SIDECAR_ROOT", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = help_text(capsys, monkeypatch)
    for flag in (
        "--root", "--host", "--port", "--pattern", "--max-clients-per-job", "--max-clients",
        "--stall-after", "--poll", "--log-level", "SIDECAR_ROOT", "--allowed-host",
        "--max-clients-per-address",
    ):  # fmt: skip
        assert flag in out
    for artifact in ("(default: None)", "(default: [])", "(default: False)", "none (default"):
        assert artifact not in out
    assert "(default: 8765)" in out


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIDECAR_ROOT", str(tmp_path))
    settings, level = parse_settings([])
    assert settings.root == tmp_path
    assert (settings.host, settings.port, settings.pattern) == (
        "127.0.0.1",
        8765,
        "{job_id}/progress.json",
    )
    assert (settings.max_clients_per_job, settings.max_clients, settings.stall_after) == (
        10,
        1000,
        60.0,
    )
    assert (settings.poll, level) == (False, "info")
    assert (settings.max_clients_per_address, settings.allowed_hosts) == (5, ())


def test_security_flags(tmp_path: Path) -> None:
    hosts = ["--allowed-host", "a.example", "--allowed-host", "B.example"]
    settings, _ = parse_settings(
        ["--root", str(tmp_path), *hosts, "--max-clients-per-address", "3"]
    )
    assert (settings.allowed_hosts, settings.max_clients_per_address) == (
        ("a.example", "b.example"),  # lowercase, as Host headers are compared
        3,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--root is required (or set SIDECAR_ROOT)"),
        (["--root", "r", "--pattern", "progress.json"], "invalid pattern 'progress.json'"),
        (["--root", "r", "--stall-after", "0"], "must be positive: '0'"),
        (["--root", "r", "--max-clients", "x"], "not a number: 'x'"),
        (["--root", "r", "--max-clients-per-address", "0"], "must be positive: '0'"),
        (["--root", "r", "--allowed-host", "http://x.example"], "not a host name"),
        (["--root", "r", "--allowed-host", "x.example:8765"], "give the name alone"),
        (["--root", "r", "--allowed-origin", "localhost:3000"], "not an origin"),
        (["--root", "r", "--allowed-origin", "http://x.example/app"], "not an origin"),
        (["--root", "r", "--port", "70000"], "must be 0 to 65535: '70000'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SIDECAR_ROOT", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


class Running:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url


async def start(
    *args: str, command: tuple[str, ...] = (sys.executable, "-m", "sidecar")
) -> Running:
    process = await asyncio.create_subprocess_exec(
        *command,
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    listening = await await_listening(process, timeout=10, what="the sidecar")
    assert listening.host == "127.0.0.1", listening
    return Running(process, listening.url)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_closes_every_client_with_1001_within_a_second(
    tmp_path: Path, session: aiohttp.ClientSession, signum: signal.Signals
) -> None:
    write_atomic(tmp_path / "j" / "progress.json", {"status": "running"})
    running = await start(
        "--root", str(tmp_path), "--max-clients-per-job", "20", "--max-clients-per-address", "20"
    )
    clients = [await session.ws_connect(f"{running.url}/ws/training/j") for _ in range(20)]
    for ws in clients:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
    began = time.monotonic()
    running.process.send_signal(signum)
    messages = await asyncio.gather(*(ws.receive(timeout=2) for ws in clients))
    assert [(m.data, m.extra) for m in messages] == [(1001, "server shutting down")] * 20
    assert await asyncio.wait_for(running.process.wait(), 2) == 0
    assert time.monotonic() - began < 1.0
    for ws in clients:
        await ws.close()


def test_a_root_that_is_a_file_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "jobs").write_text("not a directory")
    with pytest.raises(SystemExit) as exit_info:
        main(["--root", str(tmp_path / "jobs")])
    assert exit_info.value.code == 2
    assert f"--root {tmp_path / 'jobs'} is not a directory" in capsys.readouterr().err


def test_an_unreadable_root_is_a_configuration_error(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    root.mkdir(mode=0o300)  # may enter, may not list
    result = subprocess.run(
        [*unprivileged(), sys.executable, "-m", "sidecar", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert f"--root {root}: permission denied" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("progress-sidecar: error: --root")


async def test_console_script_waits_for_a_missing_root(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A missing root is allowed (the training server may make it later); it is said once, at
    warning level, with its absolute path, and /healthz shows it."""
    root = tmp_path / "later"
    running = await start("--root", str(root), command=(str(CONSOLE_SCRIPT),))
    try:
        async with session.get(f"{running.url}/healthz") as response:
            health = await response.json()
        assert (health["status"], health["root"], health["root_path"]) == (
            "waiting for root",
            "missing",
            str(root),
        )
        write_atomic(root / "j" / "progress.json", {"status": "running"})
        deadline = time.monotonic() + 5
        while True:
            async with session.get(f"{running.url}/api/jobs/j") as response:
                if response.status == 200:
                    break
            assert time.monotonic() < deadline, "the job under the late root never showed"
            await asyncio.sleep(0.02)
    finally:
        running.process.terminate()
        assert await asyncio.wait_for(running.process.wait(), 2) == 0
    assert running.process.stderr is not None
    log = (await running.process.stderr.read()).decode()
    said = [line for line in log.splitlines() if "does not exist" in line]
    assert (
        len(said) == 1
        and f"WARNING sidecar.files.watcher: jobs root {root} does not exist" in said[0]
    )


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sidecar", "--root", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ},
        )
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr


def test_help_groups_the_options_and_its_usage_shows_tail(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = help_text(capsys, monkeypatch)
    usage = out.split("\n\n", 1)[0].splitlines()
    assert usage == [
        "usage: progress-sidecar [--root DIR] [--redis URL] [--host HOST] [--port PORT] [options]",
        "       progress-sidecar tail JOB_ID [--url URL] [--wait]",
    ]
    titles = [line[:-1] for line in out.splitlines() if line.endswith(":") and line[0] != " "]
    assert titles == [
        "options", "where to look", "serving", "clients and limits", "memory", "cluster",
        "access", "logging",
    ]  # fmt: skip
    section = out.split("\nmemory:\n", 1)[1].split("\ncluster:\n", 1)[0]
    assert "--history-bytes" in section and "--max-clients " not in section


def test_every_flag_of_the_parser_keeps_its_settings_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grouping the options changed no default: each is the one of ``Settings``."""
    for name in ("SIDECAR_TOKEN", "SIDECAR_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings, _ = parse_settings(["--root", str(tmp_path)])
    assert settings == Settings(root=tmp_path)


def test_version_prints_the_installed_version_and_exits_0() -> None:
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "--version"], capture_output=True, text=True, timeout=20
    )
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[3] / "setup.cfg")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"progress-sidecar {setup['metadata']['version']}\n",
        "",
    )


def test_version_without_an_installed_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert arguments.version() == "unknown (not installed)"


@pytest.mark.parametrize(
    ("host", "error"),
    [
        ("not..a..host", "argument --host: not an IP address or a host name: 'not..a..host' "
         "(e.g. 127.0.0.1, 0.0.0.0 or localhost)"),
        ("999.1.1.1", "argument --host: not an IP address: '999.1.1.1'"),
        ("no-such-host.invalid", "--host no-such-host.invalid: cannot resolve it ("),
    ],
)  # fmt: skip
def test_a_bad_host_is_one_error_line_before_any_warning(
    tmp_path: Path, host: str, error: str
) -> None:
    """Not the warning about a non-loopback host without a token, then a traceback: only the
    error, exit 2."""
    env = {k: v for k, v in os.environ.items() if k != "SIDECAR_TOKEN"}
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "--root", str(tmp_path), "--port", "0", "--host", host],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"progress-sidecar: error: {error}"), line
    assert result.stdout == ""


@pytest.mark.parametrize(("host", "listens_on"), [("[::1]", "::1"), ("localhost", "localhost")])
def test_a_host_may_be_bracketed_or_a_name(tmp_path: Path, host: str, listens_on: str) -> None:
    settings, _ = parse_settings(["--root", str(tmp_path), "--host", host])
    assert settings.host == listens_on


async def test_an_open_host_without_a_token_is_warned_once_listening(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SIDECAR_TOKEN"}
    process = await asyncio.create_subprocess_exec(
        str(CONSOLE_SCRIPT), "--root", str(tmp_path), "--port", "0", "--host", "0.0.0.0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    await await_listening(process, timeout=10, what="the sidecar")
    process.terminate()
    assert await asyncio.wait_for(process.wait(), 5) == 0
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert log.count("listening on 0.0.0.0 with neither a token nor --allowed-host") == 1
