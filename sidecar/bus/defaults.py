"""The bus's defaults, importable without Redis' client (an extra)."""

from __future__ import annotations

from typing import Final

NODE_TIMEOUT: Final = 10.0
"""Seconds of silence after which a node is lost (the default of ``--node-timeout``)."""
HEARTBEAT_INTERVAL: Final = 0.5
"""Seconds between two announcements of a node (at least one a second)."""
STREAM_LENGTH: Final = 50_000
"""About this many changes are kept in the stream (Redis trims it); a reader that falls
further behind reads every job's state again."""
FINISHED_TTL: Final = 24 * 3600
"""Seconds a finished job's state and history stay in Redis after its last change."""
RUNNING_TTL: Final = 7 * 24 * 3600
"""Seconds a job not finished stays in Redis after its last change."""
