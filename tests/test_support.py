"""scripts/support: the free port, the wait for a server's "listening on" line and the
redis-server that the tests, the demo and the benchmarks share."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.support.listening import (
    Listening,
    NotListening,
    await_listening,
    parse_listening,
    wait_listening,
)
from scripts.support.ports import free_port
from scripts.support.redis_server import RedisServer, RedisServerError
from tests.redis_server import require_redis_server


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b"progress-sidecar listening on http://127.0.0.1:8765 (jobs root /jobs)\n",
            Listening("http://127.0.0.1:8765", "127.0.0.1", 8765),
        ),
        ("legacy loop listening on http://[::1]:80", Listening("http://[::1]:80", "::1", 80)),
        ("listening on http://train.example:9", Listening("http://train.example:9", "train.example", 9)),
        ("progress-sidecar: cannot serve on 127.0.0.1:8765: address already in use", None),
        ("listening on http://127.0.0.1 (no port)", None),
    ],
)  # fmt: skip
def test_parse_listening(line: str | bytes, expected: Listening | None) -> None:
    assert parse_listening(line) == expected


def test_listening_ws_url() -> None:
    assert Listening("http://127.0.0.1:9", "127.0.0.1", 9).ws == "ws://127.0.0.1:9"


async def python(code: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_await_listening_skips_other_lines_and_leaves_the_rest() -> None:
    process = await python(
        "print('starting'); print('x listening on http://127.0.0.1:5 (y)'); print('after')"
    )
    assert (await await_listening(process, timeout=20)).port == 5
    assert process.stdout is not None
    assert await process.stdout.read() == b"after\n"
    assert await process.wait() == 0


async def test_await_listening_early_exit_raises_with_the_output() -> None:
    process = await python(
        "import sys; print('a line'); sys.stderr.write('port busy\\n'); sys.exit(3)"
    )
    with pytest.raises(NotListening) as raised:
        await await_listening(process, timeout=20, what="the thing")
    assert not raised.value.timed_out and "exited with code 3" in raised.value.reason
    assert str(raised.value).startswith("the thing did not start: it exited with code 3")
    assert "a line" in raised.value.output and "port busy" in raised.value.output


async def test_await_listening_timeout_kills_and_raises_with_the_output() -> None:
    process = await python(
        "import sys, time; print('still loading', flush=True); "
        "sys.stderr.write('slow\\n'); sys.stderr.flush(); time.sleep(60)"
    )
    began = time.monotonic()
    with pytest.raises(NotListening) as raised:
        await await_listening(process, timeout=1)
    assert time.monotonic() - began < 10
    assert raised.value.timed_out and "within 1 s" in str(raised.value)
    assert "still loading" in raised.value.output and "slow" in raised.value.output
    assert process.returncode is not None  # killed, not left behind


def popen(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_wait_listening_skips_other_lines_and_leaves_the_rest() -> None:
    process = popen("print('starting'); print('listening on http://127.0.0.1:6'); print('after')")
    assert wait_listening(process, timeout=20) == Listening("http://127.0.0.1:6", "127.0.0.1", 6)
    out, _ = process.communicate(timeout=20)
    assert out == "after\n"


def test_wait_listening_early_exit_raises_with_the_output() -> None:
    process = popen("import sys; print('a line'); sys.stderr.write('no such root\\n'); sys.exit(2)")
    with pytest.raises(NotListening) as raised:
        wait_listening(process, timeout=20, what="the sidecar")
    assert not raised.value.timed_out
    assert str(raised.value).startswith("the sidecar did not start: it exited with code 2")
    assert "a line" in raised.value.output and "no such root" in raised.value.output


def test_wait_listening_timeout_kills_and_raises_with_the_output() -> None:
    process = popen("import time; print('loading', flush=True); time.sleep(60)")
    began = time.monotonic()
    with pytest.raises(NotListening) as raised:
        wait_listening(process, timeout=1)
    assert time.monotonic() - began < 10
    assert raised.value.timed_out and "loading" in raised.value.output
    assert process.returncode is not None


def redis_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64)


def test_redis_server_kill_start_again_stop(tmp_path: Path) -> None:
    """A crash (kill), a new server on the same port, then a stop: each as its name says."""
    server = RedisServer(tmp_path, binary=require_redis_server())
    server.start()
    port, first = server.port, server.pid
    assert redis_ping(port) == b"+PONG\r\n"
    assert server.url == f"redis://127.0.0.1:{port}/0"
    server.kill()
    with pytest.raises(ConnectionRefusedError):
        redis_ping(port)
    server.start()
    assert (server.port, redis_ping(port)) == (port, b"+PONG\r\n") and server.pid != first
    process = server.process
    assert process is not None
    server.stop()
    assert process.returncode == 0  # SIGTERM: a shutdown, not a kill
    with pytest.raises(ConnectionRefusedError):
        redis_ping(port)


def test_redis_server_with_a_password(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="pw", binary=require_redis_server())
    server.start()
    try:
        assert redis_ping(server.port).startswith(b"-NOAUTH")
        assert server.url == f"redis://:pw@127.0.0.1:{server.port}/0"
    finally:
        server.kill()


def test_redis_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, binary=require_redis_server(), extra_args=["--no-such-option"])
    with pytest.raises(RedisServerError) as raised:
        server.start()
    said = server.log.read_text().strip().splitlines()
    assert "no-such-option" in "".join(said)  # its log holds its complaint
    assert str(raised.value) == f"redis-server did not start: {said[-1].strip()}"
    assert server.process is None


def test_redis_server_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RedisServerError, match="redis-server is not installed"):
        RedisServer(tmp_path)
