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


def isoformat_utc(epoch_seconds: float) -> str:
    """A timestamp as both sides write it: ``2025-11-06T12:30:00.123Z``."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
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
