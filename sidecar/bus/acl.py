"""The Redis ACL rules of each role: pure, no I/O (``progress-sidecar redis-acl`` prints them).

A **gateway** reads every node's keys and writes none. A **node** reads every node's keys and
writes only under its own prefix (``sidecar.bus.keys``): Redis refuses it (``NOPERM``) any
write elsewhere, so a node's machine, where many people's training code runs, can forge no other
node's jobs. Both may run only the commands the bus sends (and nothing that reconfigures,
flushes or reads other users); neither may use pub/sub channels.
"""

from __future__ import annotations

from typing import Final

from sidecar.bus import keys

NODE: Final = "node"
GATEWAY: Final = "gateway"
ROLES: Final = (NODE, GATEWAY)

READS: Final = (
    "ping", "info", "time", "select", "multi", "exec", "scan", "type",
    "xread", "xrange", "xrevrange", "get", "lrange", "hlen", "hrandfield",
)  # fmt: skip
"""What every sidecar sends to read (``select`` for a database other than 0)."""
WRITES: Final = ("xadd", "set", "hset", "hdel", "hkeys", "del", "expire", "rpush", "ltrim")
"""What a node's publisher sends besides (``hkeys``, a read, only on its own jobs)."""


def rules(role: str, node: str | None = None) -> str:
    """The ACL rules of ``role`` on one line: the tokens that follow ``ACL SETUSER <user> on
    >PASSWORD``.

    Raises:
        ValueError: no such role, or a node role without a node (or a gateway with one).
    """
    if role not in ROLES:
        raise ValueError(f"no role {role!r} (one of: {', '.join(ROLES)})")
    if (role == NODE) != (node is not None):
        raise ValueError("a node's rules need its name; a gateway's take none")
    tokens = ["resetkeys", "resetchannels", "clearselectors", "-@all"]
    tokens += [f"+{command}" for command in READS]
    tokens.append(f"%R~{keys.PREFIX}*")
    if node is not None:
        tokens += [f"+{command}" for command in WRITES]
        tokens.append(f"%RW~{keys.node_prefix(node)}*")
    return " ".join(tokens)
