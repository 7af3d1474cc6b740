"""Clients that misbehave: they never hurt the server or the other clients."""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import tracemalloc
from pathlib import Path

import aiohttp

from sidecar.server.keys import HUB, SOCKETS
from tests.conftest import StartSidecar
from tests.helpers import silent_client, spawn_sidecar, stop_sidecar, wait_for, write_atomic


async def test_a_client_that_vanishes_is_found_by_heartbeat(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """No close, no FIN, no pong: the heartbeat drops it (at 0.3 s here; 20 s by default)."""
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar(heartbeat=0.3)
    hub = sidecar.app[HUB]
    writer = await silent_client(sidecar.server.host, sidecar.server.port, "j")  # no pong ever
    await wait_for(lambda: hub.client_count == 1, what="the client to subscribe")
    await wait_for(lambda: hub.client_count == 0, timeout=5, what="the heartbeat to drop it")
    assert not sidecar.app[SOCKETS]
    writer.close()


async def test_text_from_clients_is_ignored(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 1})
    sidecar = await start_sidecar()
    client = await sidecar.connect("j")
    await client.next()
    await client.ws.send_str('{"type": "subscribe", "please": true}')
    await client.ws.send_str("x" * 60_000)
    write_atomic(file, {"status": "running", "step": 2})
    await client.until(lambda s: s["step"] == 2)


async def test_binary_frames_are_refused_with_1003(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    client = await sidecar.connect("j")
    await client.next()
    await client.ws.send_bytes(b"\x00\x01")
    message = await client.ws.receive(timeout=5)
    assert (message.data, message.extra) == (1003, "binary frames not accepted")


async def test_text_over_64_kib_is_refused_with_1003(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    client = await sidecar.connect("j")
    await client.next()
    await client.ws.send_str("x" * (64 * 1024 + 1))
    message = await client.ws.receive(timeout=5)
    assert (message.data, message.extra) == (1003, "message too big")
    await wait_for(lambda: sidecar.app[HUB].client_count == 0, what="the client to be released")


async def test_a_thousand_connect_disconnect_cycles_leave_nothing_behind(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running", "step": 1})
    sidecar = await start_sidecar()
    hub, sockets = sidecar.app[HUB], sidecar.app[SOCKETS]

    async def cycles(count: int) -> None:
        for i in range(count):
            async with sidecar.session.ws_connect(sidecar.ws_url("j")) as ws:
                assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
                if i % 2:  # half close cleanly, half just drop the connection
                    ws._response.connection.transport.abort()  # type: ignore[union-attr]

    async def settled() -> bool:
        return hub.client_count == 0 and not sockets

    await cycles(100)  # warm up caches and pools
    await wait_for(settled, what="the warm-up connections to go")
    gc.collect()
    tasks_before = len(asyncio.all_tasks())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await cycles(1000)
    await wait_for(settled, what="every connection to be released")
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(asyncio.all_tasks()) <= tasks_before
    # Dropped connections once kept their objects alive (aiohttp's heartbeat timer) for 20 s:
    # about 4.6 MB here. Now what remains is noise.
    assert grown < 256 * 1024, f"{grown} bytes more after 1,000 cycles"


def _reset_handshakes(host: str, port: int, path: str, count: int) -> None:
    """``count`` WebSocket upgrade requests, each connection reset (RST) once sent."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    for _ in range(count):
        with socket.create_connection((host, port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(request)


async def test_clients_that_reset_during_the_handshake_log_no_error(jobs_root: Path) -> None:
    """A client gone before the handshake's answer is routine: no ERROR and no traceback in
    the log (some of these resets came while the answer was written, and aiohttp logged
    each as a server error), no client left counted."""
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    process, host, port = await spawn_sidecar(jobs_root)
    try:
        for path in ("/ws/training/j", "/ws/jobs"):
            await asyncio.to_thread(_reset_handshakes, host, port, path, 300)
        async with aiohttp.ClientSession() as session:
            url = f"http://{host}:{port}/healthz"

            async def no_client() -> bool:
                async with session.get(url) as response:
                    return bool((await response.json())["clients"] == 0)

            await wait_for(no_client, what="every reset client gone")
    finally:
        log = await stop_sidecar(process)
    assert "Traceback" not in log and "ERROR" not in log, log
