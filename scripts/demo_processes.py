"""The demo's processes: sidecars (one, or a cluster's nodes and gateway), its redis-server and
the two trainers; starting them with a clear line when one does not start, and stopping them."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from support.listening import NotListening, await_listening
from support.redis_server import RedisServer, RedisServerError

START_TIMEOUT = 30
STOP_TIMEOUT = 10
"""Seconds a process has to end after SIGTERM before it is killed."""

Process = asyncio.subprocess.Process


async def relay(stream: asyncio.StreamReader, prefix: str = "") -> None:
    """Pass a sidecar's log lines on to our stderr."""
    while line := await stream.readline():
        sys.stderr.write(prefix + line.decode(errors="replace"))
        sys.stderr.flush()


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
    """``python -m sidecar`` on ``port``; the process and its URL. A sidecar that does not start
    ends the demo with one line: the busy port and how to choose another, or its last line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--port", str(port), "--log-level", "warning", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        listening = await await_listening(process, timeout=START_TIMEOUT, what=name)
    except NotListening as e:
        await stop([process])
        if e.timed_out:
            raise SystemExit(f"{name} did not start within {START_TIMEOUT} s") from None
        if "address already in use" in e.output.lower():
            raise SystemExit(
                f"port {port} is busy (another demo or sidecar?): choose another with --port N, "
                "or --port 0 for any free one"
            ) from None
        lines = e.output.strip().splitlines()
        raise SystemExit(f"{name} did not start: {lines[-1] if lines else 'no output'}") from None
    except BaseException:  # Ctrl-C meanwhile
        await stop([process])
        raise
    return process, listening.url


async def start_redis(binary: str, workdir: Path) -> RedisServer:
    """A ``redis-server`` on a free port of 127.0.0.1, without persistence, its default user
    given a random password (the demo's users are made with ``demo_acl``), in a session of its
    own: Ctrl-C in the terminal does not reach it, so that it outlives the sidecars (which
    would warn that they lost it) and is stopped last (``stop_redis``)."""
    server = RedisServer(
        workdir,
        password=secrets.token_urlsafe(12),
        binary=binary,
        extra_args=("--loglevel", "warning"),
        new_session=True,
        start_timeout=START_TIMEOUT,
    )
    # In a thread, so that Ctrl-C meanwhile cancels the demo at once; it stops the server then.
    starting = asyncio.ensure_future(asyncio.to_thread(server.start))
    try:
        await asyncio.shield(starting)
    except RedisServerError as e:
        raise SystemExit(str(e)) from None
    except BaseException:
        with contextlib.suppress(Exception):
            await starting
        await stop_redis(server)
        raise
    return server


async def stop_redis(server: RedisServer) -> None:
    await asyncio.to_thread(server.stop, STOP_TIMEOUT)


async def start_job(root: Path, job_id: str, *extra: str) -> Process:
    """A trainer (``python -m trainer``) of ``job_id`` under ``root``; its output in the job's
    trainer.log."""
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
