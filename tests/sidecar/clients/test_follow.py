"""The Python client, against real sidecars on real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from scripts.support.ports import free_port
from sidecar.clients.follow import (
    FollowError,
    InvalidURL,
    SidecarUnreachable,
    StreamError,
    follow_job,
    sidecar_url,
    ws_url,
)
from sidecar.server.app import create_app
from sidecar.server.settings import Settings
from tests.conftest import StartSidecar
from tests.helpers import spawn_sidecar, stop_sidecar, wait_for, write_atomic


def test_ws_url() -> None:
    assert ws_url("http://h:1/", "j") == "ws://h:1/ws/training/j"
    assert ws_url("https://h", "j", history=True) == "wss://h/ws/training/j?history=1"
    assert ws_url("h:1", "a/b?c") == "ws://h:1/ws/training/a%2Fb%3Fc"


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("//127.0.0.1:8765/", "http://127.0.0.1:8765"),
        ("localhost", "http://localhost"),
        ("[::1]:8765", "http://[::1]:8765"),
        ("HTTP://Train.Example:8765/", "http://train.example:8765"),
        ("https://train.example/sidecar/", "https://train.example/sidecar"),
        ("ws://h:1", "http://h:1"),
        ("wss://h", "https://h"),
    ],
)
def test_sidecar_url_takes_host_port_and_the_web_schemes(typed: str, url: str) -> None:
    assert sidecar_url(typed) == url


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("ftp://x", "scheme 'ftp' not supported: use http or https"),
        ("ftp:x", "want http://host:port"),
        ("", "want http://host:port"),
        ("not a url", "want http://host:port"),
        ("http://", "no host"),
        ("http://h:99999", "port out of range 0-65535"),
        ("http://u:p@h", "want http://host:port, without credentials, query or fragment"),
        ("http://h/?token=x", "want http://host:port, without credentials, query or fragment"),
    ],
)
def test_sidecar_url_refuses_other_schemes_and_garbage(typed: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as refused:
        sidecar_url(typed)
    assert str(refused.value) == f"invalid sidecar url {typed!r}: {reason}"
    assert isinstance(refused.value, FollowError) and isinstance(refused.value, ValueError)


async def test_follow_to_completion_with_history(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running", "current_step": 1})
    (job / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    sidecar = await start_sidecar()
    logs: list[tuple[list[Any], bool]] = []
    states = []
    async for state in follow_job(sidecar.url("/"), "j", on_log=lambda e, r: logs.append((e, r))):
        states.append(state)
        if state["current_step"] == 1 and len(states) == 1:
            write_atomic(job / "progress.json", {"status": "running", "current_step": 2})
        elif state["current_step"] == 2:
            write_atomic(
                job / "progress.json", {"status": "completed", "current_step": 3, "final_loss": 0.5}
            )
    assert [s["current_step"] for s in states] == [1, 2, 3]
    assert states[-1]["complete"] is True and "type" not in states[-1] and "seq" not in states[-1]
    assert logs[0] == ([{"step": 1, "loss": 2.0}], False)


async def test_follow_reconnects_across_a_sidecar_restart(jobs_root: Path) -> None:
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "current_step": 1})
    port = free_port()
    server = TestServer(create_app(Settings(root=jobs_root)), host="127.0.0.1", port=port)
    await server.start_server()
    url = f"http://127.0.0.1:{port}"
    stream = follow_job(url, "j", min_backoff=0.02, max_backoff=0.2)
    assert (await anext(stream))["current_step"] == 1
    await server.close()
    # Written while no sidecar runs: the restarted one reads it, the client sees it.
    write_atomic(file, {"status": "running", "current_step": 2})
    server = TestServer(create_app(Settings(root=jobs_root)), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        assert (await asyncio.wait_for(anext(stream), 10))["current_step"] == 2
        write_atomic(file, {"status": "failed", "error": "boom"})
        final = await asyncio.wait_for(anext(stream), 10)
        assert (final["status"], final["complete"]) == ("failed", True)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
    finally:
        await stream.aclose()
        await server.close()


async def test_follow_waits_for_a_job_that_does_not_exist_yet(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar()
    retries: list[tuple[int | None, str]] = []
    stream = follow_job(
        sidecar.url("/"),
        "later",
        wait_for_job=True,
        on_retry=lambda code, reason: retries.append((code, reason)),
        min_backoff=0.02,
        max_backoff=0.1,
    )
    first = asyncio.ensure_future(anext(stream))
    await wait_for(lambda: len(retries) >= 2, what="two unknown-job answers")
    assert not first.done()
    assert retries[0] == (4404, "unknown job")
    write_atomic(jobs_root / "later" / "progress.json", {"status": "running"})
    assert (await asyncio.wait_for(first, 10))["status"] == "running"
    await stream.aclose()


async def test_follow_raises_at_once_for_an_unknown_job(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """Without wait_for_job (the default), an unknown job is an error, not a wait."""
    sidecar = await start_sidecar()
    with pytest.raises(StreamError) as unknown:
        await asyncio.wait_for(anext(follow_job(sidecar.url("/"), "nope")), 5)
    assert (unknown.value.code, unknown.value.reason) == (4404, "unknown job")


async def test_follow_gives_up_when_nothing_listens() -> None:
    port = free_port()
    retries: list[int | None] = []
    started = time.monotonic()
    with pytest.raises(SidecarUnreachable) as unreachable:
        await asyncio.wait_for(
            anext(
                follow_job(
                    f"127.0.0.1:{port}",
                    "j",
                    give_up_after=0.5,
                    min_backoff=0.02,
                    max_backoff=0.1,
                    on_retry=lambda code, reason: retries.append(code),
                )
            ),
            10,
        )
    assert 0.5 <= time.monotonic() - started < 5
    assert len(retries) >= 2 and set(retries) == {None}  # it did retry, then gave up
    assert (unreachable.value.url, unreachable.value.reason) == (
        f"http://127.0.0.1:{port}",
        "connection refused",
    )
    assert str(unreachable.value) == f"cannot reach http://127.0.0.1:{port}: connection refused"


async def test_follow_gives_up_counting_from_the_drop(jobs_root: Path) -> None:
    """An idle stream longer than give_up_after, then a sidecar gone for good: it retries for
    give_up_after seconds from the drop, then raises."""
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running", "current_step": 1})
    port = free_port()
    server = TestServer(create_app(Settings(root=jobs_root)), host="127.0.0.1", port=port)
    await server.start_server()
    retries: list[int | None] = []
    stream = follow_job(
        f"http://127.0.0.1:{port}",
        "j",
        give_up_after=1.0,
        min_backoff=0.02,
        max_backoff=0.1,
        on_retry=lambda code, reason: retries.append(code),
    )
    try:
        assert (await anext(stream))["current_step"] == 1
        await asyncio.sleep(1.2)  # the stream is up and quiet for longer than give_up_after
        await server.close()
        dropped = time.monotonic()
        with pytest.raises(SidecarUnreachable) as unreachable:
            await asyncio.wait_for(anext(stream), 10)
        assert 1.0 <= time.monotonic() - dropped < 5
        assert len(retries) >= 2 and retries[-1] is None  # it did retry: refused
        assert unreachable.value.reason == "connection refused"
    finally:
        await stream.aclose()
        await server.close()


@pytest.fixture
async def answering() -> AsyncIterator[Any]:
    """A web server that answers the stream's route with a given status, or with a WebSocket
    that sends a given text: what a proxy or another program at the sidecar's URL may do."""
    servers: list[TestServer] = []

    async def start(status: int = 200, text: str | None = None) -> str:
        async def handler(request: web.Request) -> web.StreamResponse:
            if text is None:
                return web.Response(status=status, text="no")
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_str(text)
            await ws.close()
            return ws

        app = web.Application()
        app.router.add_get("/ws/training/{job_id}", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (401, 4401, "unauthorized"),
        (403, 403, "forbidden: host or origin not allowed"),
        (404, 404, "not found: is {url} a progress-sidecar?"),
        (200, 200, "{url} is not a progress-sidecar: Invalid response status"),
    ],
)
async def test_follow_stops_at_a_refused_handshake(
    answering: Any, status: int, code: int, reason: str
) -> None:
    url = await answering(status)
    with pytest.raises(StreamError) as refused:
        await asyncio.wait_for(anext(follow_job(url, "j", min_backoff=0.02)), 5)
    assert (refused.value.code, refused.value.reason) == (code, reason.format(url=url))


async def test_follow_retries_a_server_error_then_gives_up(answering: Any) -> None:
    """A 5xx (a proxy whose sidecar restarts) is worth retrying, within give_up_after."""
    url = await answering(502)
    with pytest.raises(SidecarUnreachable) as unreachable:
        await asyncio.wait_for(
            anext(follow_job(url, "j", give_up_after=0.3, min_backoff=0.02, max_backoff=0.05)), 10
        )
    assert unreachable.value.reason == "http 502 Invalid response status"


async def test_follow_stops_at_a_stream_that_is_not_json(answering: Any) -> None:
    url = await answering(text="hello")
    with pytest.raises(FollowError) as refused:
        await asyncio.wait_for(anext(follow_job(url, "j")), 5)
    assert str(refused.value) == (
        "not a progress-sidecar stream: invalid json: Expecting value at line 1 column 1"
    )


async def test_follow_gives_up_on_refusals(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    with pytest.raises(StreamError) as invalid:
        await anext(follow_job(sidecar.url("/"), "-bad"))
    assert (invalid.value.code, invalid.value.reason) == (4400, "invalid job id")
    with pytest.raises(StreamError) as unknown:
        await anext(follow_job(sidecar.url("/"), "nope", wait_for_job=False))
    assert unknown.value.code == 4404


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


def test_ws_url_carries_since_with_the_other_parameters() -> None:
    assert ws_url("h:1", "j", since=("0195f3a2b1c4d5e6f7", 12)) == (
        "ws://h:1/ws/training/j?since=0195f3a2b1c4d5e6f7:12"
    )
    assert ws_url("https://h/p", "a b", history=True, since=("e_-1", 0)) == (
        "wss://h/p/ws/training/a%20b?history=1&since=e_-1:0"
    )


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
