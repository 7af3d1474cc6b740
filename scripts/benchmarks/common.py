"""What every scenario needs: processes to start and measure, writers, percentiles, tables."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support.listening import NotListening, await_listening

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench.py"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def run_info() -> dict[str, Any]:
    """What a result needs beside its figures: the commit (and whether the tree had changes
    beyond it), the date, the cores."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "tree_changed": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
    }


@dataclass
class Server:
    process: asyncio.subprocess.Process
    url: str

    @property
    def ws(self) -> str:
        return self.url.replace("http", "ws", 1)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def spawn(*args: str, ready_timeout: float = 60) -> Server:
    """Start a server process that prints 'listening on URL' when ready."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        listening = await await_listening(process, timeout=ready_timeout, what=" ".join(args[:3]))
    except NotListening as e:
        raise SystemExit(str(e)) from None
    return Server(process, listening.url)


# The sidecar's own command line, with uvloop's policy installed first: how the event-loop
# trial runs it on uvloop (the sidecar itself runs on asyncio's loop: docs/benchmarks.md).
ON_UVLOOP = (
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "from sidecar.server.cli import main; sys.exit(main())"
)


async def start_sidecar(root: Path, *extra: str, loop: str = "asyncio") -> Server:
    """A sidecar on ``root``, on asyncio's event loop or (``loop="uvloop"``) on uvloop."""
    command = ("-m", "sidecar") if loop == "asyncio" else ("-c", ON_UVLOOP)
    return await spawn(
        sys.executable,
        *command,
        "--root",
        str(root),
        "--port",
        "0",
        "--log-level",
        "warning",
        # Every load client connects from 127.0.0.1: the per-address limit would cut them off.
        "--max-clients-per-address",
        "1000",
        *extra,
    )


async def start_legacy(root: Path) -> Server:
    return await spawn(sys.executable, str(BENCH), "--legacy-server", str(root))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's memory in MB, from /proc/PID/status: ``VmRSS`` now, ``VmHWM`` at its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    return rss_mb(pid, "VmHWM")


class CpuMeter:
    """CPU use of a process over a stretch of time, as % of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.began_cpu = cpu_seconds(pid)
        self.began = time.monotonic()

    def percent(self) -> float:
        return 100 * (cpu_seconds(self.pid) - self.began_cpu) / (time.monotonic() - self.began)


def write_atomic(path: Path, state: dict[str, Any]) -> float:
    """Write like a careful trainer; returns the time of the rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state))
    written = time.time()
    os.replace(tmp, path)
    return written


def write_jobs_at_rest(root: Path, count: int) -> None:
    """``count`` running jobs under ``root`` whose files were last written an hour ago: a node
    at rest, its jobs already past the stall rule, so that a window measures the sidecar
    waiting, not its first stall sweep."""
    rest = time.time() - 3600
    for j in range(count):
        file = root / f"job{j}" / "progress.json"
        file.parent.mkdir()
        write_atomic(file, {"status": "running", "step": j, "loss": 0.5})
        os.utime(file, (rest, rest))


def latencies(written: dict[int, float], got: list[tuple[float, int]]) -> list[float]:
    """For each write, ms until the client held that step or a later one."""
    return [ms for _step, ms in latencies_by_step(written, got)]


def latencies_by_step(
    written: dict[int, float] | dict[str, float], got: list[tuple[float, int]]
) -> list[tuple[int, float]]:
    """For each write (step: time), the step and ms until the client held it or a later one;
    ``got`` is what the client held when (time, step), in order. Steps may be JSON's strings."""
    samples, index = [], 0
    for step, at in sorted((int(s), t) for s, t in written.items()):
        while index < len(got) and got[index][1] < step:
            index += 1
        if index == len(got):
            break
        samples.append((step, (got[index][0] - at) * 1000))
    return samples


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    if not samples:
        return {
            "n": 0,
            "p50": float("nan"),
            "p90": float("nan"),
            "p99": float("nan"),
            "max": float("nan"),
        }
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p90": at(0.9),
        "p99": at(0.99),
        "max": ordered[-1],
    }


def verdict(value: float, target: float, *, higher_is_better: bool = False) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "ok" if ok else "MISSED"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    for row in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
