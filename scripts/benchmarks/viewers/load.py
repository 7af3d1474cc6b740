"""The viewers' load: picows clients of ``/ws/training/{job}``, thousands in each of a few
processes (``bench.py --viewers-load SPEC``), under uvloop. On 'go' a process connects all its
clients at once (no pacing: the storm), then each client notes when it held each step (a
message carries a few hundred bytes: every client parses it, for ``current_step`` and
``status``), until the server closes it at its job's end or 'stop' comes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from benchmarks.dashboards.workers import next_word, raise_open_files, stdin_words

STORM_TIMEOUT = 60.0
"""Seconds for a client to connect and hold its snapshot; a later one counts as failed."""


def load(spec: str) -> None:
    """One load process (``bench.py --viewers-load SPEC``): 'ready', then on 'go' the storm,
    'connected' and a JSON object once every client held its snapshot (or failed), and one JSON
    line of what every client received once all are closed (or on 'stop')."""
    import uvloop

    uvloop.run(_load(**json.loads(spec)))


async def _load(base: str, jobs: list[str], per_job: int) -> None:
    from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    open_files = raise_open_files()
    words = await stdin_words()
    loop = asyncio.get_running_loop()
    open_now = [0]
    all_gone: asyncio.Future[None] = loop.create_future()

    class Viewer(WSListener):
        def __init__(self) -> None:
            self.got: list[tuple[float, int]] = []
            self.snapshot: asyncio.Future[float] = loop.create_future()
            self.status: Any = None
            self.step: Any = None
            self.close_code: int | None = None

        def on_ws_connected(self, transport: WSTransport) -> None:
            open_now[0] += 1

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                now = time.time()
                data = json.loads(frame.get_payload_as_bytes())
                step = data.get("current_step")
                if isinstance(step, int):
                    self.step = step
                    self.got.append((round(now, 6), step))
                if "status" in data:
                    self.status = data["status"]
                if not self.snapshot.done():
                    self.snapshot.set_result(now)
            elif frame.msg_type == WSMsgType.CLOSE:
                self.close_code = frame.get_close_code().value
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            open_now[0] -= 1
            if not open_now[0] and not all_gone.done():
                all_gone.set_result(None)

    async def connect(job: str) -> dict[str, Any]:
        record: dict[str, Any] = {"job": job, "started": time.time(), "error": None}
        try:
            _transport, viewer = await asyncio.wait_for(
                ws_connect(Viewer, f"{base}/ws/training/{job}",
                           websocket_handshake_timeout=STORM_TIMEOUT),
                STORM_TIMEOUT,
            )  # fmt: skip
        except (TimeoutError, OSError, RuntimeError) as e:
            record["error"] = f"{type(e).__name__}: {e}"[:200]
            return record
        record["handshake_ms"] = (time.time() - record["started"]) * 1000
        record["viewer"] = viewer
        return record

    print("ready", flush=True)
    assert await next_word(words) == "go"
    began = time.time()
    records = await asyncio.gather(*(connect(job) for job in jobs for _ in range(per_job)))
    viewers = [r["viewer"] for r in records if "viewer" in r]
    if viewers:
        await asyncio.wait(
            [v.snapshot for v in viewers], timeout=max(1.0, began + STORM_TIMEOUT - time.time())
        )
    held = [v.snapshot.result() for v in viewers if v.snapshot.done()]
    summary = {"began": began, "held": len(held), "last": max(held, default=None)}
    print("connected", json.dumps({**summary, "open_files": open_files}), flush=True)
    stop: asyncio.Future[Any] = asyncio.ensure_future(next_word(words))
    if viewers:
        await asyncio.wait([stop, all_gone], return_when=asyncio.FIRST_COMPLETED)
    cpu = time.process_time()
    clients = []
    for record in records:
        viewer = record.pop("viewer", None)
        if viewer is not None:
            record.update(
                snapshot_at=viewer.snapshot.result() if viewer.snapshot.done() else None,
                got=viewer.got,
                status=viewer.status,
                step=viewer.step,
                close_code=viewer.close_code,
            )
        clients.append(record)
    print(json.dumps({"clients": clients, "cpu_seconds": time.process_time() - cpu}), flush=True)
