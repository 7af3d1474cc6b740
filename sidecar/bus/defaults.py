"""The bus's defaults, importable without Redis' client (an extra)."""

from __future__ import annotations

from typing import Final

NODE_TIMEOUT: Final = 10.0
"""Seconds of silence after which a node is lost (the default of ``--node-timeout``)."""
HEARTBEAT_INTERVAL: Final = 0.5
"""Seconds between two announcements of a node (at least one a second)."""
STREAM_LENGTH: Final = 10_000
"""About this many changes are kept in each node's stream (Redis trims it): a minute of a node
with 100 jobs each written twice a second; a reader that falls further behind reads that node's
jobs again."""
FINISHED_TTL: Final = 24 * 3600
"""Seconds a finished job's history stays in Redis after its last change."""
RUNNING_TTL: Final = 7 * 24 * 3600
"""Seconds a job not finished stays in Redis after its last change."""
MAX_NODES: Final = 256
"""The default of ``--max-nodes``: other nodes a sidecar knows at once."""
MAX_JOBS_PER_NODE: Final = 10_000
"""The default of ``--max-jobs-per-node``: the jobs of one other node a sidecar takes."""
MAX_BYTES_PER_NODE: Final = 16 << 20
"""The default of ``--max-bytes-per-node``: what the states of one other node's jobs may take,
encoded (some 600 bytes a job for the reference trainer: 10,000 jobs take 6 MiB)."""
