"""What the trainer and the sidecar agree on: where a job's files lie and what they hold.

The one place for these facts, imported by both sides; it imports nothing but the standard
library, so that a trainer that uses it loads neither aiohttp nor watchfiles.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Final

PROGRESS_FILE: Final = "progress.json"
"""A job's state, rewritten whole (atomically) by its trainer."""
HISTORY_FILE: Final = "metrics.jsonl"
"""A job's metrics history beside its progress file: one JSON object per line, appended."""

MAX_FILE_BYTES: Final = 1 << 20
"""The default of ``--max-file-bytes``: the largest progress file read (and bus document taken)."""
MAX_HISTORY_LINE: Final = 32 << 10
"""The longest metrics line taken, in bytes (one reader's slice of metrics.jsonl; a bus entry's
history item): metrics lines are 100 to 200 bytes, a log event with every metric of a trainer a
few KiB. A longer one is dropped."""

JOB_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
"""A job id: only such ids ever reach the filesystem or a URL."""
_JOB_ID = re.compile(JOB_ID_PATTERN)

TERMINAL_STATUSES: Final = frozenset(
    {"completed", "failed", "cancelled", "canceled", "stopped", "error"}
)
"""A job whose ``status`` is one of these (in any letter case) is over."""


def is_valid_job_id(job_id: str) -> bool:
    return _JOB_ID.fullmatch(job_id) is not None


def is_terminal(status: Any) -> bool:
    return isinstance(status, str) and status.lower() in TERMINAL_STATUSES


EARLIEST_TIME: Final = 0.0
LATEST_TIME: Final = 253_402_300_799.0
"""The times a timestamp can show: 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z."""


def clamp_time(epoch_seconds: float) -> float:
    """A POSIX time from outside (a file's mtime, a bus entry) brought within the times a
    timestamp can show; NaN becomes the earliest."""
    if not epoch_seconds >= EARLIEST_TIME:  # NaN too
        return EARLIEST_TIME
    return min(epoch_seconds, LATEST_TIME)


def isoformat_utc(epoch_seconds: float) -> str:
    """A timestamp as both sides write it: ``2025-11-06T12:30:00.123Z`` (a time it cannot
    show is clamped to 1970 or 9999)."""
    moment = datetime.fromtimestamp(clamp_time(epoch_seconds), UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def strict_json(value: Any) -> Any:
    """``value`` with NaN and +-Infinity replaced by None, at any depth: JSON has neither, and
    browsers' ``JSON.parse`` refuses them. (The sidecar reads them as null too.)"""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value
