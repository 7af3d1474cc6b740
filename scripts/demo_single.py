"""The demo on one sidecar: a jobs root, the sidecar on it, the two training jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from demo_folders import make_job_folders, remove_empty
from demo_follow import chosen_port, follow_then_serve, shown
from demo_interrupts import Interrupts
from demo_processes import Process, relay, start_jobs, start_sidecar, stop


async def demo(
    interrupts: Interrupts, root: Path, port: int, steps: int, once: bool, stamp: str
) -> int:
    """The demo's exit status: 0 when the jobs ended as they should."""
    good, bad = f"demo-{stamp}-ok", f"demo-{stamp}-fails"
    # The job directories before the sidecar: it serves once it knows the jobs on disk, so
    # they can be followed at once.
    created = make_job_folders([root / good, root / bad])
    try:
        sidecar, url = await start_sidecar(port, "--root", str(root))
    except BaseException:
        remove_empty(created)  # nothing was written there
        raise
    assert sidecar.stderr is not None
    relaying = asyncio.create_task(relay(sidecar.stderr))
    jobs: list[Process] = []
    try:
        print(f"sidecar at {url}{chosen_port(url, port)}, watching {shown(root)}")
        print(f"  dashboard:     {url}/")
        await start_jobs((root, good), (root, bad), steps, jobs)
        print(f"two training jobs: {good} (runs to the end) and {bad} (fails at a third)")
        folders = shown(root)
        serving = f"the sidecar keeps serving at {url}"
        return await follow_then_serve(url, good, bad, jobs, folders, serving, once, interrupts)
    finally:
        interrupts.stopping()
        await stop(jobs)
        await stop([sidecar])
        await relaying
