"""Helpers shared by the tests: writing progress files like trainers do, waiting, clients."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest

from scripts.support.listening import await_listening
from sidecar.core.patch import apply_merge_patch
from sidecar.core.protocol import ENVELOPE_KEYS

DEADLINE = 5.0


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs what this machine lacks; fail it under CI, which installs all of
    it (.ci/run)."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def write_atomic(path: Path, content: dict[str, Any] | str | bytes) -> None:
    """Write as a careful trainer does: a temp file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(_as_bytes(content))
    os.replace(tmp, path)


def write_in_place(path: Path, content: dict[str, Any] | str | bytes) -> None:
    """Write as a careless trainer does: truncate the file, then write into it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_as_bytes(content))


def _as_bytes(content: dict[str, Any] | str | bytes) -> bytes:
    if isinstance(content, dict):
        return json.dumps(content).encode()
    if isinstance(content, str):
        return content.encode()
    return content


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float = DEADLINE, what: str = ""
) -> None:
    """Poll ``condition`` every 10 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(0.01)


def state_of(message: dict[str, Any]) -> dict[str, Any]:
    """The job state a message carries, without the envelope's keys."""
    return {k: v for k, v in message.items() if k not in ENVELOPE_KEYS}


class StreamClient:
    """A WebSocket client of one job that merges what it receives, as a frontend would."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.state: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] | None = None
        self.close_code: int | None = None

    async def next(self, timeout: float = DEADLINE) -> dict[str, Any] | None:
        """The next message, merged into ``state``; None once the server has closed."""
        message = await self.ws.receive(timeout=timeout)
        if message.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            await self.ws.close()  # answer the server's close, as a browser does
            self.close_code = self.ws.close_code
            return None
        assert message.type == aiohttp.WSMsgType.TEXT, message
        data = json.loads(message.data)
        assert isinstance(data, dict)
        states = [m for m in self.messages if m["type"] != "log"]
        if data["type"] == "log":
            # A log message carries the seq of the last state sent before it.
            assert states and data["seq"] == states[-1]["seq"], "log seq must be the last state's"
            self.history = (
                data["entries"]
                if data.get("reset") or self.history is None
                else self.history + data["entries"]
            )
            self.messages.append(data)
            return data
        if states and data["epoch"] == states[-1]["epoch"]:
            assert data["seq"] > states[-1]["seq"], "seq must increase within an epoch"
        self.messages.append(data)
        if data["type"] == "snapshot":
            self.state = state_of(data)
        else:
            assert data["type"] == "patch", data
            # A resumed connection starts with a patch onto what the client held before.
            assert self.state is not None or data.get("resumed"), "a patch before any snapshot"
            self.state = apply_merge_patch(self.state or {}, state_of(data))
        return data

    async def until(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = DEADLINE
    ) -> dict[str, Any]:
        """Read until the merged state satisfies ``condition``; returns that state."""
        deadline = time.monotonic() + timeout
        while self.state is None or not condition(self.state):
            left = deadline - time.monotonic()
            if left <= 0 or await self.next(timeout=left) is None:
                raise AssertionError(f"state never matched; last: {self.state}")
        return self.state

    async def closed(self, timeout: float = DEADLINE) -> int | None:
        """Read to the end of the stream; returns the close code."""
        deadline = time.monotonic() + timeout
        while await self.next(timeout=max(0.01, deadline - time.monotonic())) is not None:
            pass
        return self.close_code


async def silent_client(
    host: str, port: int, job_id: str | None = None, *, path: str | None = None
) -> asyncio.StreamWriter:
    """A raw WebSocket client (of ``job_id``, or of ``path``) that completes the handshake, then
    never reads (nor answers pings).

    Close the returned writer to let it go.
    """
    target = path or f"/ws/training/{job_id}"
    reader, writer = await asyncio.open_connection(host, port)
    headers = "".join(f"{name}: {value}\r\n" for name, value in UPGRADE_HEADERS.items())
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    transport = writer.transport
    assert isinstance(transport, asyncio.ReadTransport)
    transport.pause_reading()
    return writer


UPGRADE_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


class RawResponse:
    """What a raw HTTP request got: the status, the body, and for a WebSocket (101) the code of
    the close frame the server sent first, if it sent one."""

    def __init__(self, status: int, head: bytes, body: bytes, close_code: int | None) -> None:
        self.status = status
        self.head = head
        self.body = body
        self.close_code = close_code


async def raw_get(
    host: str, port: int, target: str | bytes, headers: dict[str, str] | None = None
) -> RawResponse:
    """Send one GET as bytes on a fresh connection (any header, any request target) and read
    the answer: a client that no library tidies up."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [
            b"GET " + (target if isinstance(target, bytes) else target.encode()) + b" HTTP/1.1"
        ]
        sent = {"Host": f"{host}:{port}", "Connection": "close", **(headers or {})}
        lines += [f"{name}: {value}".encode() for name, value in sent.items()]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            frame = await asyncio.wait_for(reader.readexactly(2), DEADLINE)
            if frame[:1] != b"\x88":  # not a close: a message, and the stream goes on
                return RawResponse(status, head, b"", None)
            payload = await asyncio.wait_for(reader.readexactly(frame[1] & 0x7F), DEADLINE)
            return RawResponse(status, head, payload, int.from_bytes(payload[:2], "big"))
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
            read = _read_chunked(reader)
        else:
            read = reader.readexactly(int(length.group(1))) if length else reader.read()
        body = await asyncio.wait_for(read, DEADLINE)
        return RawResponse(status, head, body, None)
    finally:
        writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body (a streamed response: GET /api/jobs), without its framing."""
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")
    return b"".join(chunks)


async def spawn_sidecar(
    root: Path | None,
    *args: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[asyncio.subprocess.Process, str, int]:
    """``python -m sidecar`` on a free port (no root: a gateway, given ``--redis``); returns the
    process, its host and its port."""
    where = ["--root", str(root)] if root is not None else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", *where, "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
        preexec_fn=preexec_fn,
    )  # fmt: skip
    listening = await await_listening(process, timeout=20, what="the sidecar")
    return process, listening.host, listening.port


async def stop_sidecar(process: asyncio.subprocess.Process) -> str:
    """SIGTERM, then everything the process wrote (stdout and stderr)."""
    if process.returncode is None:
        process.terminate()
    out, err = await asyncio.wait_for(process.communicate(), 10)
    return (out + err).decode(errors="replace")
