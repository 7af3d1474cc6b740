"""The fan-out's writer: its own process (``bench.py --fanout-writer SPEC``), the trainers'
side, writing every job's file on the schedule of a phase's shape."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from benchmarks.common import percentiles, write_atomic


def writer(spec: str) -> None:
    """The writer process (``bench.py --fanout-writer SPEC``): writes every job's file on the
    schedule, then prints one JSON line: the time of each rename, its CPU and how late it was."""
    asyncio.run(_write(**json.loads(spec)))


async def _write(files: list[str], shape: str, rate: float, ticks: int) -> None:
    jobs = len(files)
    # (when, job, tick): independent trainers each on their own phase, or all in one burst.
    spread = 1.0 if shape == "independent" else 0.0
    order = sorted(
        ((tick + spread * j / jobs) / rate, j, tick)
        for tick in range(1, ticks + 1)
        for j in range(jobs)
    )
    written: dict[str, dict[int, float]] = {Path(f).parent.name: {} for f in files}
    late = []
    cpu = time.process_time()
    began = time.monotonic() + 0.1
    for at, j, tick in order:
        if (wait := began + at - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        late.append(max(0.0, time.monotonic() - began - at) * 1000)
        path = Path(files[j])
        status = "completed" if tick == ticks else "running"
        written[path.parent.name][tick] = write_atomic(
            path, {"status": status, "step": tick, "loss": 1 / tick}
        )
    print(
        json.dumps(
            {
                "written": written,
                "cpu_seconds": time.process_time() - cpu,
                "late_ms": percentiles(late),
            }
        ),
        flush=True,
    )
