"""The dashboards' load: picows clients of ``/ws/jobs``, many in each of a few processes
(``bench.py --dashboards-load SPEC``), under uvloop. Most dashboards only count messages and
bytes (parsing a 10-KB patch ten times a second in a thousand of them would take the machine's
CPU from the sidecar); a few probes, spread through the connection order, keep every message
(time of receipt, bytes) and parse them once the window is over."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

from benchmarks.dashboards.workers import next_word, raise_open_files, stdin_words

CONNECT_TIMEOUT = 120.0
"""Seconds for every dashboard to connect and hold its snapshot; those later count as failed."""


def load(spec: str) -> None:
    """One load process (``bench.py --dashboards-load SPEC``), told what to do on stdin:
    'connect' (it answers 'connected' and a JSON object), 'window', 'end' (the measurement
    window's bounds), 'stop' (one JSON line of what each dashboard received)."""
    import uvloop

    uvloop.run(_load(**json.loads(spec)))


def probe_indexes(count: int, probes: int) -> set[int]:
    """``probes`` of ``count`` connections, spread evenly from the first to the last."""
    if count <= 0 or probes <= 0:
        return set()
    chosen = min(probes, count)
    if chosen == 1:
        return {0}
    return {round(i * (count - 1) / (chosen - 1)) for i in range(chosen)}


def steps_seen(messages: list[tuple[float, bytes]]) -> list[list[Any]]:
    """[time, job, step] for each job's ``current_step`` in each message (snapshot or patch)."""
    seen: list[list[Any]] = []
    for at, raw in messages:
        jobs = json.loads(raw).get("jobs") or {}
        for job, summary in jobs.items():
            if isinstance(summary, dict) and isinstance(summary.get("current_step"), int):
                seen.append([round(at, 6), job, summary["current_step"]])
    return seen


async def _load(url: str, count: int, probes: int) -> None:
    from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    raise_open_files()
    words = await stdin_words()
    loop = asyncio.get_running_loop()
    probing = probe_indexes(count, probes)

    class Dashboard(WSListener):
        def __init__(self, probe: bool) -> None:
            self.probe = probe
            self.messages = self.bytes = self.snapshots = 0
            self.snapshot: asyncio.Future[float] = loop.create_future()
            self.kept: list[tuple[float, bytes]] = []
            self.parts: list[bytes] = []
            self.recording = True
            self.close_code: int | None = None

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if kind == WSMsgType.TEXT or kind == WSMsgType.CONTINUATION:
                self.bytes += frame.payload_size
                if kind == WSMsgType.TEXT and b'"snapshot"' in bytes(
                    frame.get_payload_as_memoryview()[:40]
                ):
                    self.snapshots += 1
                if self.probe and self.recording:
                    self.parts.append(frame.get_payload_as_bytes())
                if frame.fin:
                    now = time.time()
                    self.messages += 1
                    if not self.snapshot.done():
                        self.snapshot.set_result(now)
                    if self.parts:
                        self.kept.append((now, b"".join(self.parts)))
                        self.parts = []
            elif kind == WSMsgType.CLOSE:
                self.close_code = frame.get_close_code().value
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()

    async def connect(probe: bool) -> tuple[WSTransport, Dashboard] | str:
        try:
            transport, dashboard = await asyncio.wait_for(
                ws_connect(
                    lambda: Dashboard(probe),
                    url,
                    max_frame_size=1 << 30,
                    websocket_handshake_timeout=CONNECT_TIMEOUT,
                ),
                CONNECT_TIMEOUT,
            )
        except (TimeoutError, OSError, RuntimeError) as e:
            return f"{type(e).__name__}: {e}"[:200]
        return transport, cast(Dashboard, dashboard)

    print("ready", flush=True)
    assert await next_word(words) == "connect"
    began = time.time()
    outcomes = await asyncio.gather(*(connect(i in probing) for i in range(count)))
    dashboards = [o for o in outcomes if not isinstance(o, str)]
    waiting = [d.snapshot for _t, d in dashboards]
    if waiting:
        await asyncio.wait(waiting, timeout=max(1.0, began + CONNECT_TIMEOUT - time.time()))
    held = [d.snapshot.result() for _t, d in dashboards if d.snapshot.done()]
    connected = {"began": began, "held": len(held), "last": max(held, default=None)}
    print("connected", json.dumps(connected), flush=True)
    marks: dict[str, Any] = {}
    for word in ("window", "end"):
        assert await next_word(words) == word
        marks[word] = {
            "at": time.time(),
            "counts": [(d.messages, d.bytes, d.snapshots) for _t, d in dashboards],
        }
    assert await next_word(words) == "stop"
    cpu = time.process_time()
    for transport, dashboard in dashboards:
        dashboard.recording = False
        if dashboard.close_code is None:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
    seconds = marks["end"]["at"] - marks["window"]["at"]
    results = []
    for index, (_transport, d) in enumerate(dashboards):
        messages0, bytes0, snapshots0 = marks["window"]["counts"][index]
        messages1, bytes1, snapshots1 = marks["end"]["counts"][index]
        results.append(
            {
                "snapshot_at": d.snapshot.result() if d.snapshot.done() else None,
                "messages_per_second": (messages1 - messages0) / seconds,
                "bytes_per_second": (bytes1 - bytes0) / seconds,
                "snapshots_in_window": snapshots1 - snapshots0,
                "snapshots_after_first": max(0, d.snapshots - 1),
                "close_code": d.close_code,
                "steps": steps_seen(d.kept) if d.probe else None,
            }
        )
    out = {
        "window": [marks["window"]["at"], marks["end"]["at"]],
        "dashboards": results,
        "errors": [o for o in outcomes if isinstance(o, str)],
        "parse_cpu_seconds": time.process_time() - cpu,
    }
    print(json.dumps(out), flush=True)
