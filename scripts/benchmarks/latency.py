"""Latency: one job written at 20 Hz; the sidecar, the seed's 2-s loop and 1-s REST polling.

All three follow the same writes at once, over rounds that start them in turn. For every write,
a contender's latency is the time from the rename until it holds that state or a newer one (a
poller skips states; each skipped one is as late as the state that replaced it).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import (
    Server,
    latencies,
    percentiles,
    start_legacy,
    start_sidecar,
    table,
    verdict,
    write_atomic,
)

CONTENDERS = ("sidecar", "seed's 2-s loop", "REST poll 1 s")


async def follow_ws(url: str, got: list[tuple[float, int]], stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while not stop.is_set():
            try:
                message = await ws.receive(timeout=0.25)
            except TimeoutError:
                continue
            now = time.time()
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            step = json.loads(message.data).get("step")
            if step is not None:
                got.append((now, step))


async def _poll_rest(url: str, got: list[tuple[float, int]], stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(url) as response:
                step = (await response.json()).get("step")
            if step is not None:
                got.append((time.time(), step))
            await asyncio.sleep(1.0)


async def _round(
    sidecar: Server,
    legacy: Server,
    file: Path,
    seconds: float,
    rate: float,
    first_step: int,
    order: int,
) -> dict[str, list[float]]:
    stop = asyncio.Event()
    got: dict[str, list[tuple[float, int]]] = {name: [] for name in CONTENDERS}
    starters = {
        "sidecar": lambda: follow_ws(f"{sidecar.ws}/ws/training/bench", got["sidecar"], stop),
        "seed's 2-s loop": lambda: follow_ws(
            f"{legacy.ws}/ws/training/bench", got["seed's 2-s loop"], stop
        ),
        "REST poll 1 s": lambda: _poll_rest(
            f"{sidecar.url}/api/jobs/bench", got["REST poll 1 s"], stop
        ),
    }
    names = list(CONTENDERS[order:] + CONTENDERS[:order])  # each round starts another first
    tasks = [asyncio.create_task(starters[name]()) for name in names]
    await asyncio.sleep(0.5)
    written: dict[int, float] = {}
    began = time.monotonic()
    count = int(seconds * rate)
    for i in range(count):
        step = first_step + i
        written[step] = write_atomic(
            file, {"job_id": "bench", "status": "running", "step": step, "loss": 1 / (1 + step)}
        )
        await asyncio.sleep(max(0.0, began + (i + 1) / rate - time.monotonic()))
    await asyncio.sleep(2.5)  # the slowest poller's next look
    stop.set()
    await asyncio.gather(*tasks)
    return {name: latencies(written, got[name]) for name in CONTENDERS}


async def run(*, seconds: float = 30, rate: float = 20, rounds: int = 3) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        file = root / "bench" / "progress.json"
        file.parent.mkdir()
        write_atomic(file, {"job_id": "bench", "status": "running", "step": 0})
        sidecar, legacy = await start_sidecar(root), await start_legacy(root)
        try:
            await asyncio.sleep(
                3
            )  # let the sidecar go idle first: its first update is the cold one
            for r in range(rounds):
                got = await _round(
                    sidecar,
                    legacy,
                    file,
                    seconds / rounds,
                    rate,
                    1 + r * 100_000,
                    r % len(CONTENDERS),
                )
                for name in CONTENDERS:
                    samples[name].extend(got[name])
        finally:
            await sidecar.stop()
            await legacy.stop()
    figures = {name: percentiles(samples[name]) for name in CONTENDERS}
    side = figures["sidecar"]
    return {
        "scenario": "latency",
        "seconds": seconds,
        "rate_hz": rate,
        "rounds": rounds,
        "results_ms": figures,
        "samples_ms": samples,
        "ratios": {
            f"{name} / sidecar p50": figures[name]["p50"] / side["p50"] for name in CONTENDERS[1:]
        },
        "targets": {
            "sidecar p50 <= 3 ms": verdict(side["p50"], 3),
            "sidecar p99 <= 10 ms": verdict(side["p99"], 10),
            "seed's loop p50 >= 300 x sidecar p50": verdict(
                figures["seed's 2-s loop"]["p50"] / side["p50"], 300, higher_is_better=True
            ),
        },
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [name, f["n"], f["p50"], f["p90"], f["p99"], f["max"]]
        for name, f in result["results_ms"].items()
    ]
    lines = [table(["latency (ms)", "n", "p50", "p90", "p99", "max"], rows)]
    lines += [f"{name}: x{ratio:.0f}" for name, ratio in result["ratios"].items()]
    lines += [f"target {t}: {v}" for t, v in result["targets"].items()]
    return "\n".join(lines)
