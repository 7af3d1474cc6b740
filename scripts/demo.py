#!/usr/bin/env python3
"""The sidecar with real training: two tiny fine-tuning runs, one of them failing part-way.

Starts the sidecar on a jobs root (by default a new folder under ./jobs for each run), starts
two real training jobs (standalone-trainer, a tiny GPT-2-style model, on the GPU if there is
one, else the CPU), shows one of them live in the terminal as `progress-sidecar tail` does, and
prints the URLs and the commands to follow them with. It then keeps serving until Ctrl-C; with
--once it exits when both jobs have ended: 0 when the first completed and the second failed, as
they should.

With --cluster, the same two jobs run on a cluster of this machine: a redis-server of the demo's
own (on a free port of 127.0.0.1, no persistence), two node sidecars (node-a and node-b, each
on its own jobs root, one job each) and a gateway on --port, which serves the jobs of both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import re
import shlex
import shutil
import signal
import socket
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from sidecar.clients.tail import tail
from sidecar.core.argtypes import port, positive_int

URL_LINE = re.compile(r"listening on (http://\S+)")
START_TIMEOUT = 30
STOP_TIMEOUT = 10
"""Seconds a process has to end after SIGTERM before it is killed."""
NODES = ("node-a", "node-b")
"""The cluster's nodes: the first runs the job that completes, the second the one that fails."""
GATEWAY = "gateway"
REDIS_MISSING = (
    "--cluster runs a Redis of its own, and redis-server is not installed: "
    "apt-get install redis-server"
)
REDIS_CLIENT_MISSING = (
    "--cluster needs Redis' client (the cluster extra): scripts/install train,cluster "
    "(scripts/demo --cluster installs it)"
)

Process = asyncio.subprocess.Process


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


def make_job_folders(folders: Sequence[Path]) -> list[Path]:
    """Make ``folders`` (and their missing parents); returns every folder made, deepest first."""
    created: list[Path] = []
    for folder in folders:
        created[:0] = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True)
    return created


def remove_empty(created: Sequence[Path]) -> None:
    """Remove the folders ``make_job_folders`` made, as long as nothing was written there."""
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        number: int = s.getsockname()[1]
        return number


async def relay(stream: asyncio.StreamReader, prefix: str = "") -> None:
    """Pass a sidecar's log lines on to our stderr."""
    while line := await stream.readline():
        sys.stderr.write(prefix + line.decode(errors="replace"))
        sys.stderr.flush()


class Interrupts:
    """SIGINT and SIGTERM (Ctrl-C, kill): while the demo serves, they end the serving (the demo
    then exits as it would have with --once); before that, they cancel the demo, which stops
    what it started and exits 128 + the signal's number. Later ones, and those that come while
    it stops what it started, are ignored: it is stopping already."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._stop = asyncio.Event()
        self._serving = False
        self._stopping = False
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._received, signum)

    def _received(self, signum: int) -> None:
        if self.signum is not None or self._stopping:
            return
        self.signum = signum
        if self._serving:
            self._stop.set()
        elif self._task is not None:
            self._task.cancel()

    async def serve(self) -> None:
        """Wait for Ctrl-C or SIGTERM."""
        self._serving = True
        await self._stop.wait()

    def stopping(self) -> None:
        """The demo stops what it started: a signal now would interrupt that."""
        self._stopping = True


async def interruptible(demo: Callable[[Interrupts], Awaitable[int]]) -> int:
    interrupts = Interrupts()
    try:
        return await demo(interrupts)
    except asyncio.CancelledError:
        if interrupts.signum is None:
            raise
        return 128 + interrupts.signum


async def stop(processes: Sequence[Process]) -> None:
    """SIGTERM to those of ``processes`` still running, and wait for them (SIGKILL to one that
    takes longer than STOP_TIMEOUT)."""
    running = [process for process in processes if process.returncode is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    for process in running:
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def start_sidecar(port: int, *args: str, name: str = "the sidecar") -> tuple[Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--port", str(port), "--log-level", "warning", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
    except BaseException as e:  # the timeout, or Ctrl-C meanwhile
        await stop([process])
        if isinstance(e, TimeoutError):
            raise SystemExit(f"{name} did not start within {START_TIMEOUT} s") from None
        raise
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
        raise SystemExit(f"{name} did not start: {last or 'no output'}")
    return process, match.group(1)


async def start_redis(binary: str) -> tuple[Process, str, asyncio.Task[None]]:
    """A ``redis-server`` on a free port of 127.0.0.1, without persistence, in a session of its
    own: Ctrl-C in the terminal does not reach it, so that it outlives the sidecars (which
    would warn that they lost it) and is stopped last. Returns it, its URL, and the task that
    reads its output."""
    for _ in range(3):  # a port found free may be taken before redis-server binds it
        number = free_port()
        process = await asyncio.create_subprocess_exec(
            binary, "--port", str(number), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--loglevel", "warning",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        assert process.stdout is not None
        output: deque[str] = deque(maxlen=20)
        reading = asyncio.create_task(keep_last(process.stdout, output))
        try:
            ready = await answers_ping(process, number)
        except BaseException:  # Ctrl-C meanwhile
            await stop([process])
            await reading
            raise
        if ready:
            return process, f"redis://127.0.0.1:{number}/0", reading
        await stop([process])
        await reading
        text = "\n".join(output)
        if "address already in use" not in text.lower():
            last = text.strip().splitlines()[-1] if text.strip() else "no output"
            raise SystemExit(f"redis-server did not start: {last}")
    raise SystemExit("redis-server did not start: no free port found for it")


async def keep_last(stream: asyncio.StreamReader, lines: deque[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").rstrip())


async def answers_ping(process: Process, number: int) -> bool:
    """Wait until the redis-server on port ``number`` answers PING: True; False if it exits or
    takes longer than START_TIMEOUT."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while process.returncode is None and loop.time() < deadline:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", number)
            try:
                writer.write(b"PING\r\n")
                if (await asyncio.wait_for(reader.readline(), 1)).startswith(b"+PONG"):
                    return True
            except TimeoutError:
                pass
            finally:
                writer.close()
        await asyncio.sleep(0.02)
    return False


async def start_job(root: Path, job_id: str, *extra: str) -> Process:
    log = open(root / job_id / "trainer.log", "wb")  # noqa: SIM115 (the child process writes to it)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "trainer", "--jobs-root", str(root), "--job-id", job_id,
            "--progress-interval", "0.25", *extra,
            stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    finally:
        log.close()


async def start_jobs(
    good: tuple[Path, str], bad: tuple[Path, str], steps: int, jobs: list[Process]
) -> None:
    """The two training jobs, added to ``jobs`` as they start: ``good`` runs to the end,
    ``bad`` fails at a third of its steps."""
    eval_steps = str(max(5, steps // 10))
    jobs.append(await start_job(*good, "--max-steps", str(steps), "--eval-steps", eval_steps))
    fail_at = str(max(2, steps // 3))
    jobs.append(await start_job(*bad, "--max-steps", str(steps), "--fail-at-step", fail_at))


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


def tail_command(url: str, job_id: str) -> str:
    return f"{sidecar_command()} tail {job_id} --url {url}"


def chosen_port(url: str, port: int) -> str:
    return f" (--port 0: the system chose port {url.rsplit(':', 1)[1]})" if not port else ""


async def demo(
    interrupts: Interrupts, root: Path, port: int, steps: int, once: bool, stamp: str
) -> int:
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


async def wait_for_jobs(url: str, job_ids: set[str]) -> None:
    """Until the gateway lists ``job_ids`` (the nodes publish their jobs within moments)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                async with session.get(f"{url}/api/jobs") as response:
                    listed = {job["job_id"] for job in (await response.json())["jobs"]}
                if job_ids <= listed:
                    return
            if loop.time() > deadline:
                raise SystemExit(
                    f"the gateway did not list the nodes' jobs within {START_TIMEOUT} s"
                )
            await asyncio.sleep(0.05)


async def cluster_demo(
    interrupts: Interrupts,
    folder: Path,
    port: int,
    steps: int,
    once: bool,
    stamp: str,
    redis_server: str,
) -> int:
    good, bad = f"demo-{stamp}-ok", f"demo-{stamp}-fails"
    roots = {node: folder / node for node in NODES}
    (good_node, good_root), (bad_node, bad_root) = roots.items()
    # Stopped in the reverse order: the trainers, the nodes, the gateway, Redis.
    redis: list[Process] = []
    gateway: list[Process] = []
    nodes: list[Process] = []
    jobs: list[Process] = []
    tasks: list[asyncio.Task[None]] = []
    created: list[Path] = []
    try:
        process, redis_url, reading = await start_redis(redis_server)
        redis.append(process)
        tasks.append(reading)
        bus = ("--redis", redis_url)
        # The gateway before anything is written: on a busy port the demo leaves nothing.
        process, url = await start_sidecar(port, *bus, "--node", GATEWAY, name="the gateway")
        gateway.append(process)
        created = make_job_folders([good_root / good, bad_root / bad])
        node_urls: dict[str, str] = {}
        for node, root in roots.items():
            process, node_urls[node] = await start_sidecar(
                0, "--root", str(root), *bus, "--node", node, name=node
            )
            nodes.append(process)
        for name, process in zip((GATEWAY, *NODES), (*gateway, *nodes), strict=True):
            assert process.stderr is not None
            tasks.append(asyncio.create_task(relay(process.stderr, f"[{name}] ")))
        print(
            f"gateway at {url}{chosen_port(url, port)}, serving the jobs of {' and '.join(NODES)}"
        )
        print(f"  dashboard:     {url}/")
        for node, root in roots.items():
            print(f"  {node + ':':<15}{node_urls[node]}/  (watches {shown(root)})")
        print(f"  redis:         {redis_url}  (the demo's own, no persistence)")
        await wait_for_jobs(url, {good, bad})
        await start_jobs((good_root, good), (bad_root, bad), steps, jobs)
        created = []  # the trainers write there now
        print(
            f"two training jobs: {good} on {good_node} (runs to the end) and {bad} on {bad_node} "
            "(fails at a third)"
        )
        folders = f"{shown(good_root)}, {shown(bad_root)}"
        serving = f"the cluster keeps serving, the gateway at {url}"
        return await follow_then_serve(url, good, bad, jobs, folders, serving, once, interrupts)
    finally:
        interrupts.stopping()
        for tier in (jobs, nodes, gateway, redis):
            await stop(tier)
        for task in tasks:
            await task
        remove_empty(created)  # the demo stopped before any job started


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
        help="the jobs root (default: a new folder for each run: ./jobs/<date>-<time>); with "
        "--cluster, the folder of the nodes' roots: DIR/node-a and DIR/node-b",
    )
    parser.add_argument(
        "--port",
        type=port,
        default=8765,
        help="the sidecar's port; 0: any free one (default: %(default)s); with --cluster, the "
        "gateway's (the nodes take free ones)",
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
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run the two jobs on a cluster of this machine (default: one sidecar, no Redis): a "
        "redis-server of the demo's own (apt-get install redis-server), two node sidecars, "
        "node-a and node-b, one job on each, and a gateway on --port that serves both; needs "
        "the cluster extra (scripts/demo --cluster installs it)",
    )
    args = parser.parse_args(argv)
    redis_server = None
    if args.cluster:
        if (redis_server := shutil.which("redis-server")) is None:
            raise SystemExit(REDIS_MISSING)
        if importlib.util.find_spec("redis") is None:
            raise SystemExit(REDIS_CLIENT_MISSING)
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
