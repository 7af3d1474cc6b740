"""The fan-out's load: picows clients, many in each of a few processes (``bench.py
--fanout-load SPEC``), each following one job and noting when it held each step."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

CONNECT_AT_ONCE = 50


def load(spec: str) -> None:
    """One load process (``bench.py --fanout-load SPEC``): prints 'ready' once every client is
    connected, then one JSON line of what each client received."""
    import uvloop

    # uvloop under the load as picows' own benchmarks run it: the client's loop, not the server's.
    uvloop.run(_load(**json.loads(spec)))


async def _load(base: str, jobs: list[str], final_step: int, deadline: float) -> None:
    from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    from sidecar.core.patch import apply_merge_patch

    loop = asyncio.get_running_loop()
    left = [len(jobs)]
    all_gone = loop.create_future()

    class Follower(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.state: Any = None
            self.got: list[tuple[float, int]] = []
            self.close_code: int | None = None
            self.final_at: float | None = None  # when the state became complete
            self.close_at: float | None = None  # when the server's close came

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                now = time.time()
                data = json.loads(frame.get_payload_as_bytes())
                kind = data.pop("type", "whole")  # the seed's loop sends the file as it is
                for key in ("seq", "epoch", "resumed"):
                    data.pop(key, None)
                self.state = apply_merge_patch(self.state, data) if kind == "patch" else data
                if "step" in data:
                    self.got.append((now, self.state["step"]))
                if self.final_at is None and self.state.get("status") == "completed":
                    self.final_at = now
            elif frame.msg_type == WSMsgType.CLOSE:
                self.close_at = time.time()
                self.close_code = int(frame.get_close_code())
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            left[0] -= 1
            if not left[0] and not all_gone.done():
                all_gone.set_result(None)

    async def connect(job: str) -> Follower | None:
        try:
            _transport, follower = await ws_connect(Follower, f"{base}/ws/training/{job}")
        except (TimeoutError, OSError, RuntimeError) as e:
            print(f"connect to {job} failed: {e!r}", file=sys.stderr, flush=True)
            left[0] -= 1
            return None
        return follower  # type: ignore[no-any-return]

    followers: list[Follower | None] = []
    for at in range(0, len(jobs), CONNECT_AT_ONCE):
        followers += await asyncio.gather(*(connect(j) for j in jobs[at : at + CONNECT_AT_ONCE]))
    if not left[0]:
        all_gone.set_result(None)
    print("ready", flush=True)
    cpu = time.process_time()
    with contextlib.suppress(TimeoutError):  # those still open count as lost
        await asyncio.wait_for(all_gone, max(1.0, deadline - time.time()))
    results = []
    for job, f in zip(jobs, followers, strict=True):
        if f is None:
            results.append({"job": job, "error": True})
            continue
        state = f.state if isinstance(f.state, dict) else {}
        final = state.get("status") == "completed" and state.get("step") == final_step
        close_ms = (
            (f.close_at - f.final_at) * 1000
            if f.close_at is not None and f.final_at is not None
            else None
        )
        results.append(
            {"job": job, "got": f.got, "final": final, "close": f.close_code, "close_ms": close_ms}
        )
    print(json.dumps({"clients": results, "cpu_seconds": time.process_time() - cpu}), flush=True)
