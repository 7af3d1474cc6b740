"""Cluster mode under Redis ACL users made from ``progress-sidecar redis-acl``'s own output: a
node writes only its own keys, a gateway none, and what a node writes in its own keys is never
shown as another node's."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import NoPermissionError, RedisError

from tests.helpers import StreamClient, wait_for
from tests.redis_server import RedisServer
from tests.sidecar.bus.cluster import (
    PREFIX,
    Cluster,
    Sidecar,
    has_jobs,
    job_field,
    running_cluster,
    write_job,
)

pytestmark = pytest.mark.timeout(90)

ADMIN_PASSWORD = "admin-pw"
NODE_A = PREFIX + "node:node-a:"
NODE_B = PREFIX + "node:node-b:"
OUTSIDE = [
    "outside",
    PREFIX + "acl-probe",
    PREFIX + "node:node-b",  # node-b's prefix without its colon
    PREFIX + "node:node-bb:alive",  # a node whose name begins with node-b's
    NODE_A + "new",
]
KEYED_WRITES: list[Callable[[str], tuple[Any, ...]]] = [
    lambda k: ("SET", k, "x"),
    lambda k: ("SET", k, "x", "GET"),
    lambda k: ("APPEND", k, "x"),
    lambda k: ("DEL", k),
    lambda k: ("UNLINK", k),
    lambda k: ("EXPIRE", k, 1),
    lambda k: ("PERSIST", k),
    lambda k: ("RENAME", k, NODE_B + "stolen"),
    lambda k: ("COPY", NODE_B + "alive", k, "REPLACE"),
    lambda k: ("XADD", k, "*", "m", "{}"),
    lambda k: ("XTRIM", k, "MAXLEN", 0),
    lambda k: ("XDEL", k, "0-1"),
    lambda k: ("HSET", k, "job-a", "{}"),
    lambda k: ("HDEL", k, "job-a"),
    lambda k: ("RPUSH", k, "{}"),
    lambda k: ("LPUSH", k, "{}"),
    lambda k: ("LTRIM", k, 0, 0),
    lambda k: ("RESTORE", k, 0, b"x", "REPLACE"),
]
KEYLESS_WRITES: list[tuple[Any, ...]] = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("SWAPDB", 0, 1),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("ACL", "SETUSER", "intruder", "on", ">pw", "~*", "+@all"),
    ("EVAL", "return redis.call('flushall')", 0),
    ("FUNCTION", "FLUSH"),
    ("SCRIPT", "FLUSH"),
    ("PUBLISH", "channel", "x"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("SHUTDOWN", "NOSAVE"),
]


def acl_rules(*role: str) -> list[str]:
    """The rules ``progress-sidecar redis-acl ROLE`` prints, as tokens."""
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "redis-acl", *role],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    [line] = result.stdout.splitlines()
    return line.split()


def user_url(cluster: Cluster, user: str) -> str:
    return f"redis://{user}:{user}-pw@127.0.0.1:{cluster.redis.port}/0"


def user_client(cluster: Cluster, user: str) -> redis.Redis:
    return redis.Redis.from_url(user_url(cluster, user))


@pytest.fixture
async def acl_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """A Redis whose default user has a password, and a user per role: node-a, node-b, gateway
    (each with the password ``<user>-pw``)."""
    server = RedisServer(tmp_path / "redis", password=ADMIN_PASSWORD)
    server.start()
    admin = server.client()
    for user, role in (("node-a", ("node", "node-a")), ("node-b", ("node", "node-b"))):
        admin.execute_command("ACL", "SETUSER", user, "on", f">{user}-pw", *acl_rules(*role))
    admin.execute_command("ACL", "SETUSER", "gateway", "on", ">gateway-pw", *acl_rules("gateway"))
    try:
        async with running_cluster(server, tmp_path) as cluster:
            yield cluster
    finally:
        server.stop()


async def node_a_with_a_history(cluster: Cluster) -> tuple[Sidecar, list[str]]:
    """node-a's sidecar, its job published with its history; every key Redis holds then."""
    root = cluster.root("node-a")
    write_job(root, "job-a", current_step=1)
    (root / "job-a" / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    node_a = await cluster.start("node-a", url=user_url(cluster, "node-a"))
    admin = cluster.redis.client()
    expected = {NODE_A + s for s in ("alive", "changes", "jobs")}
    expected |= {NODE_A + "history:job-a", NODE_A + "history-mark:job-a"}

    def every_key() -> set[str]:
        return {k.decode() for k in admin.scan_iter(match="*", count=1000)}

    await wait_for(lambda: every_key() == expected, what=f"node-a's keys {sorted(expected)}")
    return node_a, sorted(every_key())


async def test_a_nodes_user_may_write_none_of_another_nodes_keys(acl_cluster: Cluster) -> None:
    _, node_a_keys = await node_a_with_a_history(acl_cluster)
    node_b = user_client(acl_cluster, "node-b")
    for key in node_a_keys + OUTSIDE:
        for write in KEYED_WRITES:
            with pytest.raises(NoPermissionError):
                node_b.execute_command(*write(key))
    for command in KEYLESS_WRITES:
        with pytest.raises(NoPermissionError):
            node_b.execute_command(*command)
    # Not a user refused everything: node-b writes its own keys, and reads node-a's.
    node_b.set(NODE_B + "alive", "x", ex=60)
    node_b.xadd(NODE_B + "changes", {"m": b"{}"})
    node_b.hset(NODE_B + "jobs", "job-b", b"{}")
    node_b.rpush(NODE_B + "history:job-b", b"{}")
    assert node_b.expire(NODE_B + "jobs", 60) and node_b.delete(NODE_B + "jobs") == 1
    assert node_b.lrange(NODE_A + "history:job-a", 0, -1) == [b'{"step":1}', b'{"step":2}']
    assert node_b.hlen(NODE_A + "jobs") == 1
    # A transaction that writes one foreign key writes nothing at all.
    pipe = node_b.pipeline(transaction=True)
    pipe.set(NODE_B + "mark", "x")
    pipe.hset(NODE_A + "jobs", "job-a", b"{}")
    with pytest.raises(RedisError):
        pipe.execute()
    assert acl_cluster.redis.client().exists(NODE_B + "mark") == 0


async def test_the_gateways_user_may_write_nothing_and_read_every_nodes_keys(
    acl_cluster: Cluster,
) -> None:
    _, node_a_keys = await node_a_with_a_history(acl_cluster)
    gateway = user_client(acl_cluster, "gateway")
    for key in node_a_keys + OUTSIDE + [PREFIX + "node:gateway0:alive"]:
        for write in KEYED_WRITES:
            with pytest.raises(NoPermissionError):
                gateway.execute_command(*write(key))
    for command in KEYLESS_WRITES:
        with pytest.raises(NoPermissionError):
            gateway.execute_command(*command)
    assert gateway.lrange(NODE_A + "history:job-a", 0, -1) == [b'{"step":1}', b'{"step":2}']
    assert gateway.get(NODE_A + "history-mark:job-a") is not None
    assert gateway.hlen(NODE_A + "jobs") == 1
    assert gateway.hrandfield(NODE_A + "jobs", 10, withvalues=True)[0] == b"job-a"
    assert gateway.xrevrange(NODE_A + "changes", count=1)
    assert gateway.xread({NODE_A + "changes": "0-0"}, count=1)
    assert NODE_A.encode() + b"alive" in gateway.scan(0, match=PREFIX + "*", count=1000)[1]
    with pytest.raises(NoPermissionError):
        gateway.get("outside")  # it reads the sidecars' keys only


def forged_state(job_id: str, step: int, *, seq: int = 1) -> bytes:
    """A state message of this protocol, and a ``node`` field that claims node-a wrote it."""
    message = {
        "kind": "state", "node": "node-a", "job_id": job_id, "epoch": "zzzz-forged", "seq": seq,
        "document": {"status": "running", "current_step": step}, "modified_at": 1.7e9,
        "has_file": True,
    }  # fmt: skip
    return json.dumps(message).encode()


def announce_node_b(node_b: redis.Redis) -> None:
    """node-b, in its own keys only: its jobs hash, with node-a's job id and a job that claims
    to be node-a's, and its announcement; then a reader follows its stream."""
    node_b.hset(NODE_B + "jobs", "job-a", forged_state("job-a", 999, seq=2**62))
    node_b.hset(NODE_B + "jobs", "forged-1", forged_state("forged-1", 999))
    node_b.hset(NODE_B + "jobs", "b-start", forged_state("b-start", 1))
    node_b.xadd(NODE_B + "changes", {"m": b'{"kind": "heartbeat", "epoch": "zzzz-forged"}'})
    node_b.set(NODE_B + "alive", "zzzz-forged", ex=60)


def forge_in_stream(node_b: redis.Redis) -> None:
    """node-b, in its own stream: every kind of message with node-a's job id or node-a's name;
    last, a job of its own that says when a reader has read all the rest."""
    history = {
        "kind": "history", "node": "node-a", "job_id": "job-a", "epoch": "zzzz-forged",
        "generation": 9, "total": 1, "reset": True, "entries": [{"step": 666}],
    }  # fmt: skip
    for message in (
        forged_state("job-a", 999, seq=2**62),
        forged_state("forged-2", 999),
        json.dumps({"kind": "gone", "node": "node-a", "job_id": "job-a"}).encode(),
        json.dumps(history).encode(),
        json.dumps({**history, "reset": False, "total": 2}).encode(),
        forged_state("b-marker", 1),
    ):
        node_b.xadd(NODE_B + "changes", {"m": message})


async def shown_as_node_a(cluster: Cluster, sidecar: Sidecar) -> dict[str, Any]:
    """The jobs ``sidecar`` shows as node-a's, and their current step."""
    jobs = await cluster.jobs(sidecar)
    return {j: job.get("current_step") for j, job in jobs.items() if job["node"] == "node-a"}


async def test_entries_a_node_writes_in_its_own_keys_are_never_shown_as_another_nodes(
    acl_cluster: Cluster,
) -> None:
    cluster = acl_cluster
    node_a, _ = await node_a_with_a_history(cluster)
    gateway = await cluster.start(None, url=user_url(cluster, "gateway"))
    await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
    client = await cluster.follow(gateway, "job-a", "history=1")
    await wait_for(lambda: history_is(client, [1, 2]), what="job-a's history")

    node_b = user_client(cluster, "node-b")
    announce_node_b(node_b)
    for sidecar in (gateway, node_a):
        await wait_for(lambda s=sidecar: has_jobs(cluster, s, {"b-start": "node-b"}), what="b")
        assert await shown_as_node_a(cluster, sidecar) == {"job-a": 1}
    forge_in_stream(node_b)
    for sidecar in (gateway, node_a):
        await wait_for(lambda s=sidecar: has_jobs(cluster, s, {"b-marker": "node-b"}), what="all")
        assert await shown_as_node_a(cluster, sidecar) == {"job-a": 1}
    history = await cluster.get(gateway, "/api/jobs/job-a/history")
    assert [e["step"] for e in history["entries"]] == [1, 2]

    # node-a's own changes still arrive, state and history, past node-b's forged marks.
    root = cluster.root("node-a")
    with (root / "job-a" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3}\n')
    write_job(root, "job-a", current_step=2)
    await wait_for(lambda: job_field(cluster, gateway, "job-a", "current_step", 2), what="step 2")
    await wait_for(lambda: history_is(client, [1, 2, 3]), what="node-a's next history line")

    # A sidecar that starts now reads node-b's keys and node-a's at once.
    late = await cluster.start(None, url=user_url(cluster, "gateway"))
    await wait_for(lambda: has_jobs(cluster, late, {"b-start": "node-b"}), what="late: node-b")
    assert await shown_as_node_a(cluster, late) in ({"job-a": 2}, {})


async def history_is(client: StreamClient, steps: list[int]) -> bool:
    """Whether the client's history is ``steps`` (reading what arrives meanwhile)."""
    while client.history is None or [e["step"] for e in client.history] != steps:
        try:
            await client.next(timeout=0.2)
        except TimeoutError:
            return False
    return True


async def test_a_cluster_of_acl_users_serves_every_job_and_logs_no_refusal(
    acl_cluster: Cluster,
) -> None:
    cluster = acl_cluster
    write_job(cluster.root("node-b"), "job-b", current_step=5)
    (cluster.root("node-b") / "job-b" / "metrics.jsonl").write_text('{"step": 5}\n')
    node_a, _ = await node_a_with_a_history(cluster)
    node_b = await cluster.start("node-b", url=user_url(cluster, "node-b"))
    gateway = await cluster.start(None, url=user_url(cluster, "gateway"))
    every_job = {"job-a": "node-a", "job-b": "node-b"}
    for sidecar in (node_a, node_b, gateway):
        await wait_for(lambda s=sidecar: has_jobs(cluster, s, every_job), what=sidecar.name)
        health = await cluster.get(sidecar, "/healthz")
        assert health["bus"] == "up", health
    for job, steps in (("job-a", [1, 2]), ("job-b", [5])):
        history = await cluster.get(gateway, f"/api/jobs/{job}/history")
        assert [e["step"] for e in history["entries"]] == steps
    write_job(cluster.root("node-b"), "job-b", current_step=6)
    await wait_for(lambda: job_field(cluster, gateway, "job-b", "current_step", 6), what="6")
    await wait_for(lambda: job_field(cluster, node_a, "job-b", "current_step", 6), what="6 on a")

    for sidecar in (node_a, node_b, gateway):
        log = await cluster.stop(sidecar)
        for refusal in (
            "Traceback",
            "may do more than a",
            "Redis answers without a password",
            "NOPERM",
            "no permissions",
            "bus down",
        ):
            assert refusal not in log, (sidecar.name, refusal, log[-3000:])
