"""The stall probe: a process of its own (``bench.py --many-jobs-probe SPEC``), blocking
sockets, one ``GET /healthz`` on a fresh connection every 5 ms; its round trips show the stall
another client suffers while a heavy one is served."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from typing import Any

from benchmarks.common import BENCH

PROBE_PAUSE = 0.005


def probe(spec: str) -> None:
    """The probe process (``bench.py --many-jobs-probe SPEC``): asks ``/healthz`` on a fresh
    connection every ``pause`` s until a line comes on stdin, then prints one JSON line: each
    request's start (POSIX time) and round trip (ms)."""
    options = json.loads(spec)
    host, port, pause = options["host"], options["port"], options["pause"]
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    samples: list[tuple[float, float]] = []
    errors = 0
    print("ready", flush=True)
    while not stop.is_set():
        began, began_mono = time.time(), time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=60) as s:
                s.sendall(request.encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            if not answer.startswith(b"HTTP/1.1 200"):
                errors += 1
        except OSError:
            errors += 1
        samples.append((began, (time.monotonic() - began_mono) * 1000))
        time.sleep(pause)
    print(json.dumps({"samples": samples, "errors": errors}), flush=True)


class Probe:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.windows: dict[str, list[tuple[float, float]]] = {}

    @classmethod
    async def start(cls, host: str, port: int) -> Probe:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH),
            "--many-jobs-probe",
            json.dumps({"host": host, "port": port, "pause": PROBE_PAUSE}),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"ready"
        return cls(process)

    def mark(self, name: str, began: float, ended: float) -> None:
        self.windows.setdefault(name, []).append((began, ended))

    async def stop(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"stop\n")
        await self.process.stdin.drain()
        out = await asyncio.wait_for(self.process.stdout.read(), 60)
        await self.process.wait()
        return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def round_trips(samples: list[list[float]], began: float, ended: float) -> list[float]:
    """The probe's round trips (ms) of the requests that overlap ``[began, ended]``."""
    return [rtt for at, rtt in samples if at <= ended and at + rtt / 1000 >= began]
