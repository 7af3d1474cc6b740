#!/usr/bin/env python3
"""The sidecar with real training: two tiny fine-tuning runs, one of them failing part-way.

Starts the sidecar on a jobs root, starts two real training jobs (standalone-trainer, a tiny
GPT-2-style model, on the GPU if there is one, else the CPU), shows one of them live in the
terminal as `progress-sidecar tail` does, and prints the URLs to follow them with. It then keeps
serving until Ctrl-C; with --once it exits when both jobs have ended: 0 when the first completed
and the second failed, as they should.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sidecar.tail import tail

URL_LINE = re.compile(r"listening on (http://\S+)")


async def start_sidecar(root: Path, port: int) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--root", str(root), "--port", str(port), "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match = URL_LINE.search(line)
    if not match:
        await process.wait()
        raise SystemExit(f"the sidecar did not start: {line.strip() or 'no output'}")
    return process, match.group(1)


async def start_job(root: Path, job_id: str, *extra: str) -> asyncio.subprocess.Process:
    (root / job_id).mkdir(parents=True)
    log = open(root / job_id / "trainer.log", "wb")  # noqa: SIM115 (the child process writes to it)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "trainer", "--jobs-root", str(root), "--job-id", job_id,
            "--progress-interval", "0.25", *extra,
            stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    finally:
        log.close()


async def demo(root: Path, port: int, steps: int, once: bool) -> int:
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    good, bad = f"demo-{stamp}-ok", f"demo-{stamp}-fails"
    sidecar, url = await start_sidecar(root, port)
    jobs: list[asyncio.subprocess.Process] = []
    try:
        ws = url.replace("http", "ws", 1)
        print(f"sidecar at {url}, watching {root}")
        print(f"  dashboard:     {url}/")
        jobs.append(
            await start_job(
                root, good, "--max-steps", str(steps), "--eval-steps", str(max(5, steps // 10))
            )
        )
        jobs.append(
            await start_job(
                root, bad, "--max-steps", str(steps), "--fail-at-step", str(max(2, steps // 3))
            )
        )
        print(f"two training jobs: {good} (runs to the end) and {bad} (fails at a third)")
        print(f"  live stream:   {ws}/ws/training/{good}?history=1")
        print(
            f"  REST:          {url}/api/jobs   {url}/api/jobs/{good}   {url}/api/jobs/{good}/history"
        )
        print(f"  in a terminal: progress-sidecar tail {bad} --url {url}\n")
        tailed = await tail(url, good, out=sys.stdout)
        codes = [await job.wait() for job in jobs]
        print(
            f"\n{good}: trainer exited {codes[0]}; {bad}: trainer exited {codes[1]} (its error is in {url}/api/jobs/{bad})"
        )
        ok = tailed == 0 and codes[0] == 0 and codes[1] == 1
        if not once:
            print(f"the sidecar keeps serving at {url}; Ctrl-C to stop")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
        return 0 if ok else 1
    finally:
        for process in [*jobs, sidecar]:
            if process.returncode is None:
                process.terminate()
                await process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path("jobs"), help="the jobs root (default: ./jobs)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="the sidecar's port (0: any free one)"
    )
    parser.add_argument("--steps", type=int, default=400, help="training steps per job")
    parser.add_argument("--once", action="store_true", help="exit when both jobs have ended")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(demo(args.root.absolute(), args.port, args.steps, args.once))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
