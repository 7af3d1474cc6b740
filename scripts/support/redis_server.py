"""A redis-server of one's own: on a free port of 127.0.0.1, without persistence, started and
stopped by its owner (the cluster tests, the demo's cluster, the cluster benchmark)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .ports import free_port

MISSING = "redis-server is not installed (apt-get install redis-server)"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
"""Seconds it has to end after SIGTERM before it is killed."""
PORT_TRIES = 3
"""A port found free may be taken before redis-server binds it: a first start tries again."""


class RedisServerError(RuntimeError):
    """redis-server is missing, or did not start (the message holds the end of its log)."""


class RedisServer:
    """One ``redis-server``: ``start`` it (again after ``kill`` or ``stop``: a new, empty one
    on the same port), ``kill`` it as a crash would, ``stop`` it (SIGTERM).

    It binds 127.0.0.1 only, saves nothing (``--save "" --appendonly no``) and runs in
    ``workdir`` (``--dir``), where its output goes too (``redis-PORT.log``).

    Args:
        workdir: its working directory (made if missing) and the folder of its log.
        password: set as ``--requirepass``; the URL carries it.
        binary: the redis-server to run (default: the one on PATH).
        extra_args: more of its options, e.g. ``("--loglevel", "warning")``.
        new_session: run it in a session of its own, out of reach of the terminal's Ctrl-C.
        start_timeout: seconds for it to answer PING.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        password: str | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        new_session: bool = False,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise RedisServerError(MISSING)
        self.binary = found
        self.workdir = workdir
        self.password = password
        self.extra_args = tuple(extra_args)
        self.new_session = new_session
        self.start_timeout = start_timeout
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._started = False  # once started, the port is its own: no other is tried

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def log(self) -> Path:
        """Its stdout and stderr, from every start on this port."""
        return self.workdir / f"redis-{self.port}.log"

    def start(self) -> None:
        """Start it and wait until it answers PING; raises RedisServerError if it does not."""
        assert self.process is None or self.process.poll() is not None, "already running"
        for attempt in range(1, PORT_TRIES + 1):
            try:
                self._start_once()
            except RedisServerError:
                taken = "address already in use" in self._log_tail().lower()
                if self._started or not taken or attempt == PORT_TRIES:
                    raise
                self.port = free_port()
            else:
                self._started = True
                return

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, no save (it has none anyway)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM and wait for it; SIGKILL if it takes longer than ``timeout`` seconds."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def _start_once(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), *self.extra_args]
        if self.password:
            args += ["--requirepass", self.password]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        deadline = time.monotonic() + self.start_timeout
        while not self._answers_ping():
            if self.process.poll() is not None:
                self.process = None
                raise RedisServerError(f"redis-server did not start: {self._last_line()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RedisServerError(
                    f"redis-server did not answer PING on port {self.port} within "
                    f"{self.start_timeout:g} s: {self._last_line()}"
                )
            time.sleep(0.005)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
        except OSError:
            return False
        # With a password, an unauthenticated PING is refused: it is up all the same.
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def _last_line(self) -> str:
        lines = self._log_tail().strip().splitlines()
        return lines[-1].strip() if lines else "no output"
