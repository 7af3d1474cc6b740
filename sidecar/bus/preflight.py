"""What a sidecar checks of Redis once, at start: that it takes this sidecar's credentials and
lets it run every command its role sends (or it is a configuration error), and whether it lets
anyone, or this sidecar, do more than that (a warning).

Every command is tried inside a transaction that is doomed before the first of them (an
unknown command comes first), so that nothing runs: Redis checks a command's ACL when it queues
it (``QUEUED``, or ``NOPERM``), and ``EXEC`` then discards the lot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from sidecar.bus import acl, keys
from sidecar.bus.interface import BusConfigError
from sidecar.bus.link import CONNECT_TIMEOUT, FAILURES, connect

logger = logging.getLogger(__name__)

DOOM = "progress-sidecar-no-such-command"
"""Queued first: an unknown command, so that ``EXEC`` runs none of what follows."""


def _arguments(command: str, key: str) -> tuple[Any, ...]:
    """Arguments ``command`` may be queued with, on ``key`` (where it changes nothing)."""
    return {
        "ping": (), "info": ("server",), "time": (), "select": (0,),
        "scan": (0, "MATCH", key, "COUNT", 1), "xread": ("COUNT", 1, "STREAMS", key, "0-0"),
        "xrange": (key, "-", "+", "COUNT", 1), "xrevrange": (key, "+", "-", "COUNT", 1),
        "lrange": (key, 0, 0), "hrandfield": (key, 1), "xadd": (key, "MAXLEN", "~", 1, "*", "m", "x"),
        "set": (key, "x"), "hset": (key, "f", "x"), "hdel": (key, "f"), "expire": (key, 1),
        "rpush": (key, "x"), "ltrim": (key, 0, 0),
    }.get(command, (key,))  # fmt: skip


def role_commands(node: str | None) -> dict[str, tuple[Any, ...]]:
    """Every command the role sends (``acl.READS``, and ``acl.WRITES`` for a node; not the
    transaction's own), each with arguments it may be queued with: on a key of nobody's, or of
    this node's own."""
    probe = keys.PREFIX + "acl-probe"
    commands = {c: _arguments(c, probe) for c in acl.READS if c not in ("multi", "exec")}
    if node is not None:
        own = keys.node_prefix(node) + "acl-probe"
        commands |= {c: _arguments(c, own) for c in acl.WRITES}
    return commands


def beyond_role(node: str | None, announced: list[str]) -> dict[str, tuple[str, ...]]:
    """What the role must not be able to do, by what a warning says of it; ``announced``: the
    nodes announced now (a gateway given one's rules could write its keys)."""
    other = "acl-probe" if node != "acl-probe" else "acl-probe-2"
    others = {f"write node {n}'s keys": ("HDEL", keys.jobs_key(n), "f") for n in announced}
    return others | {
        "write keys that are not its own": ("HDEL", keys.jobs_key(other), "f"),
        "write keys outside the bus's": ("HDEL", "acl-probe", "f"),
        "flush every key (FLUSHALL)": ("FLUSHALL",),
        "change Redis' configuration (CONFIG SET)": ("CONFIG", "SET", "maxmemory", "0"),
        "change users, its own too (ACL SETUSER)": ("ACL", "SETUSER", "acl-probe"),
    }


async def check(url: str, node: str | None) -> None:
    """Try Redis once as ``node``'s sidecar (None: a gateway). Unreachable is no error (the bus
    retries and says so).

    Raises:
        BusConfigError: Redis answered and refused (credentials, database, a command the role
            needs).
    """
    client = connect(url)
    try:
        await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT + 1)
        denied, elsewhere, allowed = await _try_doomed(client, node)
        open_to_all = await _answers_without_password(url)
    except NoPermissionError as e:
        raise BusConfigError(
            f"--redis: Redis refused the connection: {e}; give this user the rules "
            f"`{_rules(node)}` prints (docs/cluster.md#acl-users)"
        ) from None
    except (AuthenticationError, ResponseError) as e:
        parts = urllib.parse.urlsplit(url)
        if not parts.password and ("auth" in str(e).lower() or parts.username):
            raise BusConfigError(
                "--redis: Redis wants a password and the URL has none "
                "(redis://USER:PASSWORD@HOST:PORT/DB, or redis://:PASSWORD@... for requirepass; "
                "SIDECAR_REDIS_URL keeps it out of ps)"
            ) from None
        who = f" user {parts.username}" if parts.username else " the connection"
        raise BusConfigError(f"--redis: Redis refused{who}: {e}") from None
    except (*FAILURES, TimeoutError):
        return
    finally:
        with contextlib.suppress(*FAILURES):
            await client.aclose()
    rules = _rules(node)
    if denied:
        # Refused only the keys (allowed the commands): a user made for another node.
        mine = f" on node {node}'s keys (is --node the name its user was made for?)"
        raise BusConfigError(
            f"--redis: this Redis user may not run {', '.join(denied)}"
            f"{mine if node and elsewhere else ''}: give it the rules "
            f"`{rules}` prints (docs/cluster.md#acl-users)"
        )
    if open_to_all:
        logger.warning(
            "Redis answers without a password: anyone who reaches it can show any job to every "
            "frontend, or hide it; set ACL users (docs/cluster.md#acl-users) or requirepass"
        )
    if allowed:
        logger.warning(
            "this sidecar's Redis user may do more than a %s needs: %s; it could forge or hide "
            "other nodes' jobs: `%s` prints the rules it needs (docs/cluster.md#acl-users)",
            "node" if node else "gateway",
            "; ".join(allowed),
            rules,
        )


def _rules(node: str | None) -> str:
    return f"progress-sidecar redis-acl {f'node {node}' if node else 'gateway'}"


async def _try_doomed(
    client: aioredis.Redis, node: str | None
) -> tuple[list[str], bool, list[str]]:
    """The role's commands Redis refuses this user; whether every one refused was refused only
    for its key (the user may write keys, not this node's); what it may do beyond its role."""
    needed = role_commands(node)
    announced: list[str] = []
    if node is None:
        with contextlib.suppress(NoPermissionError):  # then the transaction below says so
            async for key in client.scan_iter(match=keys.pattern(keys.ALIVE), count=1000):
                if (name := keys.node_of(key, keys.ALIVE)) is not None and len(announced) < 100:
                    announced.append(name)
    beyond = beyond_role(node, announced)
    probe = keys.node_prefix("acl-probe") + "jobs"
    writes = [] if node else [(c, _arguments(c, probe)) for c in acl.WRITES if c != "hkeys"]
    commands: list[tuple[Any, ...]] = [(DOOM,)]
    commands += [(name.upper(), *args) for name, args in needed.items()]
    commands += list(beyond.values())
    commands += [(name.upper(), *args) for name, args in writes]
    commands.append(("EXEC",))
    connection = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_command("MULTI")
        if _refused(await _reply(connection)):
            return ["multi"], False, []  # and nothing else is sent: it would run
        for command in commands:
            await connection.send_command(*command)
        replies = [await _reply(connection) for _ in commands]
    finally:
        # Never handed back in a transaction (an EXEC refused leaves it open).
        await connection.disconnect()
        await client.connection_pool.release(connection)
    queued = dict(zip(commands, replies, strict=True))
    denied = [n for n, a in needed.items() if _refused(queued[(n.upper(), *a)])]
    elsewhere = bool(denied) and not any(
        _command_refused(queued[(n.upper(), *needed[n])]) for n in denied
    )
    if _refused(replies[-1]):
        denied.append("exec")
        elsewhere = False
    allowed = [what for what, command in beyond.items() if not _refused(queued[command])]
    written = [n for n, a in writes if not _command_refused(queued[(n.upper(), *a)])]
    if written:
        allowed.append(f"run {', '.join(written)} (a gateway writes nothing)")
    return denied, elsewhere, allowed


async def _reply(connection: Any) -> object:
    try:
        reply: object = await connection.read_response()
    except ResponseError as e:
        return e
    return reply


def _refused(reply: object) -> bool:
    """Whether Redis refused the command to this user (an ``EXEC`` refused says so inside an
    ``EXECABORT``)."""
    return isinstance(reply, NoPermissionError) or (
        isinstance(reply, ResponseError) and "NOPERM" in str(reply)
    )


def _command_refused(reply: object) -> bool:
    """Whether Redis refused the command itself, not only the key it was given."""
    return _refused(reply) and "access one of the keys" not in str(reply)


async def _answers_without_password(url: str) -> bool:
    """Whether Redis answers a client that gives no credentials at all."""
    parts = urllib.parse.urlsplit(url)
    query = [
        (k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k not in ("password", "username")
    ]
    netloc = parts.netloc.rpartition("@")[2]
    bare = urllib.parse.urlunsplit(
        parts._replace(netloc=netloc, query=urllib.parse.urlencode(query))
    )
    client = connect(bare)
    try:
        await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT + 1)
    except (*FAILURES, TimeoutError):
        return False
    finally:
        with contextlib.suppress(*FAILURES):
            await client.aclose()
    return True
