"""``GET /metrics``: the sidecar's figures in Prometheus' text format.

Counting happens in plain integers where it is hot (the watcher, the senders); they are turned
into metrics only when scraped. One registry per application, so that several sidecars can live
in one process (the tests run many).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sidecar.bus.interface import Bus
from sidecar.core.events import GuardedSink
from sidecar.core.hub import JobHub
from sidecar.files.stats import WatchStats
from sidecar.server.gc_pauses import GENERATIONS, GcPauses
from sidecar.server.supervisor import Supervisor

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Every metric of one sidecar (see docs/protocol.md#metrics)."""

    def __init__(
        self,
        hub: JobHub,
        watch: WatchStats,
        bus: Bus | None,
        *,
        supervisor: Supervisor,
        sinks: Sequence[GuardedSink],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.watch = watch
        self.send = SendStats()
        self.event_to_send = Histogram(
            "sidecar_event_to_send_seconds",
            "Time from a file event's arrival to the send of the state it brought (read, diff and encoding included).",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.gc = GcPauses()
        """The collector's pauses (counted once the application starts)."""
        self.registry.register(_Figures(hub, watch, self.send, bus))
        self.registry.register(_Health(supervisor, sinks, bus))
        self.registry.register(_Collector(self.gc))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Figures(Collector):
    def __init__(self, hub: JobHub, watch: WatchStats, send: SendStats, bus: Bus | None) -> None:
        self.hub, self.watch, self.send, self.bus = hub, watch, send, bus

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("sidecar_jobs", "Jobs known.", value=len(self.hub))
        yield GaugeMetricFamily(
            "sidecar_connections",
            "Open WebSocket connections following a job.",
            value=self.hub.client_count,
        )
        yield GaugeMetricFamily(
            "sidecar_resume_bytes",
            "Memory held by the versions kept to resume clients from (--resume-bytes at most).",
            value=self.hub.kept_versions.size,
        )
        yield GaugeMetricFamily(
            "sidecar_history_bytes",
            "Memory held by the histories kept in memory (--history-bytes at most).",
            value=self.hub.histories.budget.size,
        )
        yield GaugeMetricFamily(
            "sidecar_histories_held",
            "Jobs whose history is held in memory (released when nobody follows it).",
            value=len(self.hub.histories.budget),
        )
        messages = CounterMetricFamily(
            "sidecar_messages_sent", "WebSocket messages sent, by type.", labels=["type"]
        )
        for kind in ("snapshot", "patch", "log", "jobs_snapshot", "jobs_patch"):
            messages.add_metric([kind], self.send.messages[kind])
        yield messages
        yield CounterMetricFamily(
            "sidecar_states_coalesced",
            "Intermediate states slow clients skipped (they got one patch to the latest instead).",
            value=self.send.coalesced,
        )
        yield CounterMetricFamily(
            "sidecar_send_timeouts",
            "Clients dropped for reading nothing for --send-timeout.",
            value=self.send.send_timeouts,
        )
        yield CounterMetricFamily(
            "sidecar_file_reads", "Progress files opened and read.", value=self.watch.file_reads
        )
        yield CounterMetricFamily(
            "sidecar_file_rereads",
            "Bad reads read again a few ms later (a writer caught half-way); most then succeed.",
            value=self.watch.rereads,
        )
        errors = CounterMetricFamily(
            "sidecar_file_read_errors",
            "Reads that gave no JSON object, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(self.watch.read_errors.items()):
            errors.add_metric([reason], count)
        yield errors
        yield CounterMetricFamily(
            "sidecar_scans", "Reconciliation scans (and polls) of the root.", value=self.watch.scans
        )
        yield CounterMetricFamily(
            "sidecar_scan_stats",
            "stat() calls those scans made on jobs (no file is read).",
            value=self.watch.scan_stats,
        )
        if self.bus is not None:
            yield GaugeMetricFamily(
                "sidecar_bus_up", "1 while the bus is up (cluster mode).", value=int(self.bus.up)
            )
            yield GaugeMetricFamily(
                "sidecar_nodes_lost",
                "Nodes silent for --node-timeout with jobs still running (cluster mode).",
                value=len(self.hub.stranded_nodes()),
            )


class _Health(Collector):
    """The background tasks' restarts, and what the boundaries refused."""

    def __init__(self, supervisor: Supervisor, sinks: Sequence[GuardedSink], bus: Bus | None):
        self.supervisor, self.sinks, self.bus = supervisor, sinks, bus

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "sidecar_task_restarts",
            "Background tasks started again after they failed, by task.",
            labels=["task"],
        )
        for name in sorted(self.supervisor.names):
            restarts.add_metric([name], self.supervisor.restarts[name])
        yield restarts
        yield GaugeMetricFamily(
            "sidecar_tasks_down",
            "Background tasks down now (failed, and not yet running well again).",
            value=len(self.supervisor.down),
        )
        refused = CounterMetricFamily(
            "sidecar_events_refused",
            "Events a source handed the hub that it could not take (each logged), by source.",
            labels=["source"],
        )
        for sink in self.sinks:
            refused.add_metric([sink.source], sink.refused)
        yield refused
        if self.bus is not None:
            yield CounterMetricFamily(
                "sidecar_bus_entries_dropped",
                "Entries read from Redis that are not this protocol's (dropped; logged at most "
                "5 lines every 10 s).",
                value=self.bus.dropped,
            )
            yield GaugeMetricFamily(
                "sidecar_bus_nodes_left_out",
                "Nodes announced in Redis and not read, past --max-nodes (at the last look).",
                value=self.bus.nodes_left_out,
            )
            yield CounterMetricFamily(
                "sidecar_bus_jobs_left_out",
                "Other nodes' jobs (or states) not taken, past --max-jobs-per-node or --max-bytes-per-node.",
                value=self.bus.jobs_left_out,
            )


class _Collector(Collector):
    """The garbage collector's pauses."""

    def __init__(self, pauses: GcPauses) -> None:
        self.pauses = pauses

    def collect(self) -> Iterator[Metric]:
        collections = CounterMetricFamily(
            "sidecar_gc_collections",
            "Collections of the cyclic garbage collector, by generation (2: full).",
            labels=["generation"],
        )
        seconds = CounterMetricFamily(
            "sidecar_gc_pause_seconds",
            "Time the collections held the event loop, by generation.",
            labels=["generation"],
        )
        for generation in GENERATIONS:
            collections.add_metric([str(generation)], self.pauses.collections[generation])
            seconds.add_metric([str(generation)], self.pauses.seconds[generation])
        yield collections
        yield seconds
        yield GaugeMetricFamily(
            "sidecar_gc_pause_seconds_max",
            "The longest pause of the garbage collector since the start.",
            value=self.pauses.longest,
        )


@dataclass
class SendStats:
    """What the WebSocket senders did."""

    messages: Counter[str] = field(default_factory=Counter)
    coalesced: int = 0
    send_timeouts: int = 0
