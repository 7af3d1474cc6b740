"""Every field of every kind of bus entry, one at a time, replaced by something hostile, in a
real node's keys, read by another node and a gateway (real processes): afterwards every sidecar
still serves, still marks a quiet job stalled, and no log holds a traceback."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sidecar.bus import keys, wire
from sidecar.core.state import JobState
from tests.helpers import wait_for
from tests.sidecar.bus.cluster import Cluster, Sidecar, has_jobs, job_field, write_job

pytestmark = pytest.mark.timeout(120)

MARK = "__hostile__"
HOSTILE: list[bytes] = [
    b'"\\ud800"',  # a lone surrogate
    b'"a\\udfffb"',
    b"1e999",  # past a float
    b"-1e20",
    b"18446744073709551616",  # 2**64
    b"-1",
    b"true",
    b"null",
    b"[]",
    b'{"a": 1}',
    b'"x"',
    b'"' + b"a" * (2 << 20) + b'"',  # 2 MiB
    b"[" * 700 + b"]" * 700,  # 700 deep
    b'{"a":' * 700 + b"1" + b"}" * 700,
    b"NaN",
]
GARBAGE: list[bytes] = [b"", b"not json", b"\xff\xfe\x00", b"[1,2", b"{" * 5000, b"\x00" * 100]


def _templates(epoch: str) -> dict[str, dict[str, Any]]:
    state = JobState("fuzz", {"status": "running", "current_step": 1}, 1.7e9, has_file=True)
    mark = wire.HistoryMark(epoch, 0, 1)
    return {
        "state": json.loads(wire.state_message(state, epoch, 1)),
        "history": json.loads(wire.history_message("fuzz", [b'{"a":1}'], mark=mark, reset=True)),
        "heartbeat": json.loads(wire.heartbeat_message(epoch)),
        "gone": json.loads(wire.gone_message("fuzz")),
        "leave": json.loads(wire.leave_message()),
    }


def _with(template: dict[str, Any], field: str, raw: bytes) -> bytes:
    """``template`` with ``field`` replaced by the JSON text ``raw`` (as bytes: what no
    json.dumps would write)."""
    text = json.dumps({**template, field: MARK}).encode()
    return text.replace(json.dumps(MARK).encode(), raw, 1)


def hostile_entries(epoch: str) -> list[bytes]:
    """One field at a time of each kind, each hostile value; and garbage."""
    entries = []
    for template in _templates(epoch).values():
        for field in sorted(template):
            entries += [_with(template, field, raw) for raw in HOSTILE]
    entries += [
        _with(_templates(epoch)["history"], "entries", b"[" + raw + b"]") for raw in HOSTILE
    ]
    return entries + GARBAGE


async def test_every_field_of_every_entry_hostile_stops_nothing(cluster: Cluster) -> None:
    write_job(cluster.root("node-a"), "quiet", current_step=1)  # never written again
    write_job(cluster.root("node-b"), "live", current_step=1)
    a = await cluster.start("node-a", "--stall-after", "3")
    b = await cluster.start("node-b")
    gateway = await cluster.start(None)
    for sidecar in (a, gateway):
        await wait_for(lambda s=sidecar: has_jobs(cluster, s, {"live": "node-b"}), what="live")
    redis = cluster.redis.client()
    epoch = (redis.get(keys.alive_key("node-b")) or b"").decode()
    entries = hostile_entries(epoch)
    with redis.pipeline(transaction=False) as pipe:
        for entry in entries:  # in node-b's own keys: what its credentials could write
            pipe.xadd(keys.changes_key("node-b"), {keys.FIELD: entry})
        pipe.xadd(keys.changes_key("node-b"), {b"not-m": b"x"})
        for number, entry in enumerate(entries):
            pipe.hset(keys.jobs_key("node-b"), f"fuzz{number}", entry)
        pipe.rpush(keys.history_key("node-b", "live"), *entries)
        pipe.set(keys.history_mark_key("node-b", "live"), b"\xff 1e999 -1")
        # Keys of the wrong type under nodes that announce themselves.
        pipe.set(keys.alive_key("evil"), epoch)
        pipe.set(keys.changes_key("evil"), b"not a stream")
        pipe.set(keys.alive_key("evil2"), epoch)
        pipe.xadd(keys.changes_key("evil2"), {keys.FIELD: wire.heartbeat_message(epoch)})
        pipe.set(keys.jobs_key("evil2"), b"not a hash")
        pipe.execute()
    late = await cluster.start(None)  # reads node-b's hash, history and all at start
    # Someone follows node-b's job's history on each reader: the hostile list is read.
    clients = [await cluster.follow(s, "live", "history=1") for s in (a, gateway, late)]
    await wait_for(lambda: _dropped_some(cluster, gateway), what="drops counted")
    for step in (2, 3):  # node-b's real changes still flow everywhere
        write_job(cluster.root("node-b"), "live", current_step=step)
        for sidecar in (a, gateway, late):
            await wait_for(
                lambda s=sidecar, n=step: job_field(cluster, s, "live", "current_step", n),
                what=f"step {step}",
            )
    for client in clients:
        await client.until(lambda s: s.get("current_step") == 3)
    # node-a's stall clock still runs, and every reader shows what it found.
    for sidecar in (a, gateway, late):
        await wait_for(
            lambda s=sidecar: job_field(cluster, s, "quiet", "stalled", True),
            timeout=10,
            what="the quiet job stalled",
        )
    for sidecar in (a, b, gateway, late):
        health = await cluster.get(sidecar, "/healthz")
        assert health["status"] == "ok" and "tasks_down" not in health, health
    for sidecar in list(cluster.sidecars):
        log = await cluster.stop(sidecar)
        assert "Traceback" not in log, log
        assert len(re.findall("not this protocol's", log)) <= 30, "a line per bad entry"


async def _dropped_some(cluster: Cluster, sidecar: Sidecar) -> bool:
    async with cluster.session.get(sidecar.url("/metrics")) as response:
        text = await response.text()
    found = re.search(r"^sidecar_bus_entries_dropped_total (\S+)$", text, re.MULTILINE)
    return found is not None and float(found.group(1)) > 100
