"""Many jobs: 100,000 job directories: start-up, rest, and what a big listing costs others.

The root holds ``jobs`` job directories (default 100,000): ``files`` of them (default 300,
spread evenly) hold a progress.json of a running job last written an hour ago, the rest are
empty directories (pending jobs: the shape of a training server's root full of queued or
abandoned jobs, and of the probe that found the problem). The shipped sidecar runs on it as a
subprocess, at its defaults. Reported: the time from launch to ready (the first ``/healthz``
200 that counts every job); its memory (RSS) and CPU at rest over ``rest_seconds``, after a
settling pause; then, while a probe in a process of its own asks ``GET /healthz`` on a fresh
connection every 5 ms, the worst round trip the probe sees (the stall another client suffers)
during: a quiet stretch (the reference), ``GET /api/jobs`` of every job, every page of
``GET /api/jobs?limit=1000`` (an old sidecar ignores the parameter and answers all at once),
one dashboard connecting to ``/ws/jobs`` until it holds its snapshot, and three at once. The
clients are plain sockets (HTTP) and picows (WebSocket), not aiohttp.

The modules: scenario (the root, the sidecar, ``run``), stall_probe (the probe process), clients
(the listings and the dashboards) and results (the figures, the targets, ``report``).
"""

from benchmarks.many_jobs.results import report
from benchmarks.many_jobs.scenario import run
from benchmarks.many_jobs.stall_probe import probe

__all__ = ["probe", "report", "run"]
