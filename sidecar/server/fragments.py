"""Long WebSocket messages, sent as fragments (RFC 6455 section 5.4) a slice at a time.

A ``/ws/jobs`` snapshot of 100,000 jobs is a 16 MB message: joined and written in one go it
held the event loop for a second or more, and cost a copy of itself per dashboard. Here its
pieces (bytes the encoder made) are joined into fragments of ``FRAGMENT_BYTES``, each written
whole to the transport, so that the heartbeat's pings and pongs (control frames, which may come
between fragments) still go out between them. The writing is long work too: it goes in the
turns that ``slices`` hands out, and waits (without a turn) while the client has not taken
what was written before (backpressure: at most ``HIGH_WATER`` bytes wait in the transport; a
client that takes nothing for ``--send-timeout`` seconds is dropped, as ``ClientSocket.send``
does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Final

from sidecar.server.keys import SETTINGS
from sidecar.server.slices import Slices
from sidecar.server.sockets import ClientSocket

logger = logging.getLogger(__name__)

FRAGMENT_BYTES: Final = 256 * 1024
HIGH_WATER: Final = 1 << 20
DRAIN_POLL: Final = 0.002
TEXT: Final = 0x1
CONTINUATION: Final = 0x0
FIN: Final = 0x80


def fragment_header(length: int, *, opcode: int, last: bool) -> bytes:
    """The header of a server frame (unmasked, not compressed) of ``length`` bytes."""
    first = (FIN if last else 0) | opcode
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


async def send_pieces(client: ClientSocket, pieces: Sequence[bytes]) -> bool:
    """Send the concatenation of ``pieces`` as one text message: as one frame when it is short,
    as fragments otherwise, written in the long work's turns (``Slices``); False when the
    client is gone or was dropped for not reading."""
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > FRAGMENT_BYTES:
            break
    else:
        return await client.send(b"".join(pieces))
    slices = Slices()
    await slices.start()
    try:
        at, opcode = 0, TEXT
        while at < len(pieces):
            end, size = at, 0
            while end < len(pieces) and size < FRAGMENT_BYTES:
                size += len(pieces[end])
                end += 1
            payload = b"".join(pieces[at:end])
            last = end == len(pieces)
            transport = client.request.transport
            if transport is None or transport.is_closing() or client.ws.closed:
                return False
            transport.write(fragment_header(len(payload), opcode=opcode, last=last) + payload)
            at, opcode = end, CONTINUATION
            if transport.get_write_buffer_size() > HIGH_WATER:
                slices.stop()  # waiting for this client must not hold the others' turns
                if not await _drain(client, transport):
                    return False
                await slices.start()
            elif slices.over():
                await slices.pause()
    finally:
        slices.stop()
    return True


async def _drain(client: ClientSocket, transport: asyncio.BaseTransport) -> bool:
    """Wait until at most ``HIGH_WATER`` bytes wait to go to the client; False when it went, or
    took nothing for ``--send-timeout`` seconds (it is dropped then)."""
    assert isinstance(transport, asyncio.WriteTransport)
    timeout = client.request.app[SETTINGS].send_timeout
    deadline = time.monotonic() + timeout
    waiting = transport.get_write_buffer_size()
    while waiting > HIGH_WATER:
        if transport.is_closing():
            return False
        if time.monotonic() > deadline:
            client.drop_for_not_reading(timeout)
            return False
        await asyncio.sleep(DRAIN_POLL)
        if (now_waiting := transport.get_write_buffer_size()) < waiting:
            deadline = time.monotonic() + timeout  # the client took some: it reads
        waiting = now_waiting
    return True
