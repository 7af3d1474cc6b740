"""What the file source counts, in plain integers; the server's metrics turn them into Prometheus
metrics when scraped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WatchStats:
    """What the watcher did with the filesystem."""

    file_reads: int = 0  # attempts: a missing file counts
    read_errors: Counter[str] = field(default_factory=Counter)
    rereads: int = 0  # bad reads read again a few ms later (a writer caught half-way)
    scans: int = 0
    scan_stats: int = 0
