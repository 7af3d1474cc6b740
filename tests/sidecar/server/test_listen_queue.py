"""The kernel's queue of connections not yet accepted holds a crowd that reconnects at once,
while asyncio still accepts a small batch per turn (the descriptors' reserve rests on it)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from sidecar.server.runner import BACKLOG
from tests.helpers import spawn_sidecar, stop_sidecar

CROWD = 600


async def test_a_crowd_waits_in_the_kernels_queue_and_is_then_served(jobs_root: Path) -> None:
    """With the sidecar stopped (SIGSTOP: nothing is accepted), every handshake of a crowd ten
    times the accept batch still completes, as the kernel queues it; once the sidecar goes on,
    every one of them is answered."""
    process, host, port = await spawn_sidecar(jobs_root)
    process.send_signal(signal.SIGSTOP)
    try:

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
            with contextlib.suppress(TimeoutError, OSError):
                # A handshake the kernel drops is tried again after 1 s: 0.8 s tells them apart.
                return await asyncio.wait_for(asyncio.open_connection(host, port), 0.8)
            return None

        crowd = await asyncio.gather(*(connect() for _ in range(CROWD)))
        connected = [c for c in crowd if c is not None]
        assert len(connected) == CROWD > 10 * BACKLOG, f"{len(connected)} of {CROWD} connected"
        for _reader, writer in connected:
            writer.write(
                f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
    finally:
        process.send_signal(signal.SIGCONT)

    async def answer(reader: asyncio.StreamReader) -> bytes:
        return await asyncio.wait_for(reader.readline(), 20)

    answers = await asyncio.gather(*(answer(reader) for reader, _w in connected))
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), {a[:12] for a in answers}
    for _reader, writer in connected:
        writer.close()
    log = await stop_sidecar(process)
    assert "Traceback" not in log, log
