"""The many-jobs scenario's heavy clients: plain-socket HTTP (every job at once, or page by
page) and picows dashboards on ``/ws/jobs``; each notes when it began and ended."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

PAGE = 1000


async def http_get(host: str, port: int, target: str, *, timeout: float = 120) -> tuple[int, bytes]:
    """One GET on a fresh connection; the status and the body (chunked or not)."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            raw = await reader.read()
    finally:
        writer.close()
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        return status, _dechunk(raw)
    return status, raw


def _dechunk(raw: bytes) -> bytes:
    parts: list[bytes] = []
    at = 0
    while True:
        end = raw.index(b"\r\n", at)
        size = int(raw[at:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(parts)
        parts.append(raw[end + 2 : end + 2 + size])
        at = end + 2 + size + 2


async def list_all(host: str, port: int) -> dict[str, Any]:
    began = time.time()
    status, body = await http_get(host, port, "/api/jobs")
    ended = time.time()
    jobs = len(json.loads(body)["jobs"]) if status == 200 else 0
    return {"began": began, "ended": ended, "status": status, "bytes": len(body), "jobs": jobs}


async def list_pages(host: str, port: int) -> dict[str, Any]:
    began = time.time()
    seen: list[str] = []
    pages = 0
    target = f"/api/jobs?limit={PAGE}"
    while True:
        status, body = await http_get(host, port, target)
        pages += 1
        answer = json.loads(body) if status == 200 else {}
        seen += [job["job_id"] for job in answer.get("jobs", [])]
        if not answer.get("next"):
            break
        target = f"/api/jobs?limit={PAGE}&after={answer['next']}"
    ended = time.time()
    return {
        "began": began,
        "ended": ended,
        "pages": pages,
        "jobs": len(seen),
        "distinct": len(set(seen)),
        "sorted": seen == sorted(seen),
    }


async def dashboards(ws_url: str, count: int) -> dict[str, Any]:
    """``count`` clients of ``/ws/jobs`` connecting at once; each until it holds its snapshot."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    loop = asyncio.get_running_loop()

    class Dashboard(WSListener):
        def __init__(self) -> None:
            self.parts: list[bytes] = []
            # When the snapshot was whole, and its bytes (parsed once the window is over: the
            # parse would take this machine's CPU from the sidecar and the probe).
            self.snapshot: asyncio.Future[tuple[float, bytes]] = loop.create_future()

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type in (WSMsgType.TEXT, WSMsgType.CONTINUATION):
                self.parts.append(frame.get_payload_as_bytes())
                if frame.fin and not self.snapshot.done():
                    self.snapshot.set_result((time.time(), b"".join(self.parts)))
                    self.parts = []

    began = time.time()
    connected = await asyncio.gather(
        *(ws_connect(Dashboard, ws_url, max_frame_size=1 << 30) for _ in range(count))
    )
    listeners = [cast(Dashboard, d) for _t, d in connected]
    got = await asyncio.wait_for(asyncio.gather(*(d.snapshot for d in listeners)), 300)
    ended = time.time()
    for transport, _d in connected:
        transport.send_close()
        transport.disconnect()
    return {
        "began": began,
        "ended": ended,
        "snapshot_seconds": [at - began for at, _m in got],
        "jobs": [len(json.loads(message)["jobs"]) for _at, message in got],
    }
