"""Write-to-receipt delays, joined once a window is over: the writer's renames (job, step, time)
against what a client received (time, job, step). Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from benchmarks.common import latencies_by_step

Written = Mapping[str, Mapping[Any, float]]
"""The writer's renames: job id -> {step (an int, or JSON's string of it): time}."""


def in_window(written: Written, began: float, ended: float) -> dict[str, dict[int, float]]:
    """The renames that happened within [``began``, ``ended``]."""
    return {
        job: {int(step): at for step, at in steps.items() if began <= at <= ended}
        for job, steps in written.items()
    }


def lag_ms(
    written: Mapping[str, dict[int, float]], seen: Iterable[Sequence[Any]]
) -> tuple[list[float], int]:
    """For every rename in ``written`` and one client's ``seen`` ([time, job, step], in order of
    receipt), ms until the client held that step or a later one; and how many it never held."""
    got: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for at, job, step in seen:
        got[job].append((at, step))
    samples: list[float] = []
    unseen = 0
    for job, steps in written.items():
        delays = latencies_by_step(steps, got.get(job, []))
        samples += [ms for _step, ms in delays]
        unseen += len(steps) - len(delays)
    return samples, unseen
