"""Dashboards: 1,000 jobs rewritten once a second each, and 10, 100, 1,000 clients of /ws/jobs.

Three kinds of process, apart from each other: the sidecar (a fresh one for each count of
dashboards, on the same jobs root), the writer (every job's progress.json replaced once a
second, the jobs spread evenly over the second: 1,000 renames a second, ``current_step`` one
higher each time, the time of every rename noted) and the load: picows clients of ``/ws/jobs``
in processes of their own, under uvloop, connected all at once while the writes flow. Most
dashboards count messages and bytes only; a few probes in each load process keep every message
and parse it once the window is over, and their lag (rename to the receipt of the message that
carries that step or a later one) is joined with the writer's renames then. A dashboard that
fell behind may get a fresh snapshot in place of the patches it missed: those are counted.

The modules: workers (starting and telling the worker processes), writer (the jobs and the
writer), load (the dashboards), lag (the join), server (the sidecar, its GC pauses and log),
measure (one phase against any server: the cluster's gateway too) and scenario (``run``,
``report``, the targets).
"""

from benchmarks.dashboards.load import load
from benchmarks.dashboards.measure import measure_dashboards
from benchmarks.dashboards.scenario import phase_table, report, run, targets
from benchmarks.dashboards.writer import writer

__all__ = ["load", "measure_dashboards", "phase_table", "report", "run", "targets", "writer"]
