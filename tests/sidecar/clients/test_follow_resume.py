"""The Python client resuming after a dropped connection or a sidecar restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sidecar.clients.follow import follow_job
from tests.conftest import StartSidecar
from tests.helpers import spawn_sidecar, stop_sidecar, wait_for, write_atomic


class Link:
    """One connection through a ``Proxy``: the request target the client asked for, and the
    messages the sidecar sent on it (the proxy reads server frames: unmasked, uncompressed)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.messages: list[dict[str, Any]] = []

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


class Proxy:
    """A TCP proxy in front of a sidecar: it sees each connection (``links``), can drop them
    all while the sidecar runs on (``drop``), refuse new ones (``refusing``) and move to
    another sidecar (``upstream``)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.url = ""
        self.refusing = False
        self.links: list[Link] = []
        self._transports: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def drop(self) -> None:
        """Cut every connection at once, as a network does: no close frame either way."""
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.refusing:
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.transport.abort()  # as a sidecar that is down: the client retries
                return
            self._transports |= {writer.transport, up_writer.transport}
            head = await reader.readuntil(b"\r\n\r\n")
            link = Link(head.split(b" ", 2)[1].decode())
            self.links.append(link)
            up_writer.write(head)
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer, link=link)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, link: Link | None = None
    ) -> None:
        buffer = b""
        try:
            if link is not None:  # the sidecar's side: its answer's head, then its frames
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(head)
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if link is not None:
                    buffer = _read_frames(buffer + data, link)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()


def _read_frames(buffer: bytes, link: Link) -> bytes:
    """Take the whole frames at the start of ``buffer`` (text ones to ``link.messages``);
    returns what is left."""
    while len(buffer) >= 2:
        opcode, length, start = buffer[0], buffer[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < start + length:
            break
        if opcode == 0x81:  # FIN, text
            link.messages.append(json.loads(buffer[start : start + length]))
        buffer = buffer[start + length :]
    return buffer


@pytest.fixture
async def proxy() -> AsyncIterator[Callable[[tuple[str, int]], Awaitable[Proxy]]]:
    proxies: list[Proxy] = []

    async def start(upstream: tuple[str, int]) -> Proxy:
        proxies.append(Proxy(upstream))
        await proxies[-1].start()
        return proxies[-1]

    yield start
    for each in proxies:
        await each.close()


ENVELOPE = {"type", "epoch", "seq", "resumed"}


async def test_follow_resumes_from_the_last_state_after_a_dropped_connection(
    jobs_root: Path, start_sidecar: StartSidecar, proxy: Any
) -> None:
    """The sidecar runs on, the connection drops: the client reconnects with ``since`` of the
    last state it applied and gets one ``resumed`` patch from it, which it merges: keys gone
    meanwhile go, nested ones merge, the envelope stays out of the state."""
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "current_step": 1, "loss": 2.0, "gpu": {"a": 1}})
    sidecar = await start_sidecar()
    port = sidecar.server.port
    assert port is not None
    front: Proxy = await proxy(("127.0.0.1", port))
    stream = follow_job(front.url, "j", min_backoff=0.02, max_backoff=0.1)
    try:
        assert (await anext(stream))["current_step"] == 1
        write_atomic(file, {"status": "running", "current_step": 2, "loss": 1.5, "gpu": {"a": 2}})
        assert (await asyncio.wait_for(anext(stream), 5))["current_step"] == 2
        first = front.links[0]
        assert "since" not in first.query and first.messages[0]["type"] == "snapshot"
        last = first.messages[-1]  # the patch the client applied last
        assert last["type"] == "patch" and last["current_step"] == 2
        # Dropped, and kept out while the job moves on: the new state waits at the sidecar.
        front.refusing = True
        front.drop()
        write_atomic(
            file, {"status": "running", "current_step": 3, "eval_loss": 1.2, "gpu": {"b": 3}}
        )

        async def sidecar_has_step_3() -> bool:
            _, state = await sidecar.get_json("/api/jobs/j")
            return bool(state.get("current_step") == 3)

        await wait_for(sidecar_has_step_3, what="the sidecar to read step 3")
        front.refusing = False
        state = await asyncio.wait_for(anext(stream), 10)
        second = front.links[-1]
        assert second.query["since"] == [f"{last['epoch']}:{last['seq']}"]
        resumed = second.messages[0]
        assert (resumed["type"], resumed.get("resumed")) == ("patch", True)
        assert resumed["loss"] is None  # a merge patch from step 2, not a snapshot
        _, rest = await sidecar.get_json("/api/jobs/j")
        assert state == {k: v for k, v in rest.items() if k not in ENVELOPE}
        assert (state["current_step"], state["eval_loss"], state["gpu"]) == (3, 1.2, {"b": 3})
        assert "loss" not in state and not ENVELOPE & state.keys()
        # And on from there, on the resumed connection.
        write_atomic(file, {"status": "completed", "current_step": 4})
        final = await asyncio.wait_for(anext(stream), 5)
        assert (final["current_step"], final["complete"], "gpu" in final) == (4, True, False)
    finally:
        await stream.aclose()


async def test_follow_history_has_no_entry_twice_across_a_sidecar_restart(
    jobs_root: Path, proxy: Any
) -> None:
    """A real sidecar process, restarted under a following client: the new one has a new epoch
    and answers ``since`` with a snapshot; the first log after the reconnection has the whole
    history again and says ``reset``, so the history the client keeps has each entry once."""
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running", "current_step": 3})
    (job / "metrics.jsonl").write_text("".join(f'{{"step": {s}}}\n' for s in (1, 2, 3)))
    process, host, port = await spawn_sidecar(jobs_root)
    front: Proxy = await proxy((host, port))
    calls: list[tuple[list[int], bool]] = []
    history: list[int] = []

    def on_log(entries: list[Any], reset: bool) -> None:
        steps = [entry["step"] for entry in entries]
        calls.append((steps, reset))
        history[:] = steps if reset else history + steps

    # on_log is called while the stream is read: read it all along.
    stream = follow_job(front.url, "j", on_log=on_log, min_backoff=0.02, max_backoff=0.2)
    steps: list[int] = []

    async def read() -> None:
        async for state in stream:
            steps.append(state["current_step"])

    reading = asyncio.create_task(read())
    try:
        await wait_for(lambda: steps == [3], what="the first state")
        await wait_for(lambda: history == [1, 2, 3], what="the history")
        before = len(calls)
        with open(job / "metrics.jsonl", "a") as f:
            f.write('{"step": 4}\n')
        await wait_for(lambda: history == [1, 2, 3, 4], what="step 4 in the history")
        assert calls[before:] == [([4], False)]
        before = len(calls)
        epoch = front.links[0].messages[0]["epoch"]
        await stop_sidecar(process)
        with open(job / "metrics.jsonl", "a") as f:  # written while no sidecar runs
            f.write('{"step": 5}\n')
        write_atomic(job / "progress.json", {"status": "running", "current_step": 5})
        process, host, port = await spawn_sidecar(jobs_root)
        front.upstream = (host, port)
        await wait_for(lambda: steps[-1] == 5, timeout=20, what="the restarted sidecar's state")
        await wait_for(lambda: history == [1, 2, 3, 4, 5], what="the history after the restart")
        assert calls[before][1] is True  # the reconnection's first log replaces the history
        before = len(calls)
        # It asked to resume, from the old sidecar's epoch; the new one has another: snapshot.
        again = front.links[-1]
        assert again.query["since"][0].startswith(f"{epoch}:")
        assert again.messages[0]["type"] == "snapshot" and again.messages[0]["epoch"] != epoch
        with open(job / "metrics.jsonl", "a") as f:
            f.write('{"step": 6}\n')
        await wait_for(lambda: history == [1, 2, 3, 4, 5, 6], what="step 6 in the history")
        assert calls[before:] == [([6], False)]
        assert not reading.done()
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await stream.aclose()
        await stop_sidecar(process)
