"""Cluster: node sidecars and a gateway over one redis-server; added latency, 1,000 clients, a Redis restart, Redis' throughput, crowds on the gateway.

Every part is a real process: a redis-server (no persistence; its default user has a
password), sidecars on it (nodes, each with a jobs root of its own; a gateway without one), each
as a Redis ACL user of its own with the rules ``progress-sidecar redis-acl`` prints, the writer
(this process, replacing progress files atomically like a trainer) and the load clients, in
worker processes of their own on the `websockets` library (not the sidecar's aiohttp). Every
write carries its step; a client's latency for a write is the time from the rename until it
holds that step or a later one (a coalesced state is as late as the one that replaced it).

1. Added latency: Redis, node A, node B and a gateway. One job on A written at 20 Hz, then one
   at 2 Hz; a client follows each on A (direct), on B (a replica) and on the gateway. Added =
   gateway minus A, as a difference of percentiles and write by write.
2. Scale: 3 nodes x 100 jobs, each written at 2 Hz on a phase of its own; 1,000 clients on one
   gateway, over the 300 jobs, in 4 worker processes; the last write of each job `completed`.
   Latency, writes lost, the CPU of every process (/proc/<pid>/stat), Redis' memory and streams.
3. Recovery: every job of (2) completed; redis-server killed and a new, empty one started on
   the same port. How long until Redis holds every final state again, until the gateway reads
   the bus again, and until a gateway started then holds them all; whether the first gateway
   ever served less than the final state (polled every 50 ms, and a client per job).
4. Redis alone: changes/s that one redis-server takes from redis-py publishers writing what a
   node writes for a change (XADD to its stream, HSET of its jobs hash, 2 EXPIRE, in
   MULTI/EXEC), as a node's ACL user each, with the real message size.
5. Crowds on the gateway, each on a cluster of its own: 100 dashboards on its /ws/jobs while
   1,000 jobs split over the nodes are rewritten once a second each, then 10,000 clients of
   /ws/training on it (100 jobs) connecting at once; measured by the dashboards and viewers
   scenarios' code (picows load processes, their writer).

The modules: processes (Redis, sidecars, load workers), load (the workers), measure, one per
part (added_latency, scale, recovery, throughput, crowds), scenario (``run``) and report.
"""

from benchmarks.cluster.load import worker
from benchmarks.cluster.report import report
from benchmarks.cluster.scenario import run

__all__ = ["report", "run", "worker"]
