"""A sidecar's checks of Redis at start, on a real redis-server: a user that may not run what its
role needs is a configuration error (exit status 2, one line); a Redis that answers anyone, or a
user that may write more than its role, is warned of."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.support.listening import NotListening, await_listening
from tests.helpers import stop_sidecar
from tests.redis_server import RedisServer
from tests.sidecar.bus.test_cluster_acl import acl_rules

pytestmark = pytest.mark.timeout(90)

OPEN_TO_ALL = "Redis answers without a password"
TOO_WIDE = "may do more than a"
NODE_RULES = acl_rules("node", "node-a")
GATEWAY_RULES = acl_rules("gateway")
UNSENT = {"+select", "+xinfo|stream"}
"""Rules no sidecar of a database 0 sends a command of (``SELECT`` is for another database)."""


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose default user has a password."""
    server = RedisServer(tmp_path / "redis", password="admin-pw")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def add_user(redis: RedisServer, user: str, rules: list[str]) -> str:
    """A user of ``rules`` and the password ``<user>-pw``; returns its URL."""
    redis.client().execute_command("ACL", "SETUSER", user, "on", f">{user}-pw", *rules)
    return f"redis://{user}:{user}-pw@127.0.0.1:{redis.port}/0"


async def start(tmp_path: Path, url: str, *, node: bool) -> tuple[int | None, str]:
    """A node-a sidecar (or a gateway) on ``url``: its exit status (None: it came to listen,
    and was stopped then) and all it wrote."""
    (tmp_path / "root").mkdir(exist_ok=True)
    where = ["--root", str(tmp_path / "root"), "--node", "node-a"] if node else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", *where, "--port", "0", "--redis", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await await_listening(process, timeout=20, what="the sidecar")
    except NotListening as e:
        return await process.wait(), e.output
    return None, await stop_sidecar(process)


def cases(role: str, rules: list[str]) -> list[tuple[str, str]]:
    return [(role, token) for token in rules if token.startswith("+") and token not in UNSENT]


@pytest.mark.parametrize(
    ("role", "dropped"), cases("node", NODE_RULES) + cases("gateway", GATEWAY_RULES)
)
async def test_a_user_that_may_not_run_a_command_its_role_needs_is_refused_at_start(
    tmp_path: Path, locked_redis: RedisServer, role: str, dropped: str
) -> None:
    """Exit status 2 and one line that names the command and the rules the role needs, instead
    of a sidecar that finds out later (its bus down) or never (a part that never works)."""
    rules = NODE_RULES if role == "node" else GATEWAY_RULES
    url = add_user(locked_redis, "user", [t for t in rules if t != dropped])
    status, output = await start(tmp_path, url, node=role == "node")
    assert status == 2, f"a sidecar whose user lacks {dropped}: {status}\n{output[-2000:]}"
    [line] = output.strip().splitlines()
    command = dropped.removeprefix("+")
    assert command in line, line
    assert f"progress-sidecar redis-acl {'node node-a' if role == 'node' else 'gateway'}" in line
    assert "Traceback" not in output and "user-pw" not in output


@pytest.mark.parametrize("role", ["node", "gateway"])
async def test_a_redis_that_answers_without_a_password_is_warned_of(
    tmp_path: Path, redis_server: RedisServer, role: str
) -> None:
    """Anyone who reaches it may show or hide any job: the sidecar says so, even when its own
    user is confined, and serves all the same."""
    rules = NODE_RULES if role == "node" else GATEWAY_RULES
    for url in (redis_server.url, add_user(redis_server, "confined", rules)):
        status, log = await start(tmp_path, url, node=role == "node")
        assert status is None, log
        assert log.count(OPEN_TO_ALL) == 1, log
        assert "Traceback" not in log


@pytest.mark.parametrize(
    ("role", "rules"),
    [
        ("node", ["~*", "+@all"]),
        ("gateway", ["~*", "+@all"]),
        ("node", [t if t.startswith("+") else "~*" for t in NODE_RULES[3:]]),
        ("gateway", NODE_RULES[3:]),  # a node's rules: it may write node-a's keys
        ("node", ["+@all", *[t for t in NODE_RULES if "~" in t]]),  # may ACL SETUSER itself
    ],
    ids=["node-all", "gateway-all", "node-every-key", "gateway-node-rules", "node-all-commands"],
)
async def test_a_user_that_may_write_more_than_its_role_is_warned_of(
    tmp_path: Path, locked_redis: RedisServer, role: str, rules: list[str]
) -> None:
    url = add_user(locked_redis, "wide", ["resetkeys", "resetchannels", "-@all", *rules])
    status, log = await start(tmp_path, url, node=role == "node")
    assert status is None, log
    assert log.count(TOO_WIDE) == 1, log
    assert OPEN_TO_ALL not in log and "Traceback" not in log


@pytest.mark.parametrize("role", ["node", "gateway"])
async def test_a_user_of_exactly_its_roles_rules_starts_without_a_warning(
    tmp_path: Path, locked_redis: RedisServer, role: str
) -> None:
    rules = NODE_RULES if role == "node" else GATEWAY_RULES
    url = add_user(locked_redis, role, rules)
    status, log = await start(tmp_path, url, node=role == "node")
    assert status is None, log
    for unwanted in (OPEN_TO_ALL, TOO_WIDE, "NOPERM", "no permissions", "Traceback", "WARNING"):
        assert unwanted not in log, (unwanted, log)


@pytest.mark.parametrize(
    ("user_rules", "hint"),
    [(acl_rules("node", "node-b"), True), (GATEWAY_RULES, False)],
    ids=["another-nodes-user", "the-gateways-user"],
)
async def test_a_node_on_a_user_made_for_another_role_is_told_which(
    tmp_path: Path, locked_redis: RedisServer, user_rules: list[str], hint: bool
) -> None:
    """node-a on node-b's user may run every command, on node-b's keys only: the line asks
    whether --node is right; on the gateway's user it may not run the writes at all: no such
    question, which would send its owner the wrong way."""
    url = add_user(locked_redis, "other", user_rules)
    status, output = await start(tmp_path, url, node=True)
    assert status == 2, output
    [line] = output.strip().splitlines()
    assert "may not run xadd" in line, line
    assert ("is --node the name its user was made for?" in line) == hint, line


async def test_credentials_refused_name_the_user_and_a_missing_password_says_so(
    tmp_path: Path, locked_redis: RedisServer
) -> None:
    add_user(locked_redis, "node-a", NODE_RULES)
    base = f"127.0.0.1:{locked_redis.port}/0"
    status, output = await start(tmp_path, f"redis://node-a:wrong@{base}", node=True)
    assert status == 2 and "Redis refused user node-a: " in output, output
    assert "wrong" not in output.replace("Redis refused user", "")  # the password is not shown
    status, output = await start(tmp_path, f"redis://node-a@{base}", node=True)
    assert status == 2 and "Redis wants a password and the URL has none" in output, output
