"""Where a node's data lies in Redis: pure, no I/O.

Everything a node writes lies under its own prefix, ``{progress-sidecar}:node:<NAME>:``, so
that one Redis ACL key pattern confines it (``sidecar.bus.acl``):

- ``alive``: its announcement (its epoch), expiring after its node timeout;
- ``changes``: the stream of its changes (states, jobs gone, history lines, heartbeats);
- ``jobs``: a hash, job id to the job's latest state, as in the stream;
- ``history:<job_id>``: a job's metrics history, a list; ``history-mark:<job_id>`` how far it
  goes.

Who wrote an entry is where it lies: a reader takes the node's name from the key, never from
the entry. Node names (``core.argtypes.is_node_name``) hold no ``:`` and no glob character, so
one node's prefix never matches another's keys. All keys share one hash tag, so that they would
all live on one shard.
"""

from __future__ import annotations

from typing import Final

from sidecar.core.argtypes import is_node_name

PREFIX: Final = "{progress-sidecar}:"
NODES: Final = PREFIX + "node:"
ALIVE: Final = "alive"
CHANGES: Final = "changes"
JOBS: Final = "jobs"
FIELD: Final = b"m"
"""The one field of a stream entry: the message, JSON."""


def node_prefix(node: str) -> str:
    return f"{NODES}{node}:"


def alive_key(node: str) -> str:
    return node_prefix(node) + ALIVE


def changes_key(node: str) -> str:
    return node_prefix(node) + CHANGES


def jobs_key(node: str) -> str:
    return node_prefix(node) + JOBS


def history_key(node: str, job_id: str) -> str:
    return f"{node_prefix(node)}history:{job_id}"


def history_mark_key(node: str, job_id: str) -> str:
    return f"{node_prefix(node)}history-mark:{job_id}"


def pattern(suffix: str) -> str:
    """The keys of that kind of every node (``alive``, ``changes``), for ``SCAN MATCH``."""
    return f"{NODES}*:{suffix}"


def node_of(key: bytes | str, suffix: str) -> str | None:
    """The node a key of that kind lies under; None when it is no node's (any program may write
    keys that match the pattern)."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    if not text.startswith(NODES) or not text.endswith(":" + suffix):
        return None
    node = text[len(NODES) : -len(suffix) - 1]
    return node if is_node_name(node) else None
