#!/usr/bin/env python3
"""Show the sidecar at work: start it on a jobs root, run a job there, print what a client sees.

The job is simulated (it writes progress.json the way a trainer does, atomically, a few times a
second); the point is the stream: one snapshot, then small patches, each a few ms after its
write, then the completion message and the close.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

URL_LINE = re.compile(r"listening on (http://\S+)")
SHOWN = (
    "status",
    "current_step",
    "progress",
    "loss",
    "eval_loss",
    "eta_seconds",
    "final_loss",
    "complete",
)


def write_atomic(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


async def run_job(
    file: Path, job_id: str, *, steps: int, interval: float, written: dict[int, float]
) -> None:
    """Write a plausible fine-tuning run's progress, step by step."""
    started = time.time()
    eval_loss = None
    for step in range(1, steps + 1):
        loss = 2.5 * math.exp(-step / (steps / 3)) + 0.1
        state: dict[str, Any] = {
            "job_id": job_id,
            "status": "running",
            "progress": round(100 * step / steps, 1),
            "current_epoch": 1 + 3 * (step - 1) // steps,
            "total_epochs": 3,
            "current_step": step,
            "total_steps": steps,
            "loss": round(loss, 4),
            "samples_per_second": round(8 / interval, 1),
            "eta_seconds": round((steps - step) * interval, 1),
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        if step % 10 == 0:
            eval_loss = round(loss * 0.9, 4)
        if eval_loss is not None:
            state["eval_loss"] = eval_loss
        written[step] = time.time()
        write_atomic(file, state)
        await asyncio.sleep(interval)
    write_atomic(
        file,
        {
            "job_id": job_id,
            "status": "completed",
            "complete": True,
            "progress": 100.0,
            "current_step": steps,
            "total_steps": steps,
            "final_loss": round(2.5 * math.exp(-3) + 0.1, 4),
            "elapsed_seconds": round(time.time() - started, 1),
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        },
    )


async def watch_job(url: str, written: dict[int, float]) -> int | None:
    """Follow the job as a frontend would and print each message as it arrives."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for message in ws:
            data = json.loads(message.data)
            received = time.time()
            fields = " ".join(f"{k}={data[k]}" for k in SHOWN if k in data)
            late = ""
            if data.get("current_step") in written:
                late = (
                    f" ({(received - written[data['current_step']]) * 1000:.1f} ms after the write)"
                )
            print(f"{data['type']:>8} seq={data['seq']:<4} {fields}{late}", flush=True)
        return ws.close_code


async def demo(root: Path, port: int, steps: int, interval: float, keep: bool) -> int:
    job_id = datetime.now(UTC).strftime("demo-%Y%m%d-%H%M%S")
    job_dir = root / job_id
    job_dir.mkdir(parents=True)
    sidecar = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--root", str(root), "--port", str(port),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert sidecar.stdout is not None
    line = (await asyncio.wait_for(sidecar.stdout.readline(), 20)).decode()
    match = URL_LINE.search(line)
    if not match:
        print(f"the sidecar did not start: {line.strip() or 'no output'}", file=sys.stderr)
        return 1
    base = match.group(1)
    ws_url = base.replace("http", "ws", 1) + f"/ws/training/{job_id}"
    print(f"sidecar at {base}, watching {root}")
    print(f"job {job_id}: follow it with any WebSocket client at {ws_url}\n")
    try:
        written: dict[int, float] = {}
        watcher = asyncio.create_task(watch_job(ws_url, written))
        await asyncio.sleep(0.3)  # let the client see the job pending first
        write_atomic(
            job_dir / "progress.json", {"job_id": job_id, "status": "running", "progress": 0.0}
        )
        await run_job(
            job_dir / "progress.json", job_id, steps=steps, interval=interval, written=written
        )
        code = await asyncio.wait_for(watcher, 10)
        print(f"\nthe job completed; the sidecar closed the stream with code {code}")
        print(f"REST fallback: curl {base}/api/jobs/{job_id}")
        if keep:
            print(f"the sidecar keeps running at {base}; Ctrl-C to stop")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
        return 0 if code == 1000 else 1
    finally:
        sidecar.terminate()
        await sidecar.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path("jobs"), help="the jobs root (default: ./jobs)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="the sidecar's port (0: any free one)"
    )
    parser.add_argument("--steps", type=int, default=40, help="training steps to simulate")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds per step")
    parser.add_argument(
        "--keep", action="store_true", help="keep the sidecar running after the job"
    )
    args = parser.parse_args(argv)
    return asyncio.run(demo(args.root.absolute(), args.port, args.steps, args.interval, args.keep))


if __name__ == "__main__":
    sys.exit(main())
