"""What the demo shows: the URLs and the commands to follow its jobs with, one job live as
``progress-sidecar tail`` shows it, and the serving that goes on until Ctrl-C."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from demo_interrupts import Interrupts
from demo_processes import Process

from sidecar.clients.tail import tail


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


def tail_command(url: str, job_id: str) -> str:
    return f"{sidecar_command()} tail {job_id} --url {url}"


def chosen_port(url: str, port: int) -> str:
    return f" (--port 0: the system chose port {url.rsplit(':', 1)[1]})" if not port else ""


def print_follow(url: str, good: str, bad: str) -> None:
    ws = url.replace("http", "ws", 1)
    print(f"  live stream:   {ws}/ws/training/{good}?history=1")
    print(
        f"  REST:          {url}/api/jobs   {url}/api/jobs/{good}   {url}/api/jobs/{good}/history"
    )
    print(f"  in a terminal: {tail_command(url, bad)}\n", flush=True)


async def follow_then_serve(
    url: str,
    good: str,
    bad: str,
    jobs: Sequence[Process],
    folders: str,
    serving: str,
    once: bool,
    interrupts: Interrupts,
) -> int:
    """Show the good job live until both trainers end, then (unless ``once``) keep serving
    until Ctrl-C; 0 when the jobs ended as they should (one completed, one failed)."""
    print_follow(url, good, bad)
    tailed = await tail(url, good, out=sys.stdout)
    codes = [await job.wait() for job in jobs]
    print(
        f"\n{good}: trainer exited {codes[0]}; {bad}: trainer exited {codes[1]} (its error is in {url}/api/jobs/{bad})"
    )
    print(f"this run's jobs, each with its trainer.log: {folders}")
    if not once:
        print(f"{serving}; meanwhile:")
        print(f"  dashboard:     {url}/")
        print(f"  in a terminal: {tail_command(url, good)}")
        print("Ctrl-C to stop", flush=True)
        await interrupts.serve()
    return 0 if tailed == 0 and codes[0] == 0 and codes[1] == 1 else 1
