"""The application factory: routes, state, and the background tasks that feed it."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.core.hub import JobHub
from sidecar.files.layout import JobLayout
from sidecar.files.watcher import FileWatcher
from sidecar.server import dashboard, jobs_stream, rest, sockets, training_stream
from sidecar.server.access import AccessPolicy, access_control
from sidecar.server.keys import HUB, METRICS, SETTINGS, SOCKETS, WATCHER
from sidecar.server.metrics import Metrics
from sidecar.server.settings import Settings
from sidecar.server.stall_clock import run_stall_clock

logger = logging.getLogger(__name__)

SHUTDOWN_CLOSE_TIMEOUT = 0.5


def create_app(settings: Settings) -> web.Application:
    """Build the sidecar for ``settings``; the watcher starts with the app."""
    layout = JobLayout(settings.root.absolute(), settings.pattern)
    hub = JobHub(
        max_clients=settings.max_clients,
        max_clients_per_job=settings.max_clients_per_job,
        max_clients_per_address=settings.max_clients_per_address,
        max_history=settings.max_history,
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
    # The one seam between a source and the hub: events go in through hub.apply, and only
    # the wish for a job's history (hub.history_interest) goes the other way.
    app[WATCHER] = FileWatcher(
        layout,
        hub.apply,
        origin=socket.gethostname(),
        interest=hub.history_interest,
        poll=settings.poll,
        poll_interval=settings.poll_interval,
        rescan_interval=settings.rescan_interval,
        max_file_bytes=settings.max_file_bytes,
        max_history=settings.max_history,
        watch_step_ms=settings.watch_step_ms,
    )
    app[METRICS] = Metrics(hub, app[WATCHER].stats)
    app.router.add_get("/ws/training/{job_id}", training_stream.training_socket)
    app.router.add_get("/ws/jobs", jobs_stream.jobs_socket)
    dashboard.add_routes(app)
    app.add_routes(rest.routes)
    app.cleanup_ctx.append(_background_tasks)
    app.on_shutdown.append(_close_sockets)
    return app


async def _background_tasks(app: web.Application) -> AsyncIterator[None]:
    watcher = app[WATCHER]
    tasks = [
        asyncio.create_task(watcher.run(), name="watcher"),
        asyncio.create_task(
            run_stall_clock(app[HUB], stall_after=app[SETTINGS].stall_after), name="stall-clock"
        ),
    ]
    for task in tasks:
        task.add_done_callback(_log_crash)
    # Serve only once the jobs already on disk are known (or the root is known to be missing).
    await watcher.ready.wait()
    yield
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("background task %s crashed", task.get_name(), exc_info=error)


async def _close_sockets(app: web.Application) -> None:
    await sockets.close_all(app[SOCKETS], timeout=SHUTDOWN_CLOSE_TIMEOUT)
