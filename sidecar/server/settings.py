"""The sidecar's settings: one frozen record, filled by the CLI or by tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.bus.defaults import (
    MAX_BYTES_PER_NODE,
    MAX_JOBS_PER_NODE,
    MAX_NODES,
    NODE_TIMEOUT,
)
from sidecar.core.client_limits import MAX_CLIENTS, MAX_CLIENTS_PER_ADDRESS, MAX_CLIENTS_PER_JOB
from sidecar.core.history_budget import HISTORY_BYTES, HISTORY_GRACE
from sidecar.core.history_log import DEFAULT_MAX_ENTRIES
from sidecar.core.hub import STALL_AFTER
from sidecar.core.kept_versions import RESUME_BYTES, RESUME_BYTES_PER_JOB
from sidecar.files.notify import DEFAULT_HOT_STEP_MS, DEFAULT_WARM_SECONDS
from sidecar.files.reader import DEFAULT_MAX_BYTES
from sidecar.files.watcher import POLL_INTERVAL, RESCAN_INTERVAL


@dataclass(frozen=True, slots=True)
class Settings:
    """How one sidecar runs; see ``progress-sidecar --help`` for each field. Each default is
    the one of the part that uses it (the hub's limits, the watcher's intervals...), named there
    once."""

    root: Path | None
    """The jobs root; None for a gateway (cluster mode: it serves the jobs of the bus only)."""
    host: str = "127.0.0.1"
    port: int = 8765
    pattern: str = "{job_id}/progress.json"
    max_clients_per_job: int = MAX_CLIENTS_PER_JOB
    max_clients_per_address: int = MAX_CLIENTS_PER_ADDRESS
    max_clients: int = MAX_CLIENTS
    stall_after: float = STALL_AFTER
    poll: bool = False
    poll_interval: float = POLL_INTERVAL
    rescan_interval: float = RESCAN_INTERVAL
    max_file_bytes: int = DEFAULT_MAX_BYTES
    send_timeout: float = 10.0
    heartbeat: float = 20.0
    watch_step_ms: int = DEFAULT_HOT_STEP_MS
    watch_warm_seconds: float = DEFAULT_WARM_SECONDS
    max_history: int = DEFAULT_MAX_ENTRIES
    history_bytes: int = HISTORY_BYTES
    history_grace: float = HISTORY_GRACE
    resume_bytes_per_job: int = RESUME_BYTES_PER_JOB
    resume_bytes: int = RESUME_BYTES
    token: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    redis_url: str | None = field(default=None, repr=False)
    """Cluster mode: the bus (it may hold a password: never logged)."""
    node: str = field(default_factory=socket.gethostname)
    node_timeout: float = NODE_TIMEOUT
    max_nodes: int = MAX_NODES
    max_jobs_per_node: int = MAX_JOBS_PER_NODE
    max_bytes_per_node: int = MAX_BYTES_PER_NODE
