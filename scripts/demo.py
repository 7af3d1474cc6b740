#!/usr/bin/env python3
"""The sidecar with real training: two tiny fine-tuning runs, one of them failing part-way.

Starts the sidecar on a jobs root (by default a new folder under ./jobs for each run), starts
two real training jobs (standalone-trainer, a tiny GPT-2-style model, on the GPU if there is
one, else the CPU), shows one of them live in the terminal as `progress-sidecar tail` does, and
prints the URLs and the commands to follow them with. It then keeps serving until Ctrl-C; with
--once it exits when both jobs have ended: 0 when the first completed and the second failed, as
they should.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shlex
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sidecar.clients.tail import tail
from sidecar.core.argtypes import port, positive_int

URL_LINE = re.compile(r"listening on (http://\S+)")
START_TIMEOUT = 30


def shown(path: Path) -> str:
    """``path`` as a user in the current directory would type it."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def sidecar_command() -> str:
    """``progress-sidecar`` as a new shell runs it: the venv's script, by its path."""
    script = Path(sys.executable).parent / "progress-sidecar"
    if not script.is_file():  # not run from the venv: the same Python, as a module
        return f"{shlex.quote(sys.executable)} -m sidecar"
    path = shown(script)
    return shlex.quote(path if "/" in path else f"./{path}")


def run_folder(base: Path, stamp: str) -> Path:
    """A new folder under ``base`` for this run's jobs."""
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    return folder


async def relay(stream: asyncio.StreamReader) -> None:
    """Pass the sidecar's log lines on to our stderr."""
    while line := await stream.readline():
        sys.stderr.write(line.decode(errors="replace"))
        sys.stderr.flush()


async def start_sidecar(root: Path, port: int) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--root", str(root), "--port", str(port), "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SystemExit(f"the sidecar did not start within {START_TIMEOUT} s") from None
    match = URL_LINE.search(line)
    if not match:
        errors = (await process.stderr.read()).decode(errors="replace").strip()
        await process.wait()
        if "address already in use" in errors.lower():
            raise SystemExit(
                f"port {port} is busy (another demo or sidecar?): choose another with --port N, "
                "or --port 0 for any free one"
            )
        last = errors.splitlines()[-1] if errors else line.strip()
        raise SystemExit(f"the sidecar did not start: {last or 'no output'}")
    return process, match.group(1)


async def start_job(root: Path, job_id: str, *extra: str) -> asyncio.subprocess.Process:
    log = open(root / job_id / "trainer.log", "wb")  # noqa: SIM115 (the child process writes to it)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "trainer", "--jobs-root", str(root), "--job-id", job_id,
            "--progress-interval", "0.25", *extra,
            stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    finally:
        log.close()


async def demo(root: Path, port: int, steps: int, once: bool, stamp: str) -> int:
    good, bad = f"demo-{stamp}-ok", f"demo-{stamp}-fails"
    # The job directories before the sidecar: it serves once it knows the jobs on disk, so
    # they can be followed at once.
    created = [folder for folder in (root, *root.parents) if not folder.exists()]
    created[:0] = [root / good, root / bad]
    for job_id in (good, bad):
        (root / job_id).mkdir(parents=True)
    try:
        sidecar, url = await start_sidecar(root, port)
    except SystemExit:
        for folder in created:  # nothing was written there
            folder.rmdir()
        raise
    assert sidecar.stderr is not None
    relaying = asyncio.create_task(relay(sidecar.stderr))
    jobs: list[asyncio.subprocess.Process] = []
    sidecar_cli = sidecar_command()

    def tail_command(job_id: str) -> str:
        return f"{sidecar_cli} tail {job_id} --url {url}"

    try:
        ws = url.replace("http", "ws", 1)
        chosen = f" (--port 0: the system chose port {url.rsplit(':', 1)[1]})" if not port else ""
        print(f"sidecar at {url}{chosen}, watching {shown(root)}")
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
        print(f"  in a terminal: {tail_command(bad)}\n", flush=True)
        tailed = await tail(url, good, out=sys.stdout)
        codes = [await job.wait() for job in jobs]
        print(
            f"\n{good}: trainer exited {codes[0]}; {bad}: trainer exited {codes[1]} (its error is in {url}/api/jobs/{bad})"
        )
        print(f"this run's jobs, each with its trainer.log: {shown(root)}")
        ok = tailed == 0 and codes[0] == 0 and codes[1] == 1
        if not once:
            print(f"the sidecar keeps serving at {url}; meanwhile:")
            print(f"  dashboard:     {url}/")
            print(f"  in a terminal: {tail_command(good)}")
            print("Ctrl-C to stop", flush=True)
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
        await relaying


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description=__doc__.split("\n")[0],
        epilog="The commands it prints run from a new shell in this directory.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help="the jobs root (default: a new folder for each run: ./jobs/<date>-<time>)",
    )
    parser.add_argument(
        "--port",
        type=port,
        default=8765,
        help="the sidecar's port; 0: any free one (default: %(default)s)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=400,
        help="training steps per job (default: %(default)s)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit when both jobs have ended (default: keep serving until Ctrl-C)",
    )
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root = args.root or run_folder(Path("jobs"), stamp)
    try:
        return asyncio.run(demo(root.absolute(), args.port, args.steps, args.once, stamp))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
