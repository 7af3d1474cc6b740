"""The application factory: routes, state, and the background tasks that feed it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from sidecar.bus.interface import Bus
from sidecar.core.events import GuardedSink
from sidecar.core.hub import JobHub
from sidecar.files.layout import JobLayout
from sidecar.files.stats import WatchStats
from sidecar.files.watcher import FileWatcher
from sidecar.server import dashboard, jobs_stream, rest, sockets, training_stream
from sidecar.server.access import AccessPolicy, access_control
from sidecar.server.close_pacer import ClosePacer
from sidecar.server.jobs_feed import LIST_SNAPSHOTS, ListSnapshots, run_jobs_feed
from sidecar.server.keys import BUS, CLOSES, HUB, METRICS, SETTINGS, SOCKETS, SUPERVISOR, WATCHER
from sidecar.server.memory_release import run_history_release
from sidecar.server.metrics import Metrics
from sidecar.server.settings import Settings
from sidecar.server.stall_clock import run_stall_clock
from sidecar.server.supervisor import Supervisor

logger = logging.getLogger(__name__)

SHUTDOWN_CLOSE_TIMEOUT = 0.5
BUS_READY_TIMEOUT = 10.0
"""Seconds the app waits, at start, for the bus to have read every job of the cluster."""


def create_app(settings: Settings) -> web.Application:
    """Build the sidecar for ``settings``; the watcher (and the bus) start with the app."""
    hub = JobHub(
        # A gateway owns no job: no node's jobs may pass for its own.
        node=settings.node if settings.root is not None else "",
        max_clients=settings.max_clients,
        max_clients_per_job=settings.max_clients_per_job,
        max_clients_per_address=settings.max_clients_per_address,
        max_history=settings.max_history,
        history_bytes=settings.history_bytes,
        history_grace=settings.history_grace,
        resume_bytes_per_job=settings.resume_bytes_per_job,
        resume_bytes=settings.resume_bytes,
        stall_after=settings.stall_after,
    )
    policy = AccessPolicy.of(
        token=settings.token,
        allowed_origins=settings.allowed_origins,
        allowed_hosts=settings.allowed_hosts,
        listen_host=settings.host,
    )
    access = access_control(
        policy,
        websockets=(training_stream.training_socket, jobs_stream.jobs_socket),
        public=(dashboard.static_file,),
    )
    app = web.Application(middlewares=[rest.json_errors, access])
    app[SETTINGS] = settings
    app[HUB] = hub
    app[SOCKETS] = set()
    app[CLOSES] = ClosePacer(lambda: hub.last_change)
    # The seams between a source and the hub: events go in through hub.apply, and only the
    # wish for a job's history (hub.history_interest) goes the other way.
    app[SUPERVISOR] = Supervisor()
    sinks: list[GuardedSink] = []
    if settings.root is not None:
        # An event the hub cannot take costs that event, never the watcher.
        sinks.append(GuardedSink(hub.apply, source="watcher"))
        app[WATCHER] = FileWatcher(
            JobLayout(settings.root.absolute(), settings.pattern),
            sinks[-1],
            origin=settings.node,
            interest=hub.history_interest,
            poll=settings.poll,
            poll_interval=settings.poll_interval,
            rescan_interval=settings.rescan_interval,
            max_file_bytes=settings.max_file_bytes,
            max_history=settings.max_history,
            watch_step_ms=settings.watch_step_ms,
            watch_warm_seconds=settings.watch_warm_seconds,
        )
    bus = _redis_bus(settings, hub) if settings.redis_url is not None else None
    if bus is not None:
        app[BUS] = bus
        sinks.append(bus.sink)
        hub.history_interest.listen(bus.history_wanted, unwanted=bus.history_unwanted)
    watcher = app.get(WATCHER)
    stats = watcher.stats if watcher is not None else WatchStats()
    app[METRICS] = Metrics(hub, stats, bus, supervisor=app[SUPERVISOR], sinks=sinks)
    app.router.add_get("/ws/training/{job_id}", training_stream.training_socket)
    app[LIST_SNAPSHOTS] = ListSnapshots(hub)
    app.router.add_get("/ws/jobs", jobs_stream.jobs_socket)
    dashboard.add_routes(app)
    app.add_routes(rest.routes)
    app.cleanup_ctx.append(_background_tasks)
    app.on_shutdown.append(_close_sockets)
    return app


def _redis_bus(settings: Settings, hub: JobHub) -> Bus:
    from sidecar.bus.redis_bus import RedisBus  # Redis' client is an extra

    assert settings.redis_url is not None
    return RedisBus(
        settings.redis_url,
        hub,
        node_timeout=settings.node_timeout,
        max_document_bytes=settings.max_file_bytes,
        max_nodes=settings.max_nodes,
        max_jobs_per_node=settings.max_jobs_per_node,
        max_bytes_per_node=settings.max_bytes_per_node,
    )


GC_THRESHOLDS: Final = (20_000, 10, 10)
"""The collector's thresholds (Python's are 700, 10, 10). A crowd of 10,000 clients connecting
at once holds some 1.5 million objects more; counted every 700 allocations, it set off 11 full
collections while it came in, a pause of 3.3 s in all and up to 0.5 s at once (a full one walks
every object the clients hold, and comes again each time they are a quarter more). Counted every
20,000, none came, and the young ones took 0.6 s (docs/benchmarks.md, viewers)."""
_thresholds_before = gc.get_threshold()


async def _background_tasks(app: web.Application) -> AsyncIterator[None]:
    watcher, bus, tasks = app.get(WATCHER), app.get(BUS), app[SUPERVISOR]
    tasks.start("close-pacer", app[CLOSES].run)
    tasks.start("history-release", lambda: run_history_release(app[HUB]))
    tasks.start("jobs-list", lambda: run_jobs_feed(app[HUB], app[LIST_SNAPSHOTS]))
    if watcher is not None:
        stall_after = app[SETTINGS].stall_after
        tasks.start("watcher", watcher.run)
        tasks.start("stall-clock", lambda: run_stall_clock(app[HUB], stall_after=stall_after))
        # Serve only once the jobs already on disk are known (or the root is known missing).
        await watcher.ready.wait()
    if bus is not None:
        for name, work in bus.parts().items():
            tasks.start(name, work)
        # And once every job of the cluster is known, or the bus is known to be down.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bus.ready.wait(), BUS_READY_TIMEOUT)
    # What start-up loaded (every job on disk) stays as long as the sidecar: out of the cyclic
    # collector's way, a full collection walks only what came since (with 100,000 jobs it
    # walked 720,000 objects, a pause of 0.4 s for every client: docs/reliability.md).
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    app[METRICS].gc.start()
    yield
    app[METRICS].gc.stop()
    gc.unfreeze()  # all of it collectable again (several apps in one process: tests)
    gc.set_threshold(*_thresholds_before)
    await tasks.stop()
    if bus is not None:
        await bus.close()


async def _close_sockets(app: web.Application) -> None:
    # Clients whose job ended and whose close waits its turn close as complete first.
    app[CLOSES].flush()
    await asyncio.sleep(0)
    await sockets.close_all(app[SOCKETS], timeout=SHUTDOWN_CLOSE_TIMEOUT)
