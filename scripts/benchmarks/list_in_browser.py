#!/usr/bin/env python3
"""The dashboard's jobs list in Chromium, under 1,000 jobs of which 500 change every second.

    .venv/bin/python scripts/benchmarks/list_in_browser.py                # about 6 minutes
    .venv/bin/python scripts/benchmarks/list_in_browser.py --seconds 10 --rounds 1

A sidecar (``python -m sidecar``) on a temporary jobs root of ``--jobs`` running jobs; a writer
(a process of its own) rewrites ``--rate`` of them a second, as the trainer does (a temporary
file, then a rename), each time putting the rename's time (epoch ms) in ``current_step``, which
the list's Step column shows. The dashboard is opened in headless Chromium, where a
PerformanceObserver collects the long tasks (over 50 ms on the main thread) and a
MutationObserver notes when each row's Step cell comes to show a new value: the time from a
file's rename to its row having it. The same figures for the list as ``--baseline`` has it
(by default the last commit whose list rebuilt every row on every message: its jobs-list.js
and its section of the page, everything else as now) are taken in the same run, the two taking
turns, ``--rounds`` times each, on the same sidecar and writer.

The times are those of the DOM: the last commit's list changes its rows as each message comes
and is painted at the next frame; this one changes them in a frame's callback, painted then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, machine, run_info, table, write_atomic
from benchmarks.dashboards.lag import lag_ms
from benchmarks.dashboards.server import disk_tmp, start_logged_sidecar, wait_listed
from benchmarks.list_page import BASELINE, CHROMIUM, PROBE, baseline_files


def make_jobs(root: Path, jobs: int) -> list[str]:
    ids = [f"job{n:04d}" for n in range(jobs)]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    for n, job in enumerate(ids):
        (root / job).mkdir(parents=True)
        state = {
            "status": "running",
            "progress": n % 100,
            "current_step": 0,
            "loss": 1.0,
            "started_at": started,
        }
        write_atomic(root / job / "progress.json", state)
    return ids


def writer(root: Path, jobs: int, rate: int, out: Path) -> None:
    """Rewrite ``rate`` jobs a second, in turn, for ever; one line per rename: job, step, time."""
    ids = [f"job{n:04d}" for n in range(jobs)]
    began = time.monotonic()
    with open(out, "w", buffering=1) as log:
        for n in range(10**9):
            pause = began + n / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            job = ids[n % jobs]
            step = int(time.time() * 1000)
            state = {
                "status": "running",
                "progress": n % 100,
                "current_step": step,
                "loss": 1 / (1 + n % 97),
                "eta_seconds": 600,
            }
            at = write_atomic(root / job / "progress.json", state)
            log.write(f"{job} {step} {at}\n")


def written_in(log: Path, began: float, ended: float) -> dict[str, dict[int, float]]:
    written: dict[str, dict[int, float]] = {}
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and began <= float(parts[2]) <= ended:
            written.setdefault(parts[0], {})[int(parts[1])] = float(parts[2])
    return written


def percentile(samples: Sequence[float], q: float) -> float | None:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


# Each scenario: the address's hash, and the jobs whose rows count for the delays (None: all).
# The first, the list's default order (most recently updated first): every row moves as its job
# is written. The second, by job id: rows stay put, and the first 20 are in view in both lists
# (the new one has only the rows near the viewport in its table).
SCENARIOS: dict[str, tuple[str, set[str] | None]] = {
    "updated-first": ("", None),
    "by-id-in-view": ("#sort=job&dir=asc", {f"job{n:04d}" for n in range(20)}),
}


async def measure(
    browser: Any,
    url: str,
    variant: str,
    log: Path,
    *,
    scenario: str,
    jobs: int,
    seconds: float,
    baseline: str = BASELINE,
) -> dict[str, Any]:
    """One window of ``seconds`` on a fresh page of ``variant`` ("new", or "old": as of
    ``baseline``)."""
    hash_, counted = SCENARIOS[scenario]
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.add_init_script(PROBE)
    if variant == "old":
        files = baseline_files(baseline)

        async def serve(route: Any) -> None:
            path = "/" + route.request.url.split("/", 3)[3].split("?")[0].split("#")[0]
            response = await route.fetch()
            await route.fulfill(response=response, body=files[path])

        for path in files:
            await page.route(url + path, serve)
    await page.goto(url + "/" + hash_)
    # Every job listed: as many rows (the old list), or counted (the new one shows a window).
    listed = f"running {jobs}"
    ready = f"() => document.querySelectorAll('#jobs tbody tr').length === {jobs} || document.getElementById('jobs-counts')?.textContent === '{listed}'"
    await page.wait_for_function(ready, timeout=60000)
    await page.wait_for_timeout(2000)  # the first rows' bursts are over
    await page.evaluate("() => { bench.longtasks = []; bench.seen = []; }")
    began = time.time()
    await asyncio.sleep(seconds)
    ended = time.time()
    got = await page.evaluate("() => bench")
    await page.close()
    seen = [(at / 1000, job, step) for at, job, step in got["seen"]]
    # The renames of the window, less its last second (their rows may come after it ends).
    written = written_in(log, began, ended - 1)
    if counted is not None:
        written = {job: steps for job, steps in written.items() if job in counted}
    delays, unseen = lag_ms(written, seen)
    tasks = [duration for at, duration in got["longtasks"] if began * 1000 <= at <= ended * 1000]
    return {
        "variant": variant,
        "scenario": scenario,
        "seconds": ended - began,
        "long_tasks": {
            "count": len(tasks),
            "total_ms": sum(tasks),
            "worst_ms": max(tasks, default=0.0),
        },
        "write_to_row_ms": {
            "n": len(delays),
            "unseen": unseen,
            "median": statistics.median(delays) if delays else None,
            "p95": percentile(delays, 0.95),
            "max": max(delays, default=None),
        },
        "page_errors": errors,
    }


async def run(
    *, jobs: int, rate: int, seconds: float, rounds: int, baseline: str
) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    results: list[dict[str, Any]] = []
    with disk_tmp() as name:
        tmp = Path(name)
        root = tmp / "jobs"
        make_jobs(root, jobs)
        server = await start_logged_sidecar(root, tmp / "sidecar.log")
        log = tmp / "writes.log"
        writing = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--writer", str(root),
            "--jobs", str(jobs), "--rate", str(rate), "--log", str(log),
        )  # fmt: skip
        try:
            await wait_listed(server.url, jobs)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        # the old list's page is handed to the browser by Playwright, which
                        # Chromium takes for a public page that may not reach 127.0.0.1
                        "--disable-features=LocalNetworkAccessChecks",
                    ],
                )
                # A first window, thrown away: the browser's and the sidecar's start are over.
                await measure(
                    browser, server.url, "new", log, scenario="updated-first", jobs=jobs, seconds=5
                )
                for n in range(rounds):
                    for scenario in SCENARIOS:
                        for variant in ("new", "old") if n % 2 == 0 else ("old", "new"):
                            result = await measure(
                                browser, server.url, variant, log,
                                scenario=scenario, jobs=jobs, seconds=seconds,
                                baseline=baseline,
                            )  # fmt: skip
                            print(
                                f"round {n + 1} {scenario} {variant}: {json.dumps(result)}",
                                flush=True,
                            )
                            results.append(result)
                await browser.close()
        finally:
            writing.terminate()
            await writing.wait()
            await server.stop()
    return {"rounds": results, "summary": summary(results)}


def median_of(get: Any, runs: list[dict[str, Any]]) -> float | None:
    """The median of a figure over the rounds that have it (None: no round saw a row change)."""
    values = [value for value in map(get, runs) if value is not None]
    return statistics.median(values) if values else None


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each variant's medians over its rounds, and old / new."""
    figures = {
        "long_tasks": lambda r: r["long_tasks"]["count"],
        "long_task_ms": lambda r: r["long_tasks"]["total_ms"],
        "worst_task_ms": lambda r: r["long_tasks"]["worst_ms"],
        "row_median_ms": lambda r: r["write_to_row_ms"]["median"],
        "row_p95_ms": lambda r: r["write_to_row_ms"]["p95"],
        "row_max_ms": lambda r: r["write_to_row_ms"]["max"],
        "unseen": lambda r: r["write_to_row_ms"]["unseen"],
    }
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        mine: dict[str, Any] = {}
        for variant in ("new", "old"):
            runs = [r for r in results if r["variant"] == variant and r["scenario"] == scenario]
            mine[variant] = {name: median_of(get, runs) for name, get in figures.items()}
        mine["old_over_new"] = {
            name: mine["old"][name] / mine["new"][name]
            if mine["old"][name] is not None and mine["new"][name]
            else None
            for name in figures
        }
        out[scenario] = mine
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs under the root (1000)")
    parser.add_argument(
        "--rate", type=int, default=500, help="renames a second, jobs in turn (500)"
    )
    parser.add_argument("--seconds", type=float, default=20, help="each window's length (20)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="windows of each list, taking turns (3)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "results" / "list", help="where the JSON goes"
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE,
        help=f"the commit whose jobs list is the baseline ({BASELINE}: rebuilt every row a message)",
    )
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        writer(args.writer, args.jobs, args.rate, args.log)
        return 0
    result = asyncio.run(
        run(
            jobs=args.jobs,
            rate=args.rate,
            seconds=args.seconds,
            rounds=args.rounds,
            baseline=args.baseline,
        )
    )
    result = {
        **run_info(),
        "machine": machine(),
        "jobs": args.jobs,
        "rate": args.rate,
        "baseline": args.baseline,
        **result,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"list-in-browser-{time.strftime('%Y-%m-%d-%H%M')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for scenario, figures in result["summary"].items():
        rows = [
            [name, figures["new"][name], figures["old"][name], figures["old_over_new"][name] or 0.0]
            for name in figures["new"]
        ]
        print(f"\n{scenario}\n" + table(["median of the rounds", "new", "old", "old / new"], rows))
    print(f"written: {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
