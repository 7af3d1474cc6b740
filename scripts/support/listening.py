"""A server's "listening on http://HOST:PORT" line (the sidecar's first line on stdout, and the
benchmarks' contenders'), and the wait for it: with a deadline, and the process's output when
the line never comes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass

LISTENING = re.compile(r"listening on (http://(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+):(\d+))")
"""The line's URL (group 1), host (2, an IPv6 address in brackets) and port (3)."""
OUTPUT_WAIT = 5.0
"""Seconds to collect what a failed server wrote after its stdout ended (or after its kill)."""


@dataclass(frozen=True)
class Listening:
    """Where a server said it listens."""

    url: str
    host: str
    """As a socket takes it: an IPv6 address without its brackets."""
    port: int

    @property
    def ws(self) -> str:
        """The URL with the WebSocket scheme."""
        return "ws" + self.url.removeprefix("http")


def parse_listening(line: str | bytes) -> Listening | None:
    """The address a "listening on http://HOST:PORT" line names; None for any other line.

    Args:
        line: one line of a server's output.
    """
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    match = LISTENING.search(text)
    if match is None:
        return None
    url, host, port = match.groups()
    return Listening(url, host.strip("[]"), int(port))


class NotListening(RuntimeError):
    """A server that exited, or that named no address within its deadline; with what it wrote."""

    def __init__(self, what: str, reason: str, output: str, *, timed_out: bool) -> None:
        shown = output.strip() or "(no output)"
        super().__init__(f"{what} did not start: {reason}; its output:\n{shown}")
        self.reason = reason
        self.output = output
        self.timed_out = timed_out


async def await_listening(
    process: asyncio.subprocess.Process, *, timeout: float = 30.0, what: str = "the server"
) -> Listening:
    """Read ``process``'s stdout until a "listening on" line; the lines before it are dropped.

    Raises NotListening when stdout ends first (the process exited), or when ``timeout`` passes
    (the process is killed then): its message holds everything the process wrote, stderr too
    when it is a pipe.

    Args:
        process: started with ``stdout=PIPE`` (and, for its errors to show, ``stderr=PIPE``).
        timeout: seconds for the line to come.
        what: the server's name in the error.
    """
    assert process.stdout is not None, "the process's stdout must be a pipe"
    seen: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while line := await process.stdout.readline():
                seen.append(line)
                if (found := parse_listening(line)) is not None:
                    return found
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        output = await _rest_of_output(process, seen)
        reason = f'no "listening on" line within {timeout:g} s'
        raise NotListening(what, reason, output, timed_out=True) from None
    output = await _rest_of_output(process, seen)
    reason = f"it exited with code {process.returncode}"
    if process.returncode is None:
        reason = "it closed its stdout"
    raise NotListening(what, reason, output, timed_out=False)


def wait_listening(
    process: subprocess.Popen[str] | subprocess.Popen[bytes],
    *,
    timeout: float = 30.0,
    what: str = "the server",
) -> Listening:
    """``await_listening`` for a ``subprocess.Popen``: the same line, deadline and errors.

    Args:
        process: started with ``stdout=PIPE`` (and, for its errors to show, ``stderr=PIPE``).
        timeout: seconds for the line to come.
        what: the server's name in the error.
    """
    assert process.stdout is not None, "the process's stdout must be a pipe"
    fd = process.stdout.fileno()
    lines: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        # A thread, as a pipe's read has no deadline; a byte at a time, from beneath the file
        # object's buffer, so that what follows the line is all still there for the caller
        # (process.stdout, or communicate(), which reads beneath that buffer too).
        line = bytearray()
        while byte := os.read(fd, 1):
            line += byte
            if byte == b"\n":
                lines.put(bytes(line))
                if parse_listening(bytes(line)) is not None:
                    return
                line.clear()
        if line:
            lines.put(bytes(line))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str | bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            timed_out = True
            process.kill()
            reader.join(OUTPUT_WAIT)
            while not lines.empty():
                if (rest := lines.get()) is not None:
                    seen.append(rest)
            break
        if line is None:
            break
        seen.append(line)
        if (found := parse_listening(line)) is not None:
            return found
    if not reader.is_alive():  # stdout is at its end: the rest is stderr's
        with contextlib.suppress(subprocess.TimeoutExpired):
            seen += [part for part in process.communicate(timeout=OUTPUT_WAIT) if part]
    alive = process.poll() is None  # its stdout closed, or a child holds its pipes
    if alive:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(OUTPUT_WAIT)
    output = "".join(p.decode(errors="replace") if isinstance(p, bytes) else p for p in seen)
    if timed_out:
        reason = f'no "listening on" line within {timeout:g} s'
    elif alive:
        reason = "it closed its stdout"
    else:
        reason = f"it exited with code {process.returncode}"
    raise NotListening(what, reason, output, timed_out=timed_out)


async def _rest_of_output(process: asyncio.subprocess.Process, seen: list[bytes]) -> str:
    """What ``process`` wrote: the lines already read, the rest of stdout, then stderr."""
    out = err = b""
    try:
        out, err = await asyncio.wait_for(process.communicate(), OUTPUT_WAIT)
    except TimeoutError:  # alive with its stdout closed, or a child holds its pipes
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    text = b"".join(seen) + (out or b"") + (err or b"")
    return text.decode(errors="replace")
