"""The trainers' side: jobs made under one or more jobs roots, and the writer, a process of its
own (``bench.py --jobs-writer SPEC``) that rewrites every job's progress.json once a period,
the jobs spread evenly over the period, ``current_step`` one higher each time, and notes the
time of every rename."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import percentiles, write_atomic
from benchmarks.dashboards.workers import expect, last_json, next_word, spawn, stdin_words, tell

TOTAL_STEPS = 1_000_000


def document(step: int, *, status: str = "running") -> dict[str, Any]:
    """A job's progress.json at ``step``: what a trainer writes (about 200 bytes)."""
    return {
        "status": status,
        "current_step": step,
        "total_steps": TOTAL_STEPS,
        "progress": round(100 * step / TOTAL_STEPS, 4),
        "loss": round(2.5 / (1 + 0.01 * step), 6),
        "learning_rate": 0.0003,
        "epoch": step // 1000,
        "eta_seconds": TOTAL_STEPS - step,
    }


def make_jobs(jobs: Sequence[tuple[Path, str]]) -> None:
    """Each (root, job id)'s progress.json at step 0, its directories made."""
    for root, job in jobs:
        file = root / job / "progress.json"
        file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(file, document(0))


async def start_writer(
    jobs: Sequence[tuple[Path, str]], *, period: float = 1.0
) -> asyncio.subprocess.Process:
    """The writer process, writing already (``stop_writer`` ends it)."""
    spec = {"jobs": [[str(root), job] for root, job in jobs], "period": period}
    process = await spawn("--jobs-writer", spec)
    await expect(process, "ready", 60)
    return process


async def stop_writer(
    process: asyncio.subprocess.Process, *, finish: bool, period: float = 1.0
) -> dict[str, Any]:
    """Stop the writer; with ``finish``, after one more round in which every job completes. Its
    figures: ``written`` (job: {step: time of the rename}), ``final`` (job: last step), CPU,
    lateness."""
    await tell([process], "finish" if finish else "stop")
    result: dict[str, Any] = await last_json(process, 2 * period + 60)
    return result


def writer(spec: str) -> None:
    """The writer process (``bench.py --jobs-writer SPEC``): prints 'ready' once writing, writes
    until 'stop' or 'finish' comes on stdin, then one JSON line."""
    asyncio.run(_write(**json.loads(spec)))


async def _write(jobs: list[list[str]], period: float) -> None:
    files = [Path(root) / job / "progress.json" for root, job in jobs]
    steps = [int(json.loads(f.read_text()).get("current_step", 0)) for f in files]
    written: dict[str, dict[int, float]] = {job: {} for _root, job in jobs}
    late: list[float] = []
    words = await stdin_words()
    word = asyncio.ensure_future(next_word(words))
    cpu = time.process_time()
    began = time.monotonic() + 0.05
    count = len(files)
    print("ready", flush=True)
    tick = 0
    while True:
        finishing = word.done()  # 'finish' (or 'stop') came before this round
        if finishing and word.result() != "finish":
            break
        status = "completed" if finishing else "running"
        for j, file in enumerate(files):
            due = began + (tick + j / count) * period
            # Even when late, one turn of the loop: the word on stdin is read meanwhile.
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not finishing and word.done() and word.result() != "finish":
                break  # 'stop': at once
            late.append(max(0.0, time.monotonic() - due) * 1000)
            steps[j] += 1
            written[jobs[j][1]][steps[j]] = write_atomic(file, document(steps[j], status=status))
        tick += 1
        if finishing or (word.done() and word.result() != "finish"):
            break
    seconds = time.monotonic() - began
    print(
        json.dumps(
            {
                "written": written,
                "final": {job: steps[j] for j, (_root, job) in enumerate(jobs)},
                "writes": sum(len(w) for w in written.values()),
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu,
                "late_ms": percentiles(late),
            }
        ),
        flush=True,
    )
