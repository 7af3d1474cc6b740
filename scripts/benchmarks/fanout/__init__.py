"""Fan-out: 1,000 WebSocket clients over 100 jobs, as independent trainers and in lockstep.

Three kinds of process, apart from each other: the server, the writer (which writes the 100
jobs' files on a schedule and notes the time of every rename) and the load, 1,000 clients in
two processes. The load is built on picows, a WebSocket library the sidecar does not use: its
Cython core hands each frame to a plain callback (no future, no task, no reassembly in Python),
so the load costs little per message and the figure is the server's, not the client's
(``websockets`` or aiohttp clients cost several times more per message, and on two cores that
cost lands beside the server's).

Two shapes of write. Independent trainers, the headline: each job on its own phase, one write
of each job every 1/rate s, spread over the period. Lockstep, the worst case: the 100 jobs
written in one burst every 1/rate s. For every write and every client of its job, the latency
is the time from the rename to the moment the client holds that state or a newer one (a skipped
state is as late as the one that replaced it). The terminal tick (the write that completes the
job, after which the server closes the connection) is reported on its own line. At the end
every client checks that it holds its job's final state and got the close code 1000. The
seed's 2-s loop serves the independent shape at 2 Hz, for comparison.

The modules: clients (the load), writes (the writer), phases (one phase on a server of its
own) and scenario (``run``, ``report``).
"""

from benchmarks.fanout.clients import load
from benchmarks.fanout.phases import CLIENTS, JOBS, PHASES, Phase, run_phases
from benchmarks.fanout.scenario import report, run
from benchmarks.fanout.writes import writer

__all__ = ["CLIENTS", "JOBS", "PHASES", "Phase", "load", "report", "run", "run_phases", "writer"]
