"""Entries anyone can write to Redis stop nothing: a forged state with a lone surrogate or an
impossible time is dropped and counted, never served; crafted history entries never splice a
frame; what lies outside a node's keys is no node's; and every part of the bus runs under the
supervisor (a failure shows in ``/healthz``, and the part comes back)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from sidecar.bus import keys, refusals, wire
from sidecar.bus.discovery import Discovery
from sidecar.bus.link import Link
from sidecar.bus.reader import Reader
from sidecar.core.state import JobState
from sidecar.server.keys import BUS, HUB, SUPERVISOR
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import wait_for, write_atomic
from tests.redis_server import RedisServer
from tests.sidecar.server.test_supervisor import failing_once, shows_down_then_up

pytestmark = pytest.mark.timeout(60)

NODE_X = "node-x"
CRAFTED_STATE = wire.state_message(
    JobState("crafted", {"status": "running"}, 1.0, has_file=True), "e1", 1
)
"""A state as node-x's sidecar would write it: the one of its jobs that is served."""


def forged(job_id: str, **fields: Any) -> bytes:
    """A state message of node-x's, with hostile values in place of the right ones."""
    message = json.loads(wire.state_message(JobState(job_id, {}, 1.0, has_file=True), "e1", 2))
    return json.dumps({**message, **fields}).encode()  # json.dumps escapes a lone surrogate


FORGED_STATES = {
    "forged": forged("forged", document={"status": "\ud800running", "error": "\udfff"}),
    "forged-time": forged("forged-time", document={"status": "running"}, modified_at=-1e20),
}
CRAFTED_ENTRIES = [
    b'{"step": 1, "loss": 2.5}',
    # Joined as it came, it would close the list and make the frame a snapshot.
    b'{"step": 2}], "type": "snapshot", "status": "INJECTED", "x": [{"a": 1}',
    b'{"step": 3, "note": "\\ud800"}',  # once repaired, now refused
    b"\xff\xfe not utf-8",
    b"[1, 2]",
    b'{"a":' * 100 + b"1" + b"}" * 100,
]


async def start_node(start_sidecar: StartSidecar, redis_server: RedisServer) -> Sidecar:
    sidecar = await start_sidecar(redis_url=redis_server.url, node="node-a", node_timeout=3.0)
    await wait_for(lambda: sidecar.app[BUS].up, what="the bus up")
    return sidecar


def forge(redis_server: RedisServer) -> None:
    """Write, in one transaction, what node-x's sidecar would, with hostile values in node-x's
    own keys: a sidecar that finds node-x now reads its jobs hash, one that knows it already
    reads its stream."""
    with redis_server.client().pipeline(transaction=True) as pipe:
        pipe.rpush(keys.history_key(NODE_X, "crafted"), *CRAFTED_ENTRIES)
        pipe.set(keys.history_mark_key(NODE_X, "crafted"), b"e1 0 6")
        pipe.hset(keys.jobs_key(NODE_X), mapping={**FORGED_STATES, "crafted": CRAFTED_STATE})
        pipe.set(keys.alive_key(NODE_X), b"e1")
        for state in (*FORGED_STATES.values(), CRAFTED_STATE):
            pipe.xadd(keys.changes_key(NODE_X), {keys.FIELD: state})
        pipe.xadd(keys.changes_key(NODE_X), {keys.FIELD: wire.heartbeat_message("e1")})
        pipe.execute()


async def known_node_x(sidecar: Sidecar, redis_server: RedisServer) -> None:
    """Announce node-x, with nothing yet, and wait until the sidecar follows its stream."""
    redis = redis_server.client()
    redis.set(keys.alive_key(NODE_X), b"e1")
    redis.xadd(keys.changes_key(NODE_X), {keys.FIELD: wire.heartbeat_message("e1")})
    await wait_for(lambda: NODE_X in sidecar.app[BUS].nodes(), what="node-x followed")


async def dropped_metric(sidecar: Sidecar) -> str:
    async with sidecar.session.get(sidecar.url("/metrics")) as response:
        metrics = await response.text()
    return next(m for m in metrics.splitlines() if m.startswith("sidecar_bus_entries_dropped_"))


@pytest.mark.parametrize("known", [True, False], ids=["from-its-stream", "from-its-jobs-hash"])
async def test_a_forged_state_with_a_surrogate_or_an_impossible_time_is_dropped_never_served(
    start_sidecar: StartSidecar,
    redis_server: RedisServer,
    jobs_root: Path,
    caplog: pytest.LogCaptureFixture,
    known: bool,
) -> None:
    sidecar = await start_node(start_sidecar, redis_server)
    if known:
        await known_node_x(sidecar, redis_server)
    redis = redis_server.client()
    # A good state, but outside node-x's keys (the stream all nodes once shared, a key of no
    # kind a reader knows): no node's.
    redis.xadd(keys.PREFIX + "changes", {keys.FIELD: CRAFTED_STATE})
    redis.hset(keys.node_prefix(NODE_X) + "others", "crafted", CRAFTED_STATE)
    forge(redis_server)
    await wait_for(lambda: "crafted" in sidecar.app[HUB], what="node-x's good job")
    for job_id in FORGED_STATES:
        assert job_id not in sidecar.app[HUB]
        status, _ = await sidecar.get_json(f"/api/jobs/{job_id}")
        assert status == 404, job_id
    status, body = await sidecar.get_json("/api/jobs")
    assert status == 200 and {job["job_id"] for job in body["jobs"]} == {"crafted"}
    assert sidecar.app[BUS].dropped == 2
    assert await dropped_metric(sidecar) == "sidecar_bus_entries_dropped_total 2.0"
    said = [r.getMessage() for r in caplog.records if "not this protocol's" in r.getMessage()]
    assert len(said) == 2 and all(f"bus: node {NODE_X}: dropped an entry" in m for m in said)
    assert any("surrogate" in m for m in said) and any("not a time" in m for m in said), said
    # The node's own jobs still flow, and nothing failed.
    write_atomic(jobs_root / "own" / "progress.json", {"status": "running", "current_step": 1})
    await wait_for(lambda: "own" in sidecar.app[HUB], what="this node's own job")
    client = await sidecar.connect("own")
    await client.until(lambda s: s.get("current_step") == 1)
    status, health = await sidecar.get_json("/healthz")
    assert status == 200 and health["status"] == "ok" and health["bus"] == "up"
    assert sum(sidecar.app[SUPERVISOR].restarts.values()) == 0


async def test_crafted_history_entries_never_splice_a_frame(
    start_sidecar: StartSidecar, redis_server: RedisServer
) -> None:
    """History read back from Redis is checked entry by entry; the bad ones (a lone surrogate
    among them) are dropped and counted, and every frame parses as the message it is."""
    sidecar = await start_node(start_sidecar, redis_server)
    forge(redis_server)  # found whole: its two forged states are dropped from its jobs hash
    await wait_for(lambda: "crafted" in sidecar.app[HUB], what="the crafted job")
    expected = [{"step": 1, "loss": 2.5}]

    async with sidecar.session.get(sidecar.url("/api/jobs/crafted/history")) as response:
        text = await response.text()
    body = json.loads(text)
    assert body == {"job_id": "crafted", "entries": expected}

    ws = await sidecar.session.ws_connect(
        sidecar.url("/ws/training/crafted?history=1").replace("http", "ws", 1)
    )
    try:
        frames: list[dict[str, Any]] = []
        while not any(frame["type"] == "log" for frame in frames):
            message = await ws.receive(timeout=5)
            frames.append(json.loads(message.data))
    finally:
        await ws.close()
    log = next(frame for frame in frames if frame["type"] == "log")
    assert log["entries"] == expected and "status" not in log
    assert await dropped_metric(sidecar) == "sidecar_bus_entries_dropped_total 7.0"  # 2 + 5


async def test_a_bus_message_of_bytes_that_are_not_utf8_is_dropped_and_counted(
    start_sidecar: StartSidecar, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    sidecar = await start_node(start_sidecar, redis_server)
    await known_node_x(sidecar, redis_server)
    redis = redis_server.client()
    for _ in range(50):
        redis.xadd(keys.changes_key(NODE_X), {keys.FIELD: b"\xff" * 10})
    redis.set(keys.alive_key("\xff"), b"e1")  # an announcement of no valid node name
    redis.xadd(keys.changes_key(NODE_X), {keys.FIELD: CRAFTED_STATE})
    await wait_for(lambda: "crafted" in sidecar.app[HUB], what="the stream read past them")
    assert sidecar.app[BUS].dropped == 50
    assert set(sidecar.app[BUS].nodes()) == {"node-a", NODE_X}
    lines = [r for r in caplog.records if "not this protocol's" in r.getMessage()]
    assert 1 <= len(lines) <= 5, "a few lines a while, not one per entry"
    assert all(r.levelno == logging.WARNING for r in lines)


async def injected_part(
    sidecar: Sidecar, redis_server: RedisServer, jobs_root: Path, part: str
) -> None:
    """Make ``part`` run into its fault, then show it down, back up, and the bus working."""
    redis = redis_server.client()
    if part == "bus-reader":
        forge(redis_server)  # node-x found (its jobs hash read by the discovery)...
        await wait_for(lambda: "crafted" in sidecar.app[HUB], what="node-x's job")
        heartbeat = wire.heartbeat_message("e1")
        redis.xadd(keys.changes_key("node-x"), {keys.FIELD: heartbeat})  # ...then its stream
    elif part == "bus-publisher":
        write_atomic(jobs_root / "own" / "progress.json", {"status": "running", "current_step": 2})
    await shows_down_then_up(sidecar, part)
    # Afterwards: a change of this node reaches Redis, and another node's reaches the hub.
    write_atomic(jobs_root / "own" / "progress.json", {"status": "running", "current_step": 3})
    await wait_for(
        lambda: b'"current_step":3' in (redis.hget(keys.jobs_key("node-a"), "own") or b""),
        what="this node's change in Redis",
    )
    forge(redis_server)
    await wait_for(lambda: "crafted" in sidecar.app[HUB], what="another node's job")


@pytest.mark.parametrize(
    ("part", "target"),
    [
        ("bus-reader", (Reader, "_take")),
        ("bus-publisher", (wire, "state_message")),
        ("bus-announcer", (wire, "heartbeat_message")),
        ("bus-node-watch", (Link, "reading")),
        ("bus-discovery", (Discovery, "look")),
        ("bus-refusals", (refusals, "_counts")),
    ],
)
async def test_every_bus_part_is_restarted_after_a_failure(
    start_sidecar: StartSidecar,
    redis_server: RedisServer,
    jobs_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    part: str,
    target: tuple[Any, str],
) -> None:
    write_atomic(jobs_root / "own" / "progress.json", {"status": "running", "current_step": 1})
    sidecar = await start_node(start_sidecar, redis_server)
    assert part in sidecar.app[SUPERVISOR].names
    owner, name = target
    faults: list[str] = []
    original = getattr(owner, name)
    if isinstance(original, property):
        assert original.fget is not None
        monkeypatch.setattr(owner, name, property(failing_once(original.fget, faults)))
    else:
        monkeypatch.setattr(owner, name, failing_once(original, faults))
    await injected_part(sidecar, redis_server, jobs_root, part)
    assert faults == ["raised"]
