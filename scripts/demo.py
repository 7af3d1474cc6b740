#!/usr/bin/env python3
"""The demo (``scripts/demo``): the sidecar with real training, two tiny fine-tuning runs, one of
them failing part-way.

Starts the sidecar on a jobs root (by default a new folder under ./jobs for each run), starts
two real training jobs (standalone-trainer, a tiny GPT-2-style model, on the GPU if there is
one, else the CPU), shows one of them live in the terminal as `progress-sidecar tail` does, and
prints the URLs and the commands to follow them with. It then keeps serving until Ctrl-C; with
--once it exits when both jobs have ended: 0 when the first completed and the second failed, as
they should.

With --cluster, the same two jobs run on a cluster of this machine: a redis-server of the demo's
own (on a free port of 127.0.0.1, no persistence), two node sidecars (node-a and node-b, each
on its own jobs root, one job each) and a gateway on --port, which serves the jobs of both.

The parts: demo_cli (the options), demo_processes, demo_interrupts, demo_folders, demo_follow
(what it shows), demo_single and demo_cluster (the two demos).
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from demo_cli import parse_args

REDIS_MISSING = (
    "--cluster runs a Redis of its own, and redis-server is not installed: "
    "apt-get install redis-server"
)
REDIS_CLIENT_MISSING = (
    "--cluster needs Redis' client (the cluster extra): scripts/install train,cluster "
    "(scripts/demo --cluster installs it)"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; its exit status.

    Args:
        argv: the options (default: the command line's): ``scripts/demo --help``.
    """
    args = parse_args(argv)
    redis_server = None
    if args.cluster:
        if (redis_server := shutil.which("redis-server")) is None:
            raise SystemExit(REDIS_MISSING)
        if importlib.util.find_spec("redis") is None:
            raise SystemExit(REDIS_CLIENT_MISSING)
    # The demos import aiohttp and the sidecar's client: once the options are valid, not before.
    from demo_cluster import cluster_demo
    from demo_folders import run_folder
    from demo_interrupts import Interrupts, interruptible
    from demo_single import demo

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root = (args.root or run_folder(Path("jobs"), stamp)).absolute()

    async def run(interrupts: Interrupts) -> int:
        if redis_server is not None:
            return await cluster_demo(
                interrupts, root, args.port, args.steps, args.once, stamp, redis_server
            )
        return await demo(interrupts, root, args.port, args.steps, args.once, stamp)

    try:
        return asyncio.run(interruptible(run))
    except KeyboardInterrupt:  # before the demo's own handler was in place
        return 130


if __name__ == "__main__":
    sys.exit(main())
