"""The sidecar's settings: one frozen record, filled by the CLI or by tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sidecar.core.history_log import DEFAULT_MAX_ENTRIES
from sidecar.files.notify import DEFAULT_HOT_STEP_MS
from sidecar.files.reader import DEFAULT_MAX_BYTES


@dataclass(frozen=True, slots=True)
class Settings:
    """How one sidecar runs; see ``progress-sidecar --help`` for each field."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 8765
    pattern: str = "{job_id}/progress.json"
    max_clients_per_job: int = 10
    max_clients_per_address: int = 5
    max_clients: int = 1000
    stall_after: float = 60.0
    poll: bool = False
    poll_interval: float = 0.25
    rescan_interval: float = 5.0
    max_file_bytes: int = DEFAULT_MAX_BYTES
    send_timeout: float = 10.0
    heartbeat: float = 20.0
    watch_step_ms: int = DEFAULT_HOT_STEP_MS
    max_history: int = DEFAULT_MAX_ENTRIES
    token: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
