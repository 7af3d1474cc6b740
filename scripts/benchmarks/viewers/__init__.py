"""Viewers: 10,000 clients of /ws/training/{job} (100 on each of 100 jobs) connecting at once.

Three kinds of process, apart from each other: the sidecar, the writer (the dashboards
scenario's: each job's progress.json replaced once a second, the jobs spread over the second)
and the load, picows clients in 4 processes of their own, under uvloop, each with its open-file
limit raised. The storm: on one word every load process starts every client's connection at
once, while the writes flow; the time until every client holds its snapshot, each handshake's
time (from the client's start of the connection), the failures, and the kernel's TCP counters
around it (listen-queue overflows and drops, SYN retransmissions). Then the window: every
client parses every message for its step, and each rename's delay is the time until the client
held that step or a later one (a skipped state is as late as the one that replaced it). At the
end every job completes: a client lost its final state if it did not hold it when the server
closed it.

The modules: load (the clients), kernel (the TCP counters), measure (one storm and window
against any server: the cluster's gateway too) and scenario (``run``, ``report``, targets).
"""

from benchmarks.viewers.load import load
from benchmarks.viewers.measure import measure_viewers
from benchmarks.viewers.scenario import report, run, targets, viewers_lines

__all__ = ["load", "measure_viewers", "report", "run", "targets", "viewers_lines"]
