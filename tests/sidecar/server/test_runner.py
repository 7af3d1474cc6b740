"""The HTTP server as an attacker meets it: malformed requests, trickling connections, and a
process whose open-file limit is low."""

from __future__ import annotations

import asyncio
import resource
import socket
import sys
import time
from pathlib import Path

import pytest

from sidecar.server.app import create_app
from sidecar.server.runner import (
    BUSY,
    FD_RESERVE,
    HEADER_TIMEOUT,
    HTTP_RESERVE,
    MIN_OPEN_FILES,
    accept_batch,
    clients_that_fit,
    fd_reserve,
)
from sidecar.server.settings import Settings
from tests.conftest import SidecarTestServer, StartSidecar
from tests.helpers import raw_get, spawn_sidecar, stop_sidecar, wait_for, write_atomic

TOKEN = "s3cr3t-t0ken-value"
T = TOKEN.encode()


async def exchange(host: str, port: int, request: bytes) -> bytes:
    """Send raw bytes, return all the server answers before it closes (at most 5 s)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), 5)
    finally:
        writer.close()


MALFORMED = [
    b"GET /api/jobs?token=" + T + b"\xff\xfe\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/jobs?token=" + T + b"&pad=" + b"x" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + T + b"\x01\r\n\r\n",
    b"GET /api/jobs?token=" + T + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
    b"G\x01T /api/jobs?token=" + T + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + T + b"\xff\r\n\r\n",
]


@pytest.mark.parametrize("level", ["info", "debug"])
async def test_malformed_requests_never_echo_or_log_the_token(tmp_path: Path, level: str) -> None:
    """Each malformed request costs at most one short line, no traceback, and its answer does
    not repeat the request line; ``?%74oken=`` is a token to the server and hidden in the log."""
    write_atomic(tmp_path / "j" / "progress.json", {"status": "running"})
    process, host, port = await spawn_sidecar(
        tmp_path, "--log-level", level, env={"SIDECAR_TOKEN": TOKEN}
    )
    try:
        for request in MALFORMED:
            answer = await exchange(host, port, request)
            assert answer.split(b" ", 2)[1].startswith(b"4"), answer[:200]
            assert T not in answer and b"/api/jobs" not in answer, answer[:300]
        got = await raw_get(host, port, f"/api/jobs?%74oken={TOKEN}")
        assert got.status == 200
        got = await raw_get(host, port, f"/api/jobs?%74oken={TOKEN}x")
        assert got.status == 401
    finally:
        log = await stop_sidecar(process)
    assert TOKEN not in log
    assert "Traceback" not in log
    malformed = [line for line in log.splitlines() if "malformed request" in line]
    assert 1 <= len(malformed) <= len(MALFORMED), log
    assert "ERROR" not in log, log
    assert all(len(line) < 200 for line in malformed), malformed
    if level == "debug":
        assert "/api/jobs?token=*** 200" in log.replace('"', "")  # the access log redacts


def test_the_accept_batch_grows_with_the_open_file_limit() -> None:
    """32 at a time, as before, up to 2,047 descriptors; a 64th of the limit above, at most
    1,024; the reserve is four batches and the other files."""
    batches = [accept_batch(n) for n in (256, 1024, 2047, 4096, 20_000, 1 << 20)]
    assert batches == [32, 32, 32, 64, 312, 1024]
    assert fd_reserve(1024) == FD_RESERVE == 4 * 32 + 64
    assert fd_reserve(20_000) == 4 * 312 + 64
    assert clients_that_fit(20_000, 20_000) == 20_000 - fd_reserve(20_000) - HTTP_RESERVE


def test_fitting_the_open_file_limit() -> None:
    assert clients_that_fit(1000, 1 << 20) == 1000
    assert clients_that_fit(1000, 1024) == 1024 - FD_RESERVE - HTTP_RESERVE
    assert clients_that_fit(10, 1024) == 10


async def test_too_low_an_open_file_limit_is_refused(tmp_path: Path) -> None:
    def tiny() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (MIN_OPEN_FILES - 1, MIN_OPEN_FILES - 1))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--root", str(tmp_path), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=tiny,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert f"the open-file limit is {MIN_OPEN_FILES - 1}" in err.decode()
    assert "Traceback" not in err.decode() and out == b""


async def test_a_client_that_never_reads_its_responses_is_dropped(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Pipelined requests whose answers are never read hold a connection only for so long."""
    server = SidecarTestServer(create_app(Settings(root=jobs_root)), host="127.0.0.1")
    await server.start_server(write_timeout=0.5)
    try:
        _reader, writer = await asyncio.open_connection(server.host, server.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        request = b"GET /static/vendor/uPlot.iife.min.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        writer.write(request * 200)
        await wait_for(lambda: not server.runner.server.connections, timeout=10)  # type: ignore[union-attr]
        writer.close()
    finally:
        await server.close()


def _low_open_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def test_trickling_connections_cannot_starve_the_server(tmp_path: Path) -> None:
    """More half-sent requests than the process has descriptors: the extra connections are
    refused at once, the rest are closed after the header deadline, a real request then gets
    through, and the log stays short."""
    write_atomic(tmp_path / "j" / "progress.json", {"status": "running"})
    process, host, port = await spawn_sidecar(tmp_path, preexec_fn=_low_open_file_limit)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:

        async def half_request() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            return reader, writer

        # All at once: the kernel queues a backlog's worth before the server counts any.
        idle.extend(await asyncio.gather(*(half_request() for _ in range(300))))
        began = time.monotonic()

        async def trickle() -> None:
            while True:
                for _reader, writer in idle:
                    if not writer.is_closing():
                        writer.write(b"X")
                await asyncio.sleep(0.5)

        trickler = asyncio.create_task(trickle())
        try:
            while True:  # a real client retries a refused request, as browsers do
                try:
                    got = await raw_get(host, port, "/healthz")
                    if got.status == 200:
                        break
                except (ConnectionError, asyncio.IncompleteReadError):
                    pass
                assert time.monotonic() - began < HEADER_TIMEOUT + 5, "never got through"
                await asyncio.sleep(0.2)
            # Every trickling connection is closed by the server by now or soon.
            for reader, _writer in idle:
                try:
                    rest = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT + 5)
                except ConnectionError:
                    continue  # closed with bytes of ours unread: reset, closed all the same
                assert rest in (b"", BUSY), rest
        finally:
            trickler.cancel()
            await asyncio.wait([trickler])
    finally:
        for _reader, writer in idle:
            writer.close()
        log = await stop_sidecar(process)
    assert "open-file limit 256" in log
    assert f"serving at most {256 - FD_RESERVE - HTTP_RESERVE} clients" in log
    assert "Traceback" not in log and "out of system resource" not in log, log
    assert len(log.splitlines()) < 40, log
