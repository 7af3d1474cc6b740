"""Entries anyone can write to Redis stop nothing (issue 20): a forged state with a lone
surrogate or an impossible time is served safely, crafted history entries never splice a frame,
and every part of the bus runs under the supervisor (a failure shows in ``/healthz``, and the
part comes back)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sidecar.bus import wire
from sidecar.bus.link import Link
from sidecar.core.codec import REPLACEMENT
from sidecar.server.keys import BUS, HUB, SUPERVISOR
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import wait_for, write_atomic
from tests.redis_server import RedisServer
from tests.sidecar.server.test_supervisor import failing_once, shows_down_then_up

pytestmark = pytest.mark.timeout(60)

FORGED_STATE = (
    b'{"kind": "state", "node": "node-x", "job_id": "forged", "epoch": "e1", "seq": 1,'
    b' "document": {"status": "\\ud800running", "error": "\\udfff"},'
    b' "modified_at": -1e20, "has_file": true}'
)
CRAFTED_ENTRIES = [
    b'{"step": 1, "loss": 2.5}',
    # Joined as it came, it would close the list and make the frame a snapshot.
    b'{"step": 2}], "type": "snapshot", "status": "INJECTED", "x": [{"a": 1}',
    b'{"step": 3, "note": "\\ud800"}',
    b"\xff\xfe not utf-8",
    b"[1, 2]",
    b'{"a":' * 100 + b"1" + b"}" * 100,
]


async def start_node(start_sidecar: StartSidecar, redis_server: RedisServer) -> Sidecar:
    sidecar = await start_sidecar(redis_url=redis_server.url, node="node-a", node_timeout=3.0)
    await wait_for(lambda: sidecar.app[BUS].up, what="the bus up")
    return sidecar


def forge(redis_server: RedisServer) -> None:
    """Write what node-x's sidecar would, with hostile values in it."""
    redis = redis_server.client()
    redis.rpush(wire.history_key("node-x", "forged"), *CRAFTED_ENTRIES)
    redis.set(wire.history_mark_key("node-x", "forged"), b"e1 0 6")
    redis.set(wire.job_key("node-x", "forged"), FORGED_STATE)
    redis.set(wire.node_key("node-x"), b"e1")
    redis.xadd(wire.CHANGES, {wire.FIELD: FORGED_STATE})
    redis.xadd(wire.CHANGES, {wire.FIELD: wire.heartbeat_message("node-x", "e1")})


async def test_a_forged_state_with_a_surrogate_and_an_impossible_time_is_served_safely(
    start_sidecar: StartSidecar, redis_server: RedisServer, jobs_root: Path
) -> None:
    sidecar = await start_node(start_sidecar, redis_server)
    forge(redis_server)

    async def listed() -> bool:
        status, body = await sidecar.get_json("/api/jobs")
        assert status == 200, body
        return "forged" in {job["job_id"] for job in body["jobs"]}

    await wait_for(listed, what="the forged job in /api/jobs")
    status, body = await sidecar.get_json("/api/jobs/forged")
    assert status == 200
    assert body["status"] == f"{REPLACEMENT}running" and body["error"] == REPLACEMENT
    assert body["timestamp"] == "1970-01-01T00:00:00.000Z"
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
    """Point 7: history read back from Redis is checked entry by entry; the bad ones are
    dropped and counted, and every frame parses as the message it is."""
    sidecar = await start_node(start_sidecar, redis_server)
    forge(redis_server)
    await wait_for(lambda: "forged" in sidecar.app[HUB], what="the forged job")
    expected = [{"step": 1, "loss": 2.5}, {"step": 3, "note": REPLACEMENT}]

    async with sidecar.session.get(sidecar.url("/api/jobs/forged/history")) as response:
        text = await response.text()
    body = json.loads(text)
    assert body == {"job_id": "forged", "entries": expected}

    ws = await sidecar.session.ws_connect(
        sidecar.url("/ws/training/forged?history=1").replace("http", "ws", 1)
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
    async with sidecar.session.get(sidecar.url("/metrics")) as response:
        metrics = await response.text()
    assert "sidecar_bus_entries_dropped_total 4.0" in metrics


async def test_a_bus_message_of_bytes_that_are_not_utf8_is_dropped_and_counted(
    start_sidecar: StartSidecar, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    sidecar = await start_node(start_sidecar, redis_server)
    redis = redis_server.client()
    for _ in range(50):
        redis.xadd(wire.CHANGES, {wire.FIELD: b"\xff" * 10})
    redis.set(wire.node_key("\xff"), b"e1")  # an announcement of no valid node name
    forge(redis_server)
    await wait_for(lambda: "forged" in sidecar.app[HUB], what="the stream read past them")
    assert sidecar.app[BUS].dropped >= 50
    lines = [r for r in caplog.records if "not this protocol's" in r.getMessage()]
    assert len(lines) == 1, "one line a while, not one per entry"


async def injected_part(
    sidecar: Sidecar, redis_server: RedisServer, jobs_root: Path, part: str
) -> None:
    """Make ``part`` run into its fault, then show it down, back up, and the bus working."""
    redis = redis_server.client()
    if part == "bus-reader":
        redis.xadd(wire.CHANGES, {wire.FIELD: wire.heartbeat_message("node-x", "e1")})
    elif part == "bus-publisher":
        write_atomic(jobs_root / "own" / "progress.json", {"status": "running", "current_step": 2})
    await shows_down_then_up(sidecar, part)
    # Afterwards: a change of this node reaches Redis, and another node's reaches the hub.
    write_atomic(jobs_root / "own" / "progress.json", {"status": "running", "current_step": 3})
    await wait_for(
        lambda: b'"current_step":3' in (redis.get(wire.job_key("node-a", "own")) or b""),
        what="this node's change in Redis",
    )
    forge(redis_server)
    await wait_for(lambda: "forged" in sidecar.app[HUB], what="another node's job")


@pytest.mark.parametrize(
    ("part", "target"),
    [
        ("bus-reader", (wire, "decode")),
        ("bus-publisher", (wire, "state_message")),
        ("bus-announcer", (wire, "heartbeat_message")),
        ("bus-node-watch", (Link, "reading")),
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
