from __future__ import annotations

from sidecar.hub import JobHub
from sidecar.stall import sweep, tick_interval
from sidecar.state import with_document

T0 = 1_762_432_200.0


def test_tick_interval_is_a_quarter_of_the_timeout_within_bounds() -> None:
    assert tick_interval(60) == 1.0
    assert tick_interval(2) == 0.5
    assert tick_interval(0.01) == 0.05


def test_sweep_flips_stalled_both_ways() -> None:
    hub = JobHub()
    hub.put(with_document("a", {"status": "running"}, modified_at=T0, now=T0, stall_after=10))
    hub.put(with_document("b", {"status": "completed"}, modified_at=T0, now=T0, stall_after=10))
    assert sweep(hub, now=T0 + 5, stall_after=10) == 0
    assert sweep(hub, now=T0 + 10, stall_after=10) == 1
    a = hub.get("a")
    assert a is not None and a.stalled
    assert sweep(hub, now=T0 + 20, stall_after=10) == 0
    # A clock that went back (or a longer timeout) un-stalls.
    assert sweep(hub, now=T0 + 20, stall_after=100) == 1
    a = hub.get("a")
    assert a is not None and not a.stalled
