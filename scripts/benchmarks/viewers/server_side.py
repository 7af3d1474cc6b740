"""The server's own share of a delivery's latency: its ``sidecar_event_to_send_seconds``
histogram (a version's making to each client's send), diffed over a window. What the clients
measure beyond it is the kernel's and their own."""

from __future__ import annotations

from typing import Any

from benchmarks.dashboards.server import metrics_text

HISTOGRAM = "sidecar_event_to_send_seconds"


async def event_to_send(url: str) -> dict[str, float] | None:
    """The histogram's cumulative buckets (by upper bound, in seconds) and ``count``; None when
    ``/metrics`` has none."""
    text = await metrics_text(url)
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{HISTOGRAM}_bucket"):
            found[line.split('le="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{HISTOGRAM}_count"):
            found["count"] = float(line.rsplit(" ", 1)[1])
    return found or None


def share_under(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, Any] | None:
    """Of the sends between the two readings, the share under each bound (ms: share)."""
    if before is None or after is None:
        return None
    sends = after.get("count", 0) - before.get("count", 0)
    if sends <= 0:
        return None
    under = {
        f"under_{float(le) * 1000:g}_ms": (after[le] - before.get(le, 0)) / sends
        for le in after
        if le not in ("count", "+Inf")
    }
    return {"sends": sends, **under}
