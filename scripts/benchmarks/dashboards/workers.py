"""The worker processes of the dashboards and viewers scenarios (load processes, the writer),
both sides of them: the parent starts one (``bench.py --FLAG SPEC``), tells it words on its
stdin and reads its lines; the worker reads those words and, as a load, raises its open-file
limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
from typing import Any

from benchmarks.common import BENCH


async def spawn(flag: str, spec: dict[str, Any]) -> asyncio.subprocess.Process:
    """A worker (``bench.py FLAG SPEC``, its spec as JSON), its stdin and stdout pipes."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH), flag, json.dumps(spec),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        limit=1 << 28,
    )  # fmt: skip


async def tell(processes: list[asyncio.subprocess.Process], word: str) -> None:
    """Write ``word`` as a line on each worker's stdin (a gone worker is skipped)."""
    for process in processes:
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError):
            process.stdin.write(word.encode() + b"\n")
            await process.stdin.drain()


async def expect(process: asyncio.subprocess.Process, word: str, timeout: float) -> str:
    """The worker's next line, which must begin with ``word``; what follows the word."""
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout)).decode().strip()
    if not line.startswith(word):
        raise SystemExit(f"a worker said {line[:200]!r}, not {word!r} (exit {process.returncode})")
    return line.removeprefix(word).strip()


async def last_json(process: asyncio.subprocess.Process, timeout: float) -> Any:
    """The worker's last line of output, as JSON, once it ended (killed past ``timeout``)."""
    assert process.stdout is not None
    try:
        out = await asyncio.wait_for(process.stdout.read(), timeout)
    except TimeoutError:
        process.kill()
        raise SystemExit(f"a worker gave no result within {timeout:.0f} s") from None
    await process.wait()
    return json.loads(out.decode().strip().splitlines()[-1])


def kill_all(processes: list[asyncio.subprocess.Process]) -> None:
    """Kill those still running (a phase that failed leaves no worker behind)."""
    for process in processes:
        if process.returncode is None:
            process.kill()


async def stdin_words() -> asyncio.StreamReader:
    """The worker's side: its stdin as a stream of words, one a line, on the running loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def next_word(reader: asyncio.StreamReader) -> str:
    """The next word on stdin ("" once the parent closed it)."""
    return (await reader.readline()).decode().strip()


def raise_open_files() -> int:
    """Raise this process's soft open-file limit to the hard one (a load holds thousands of
    sockets); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
