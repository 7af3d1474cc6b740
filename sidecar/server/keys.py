"""Typed keys for what the application holds."""

from __future__ import annotations

from aiohttp import web

from sidecar.bus.interface import Bus
from sidecar.core.hub import JobHub
from sidecar.files.watcher import FileWatcher
from sidecar.server.close_pacer import ClosePacer
from sidecar.server.metrics import Metrics
from sidecar.server.settings import Settings
from sidecar.server.supervisor import Supervisor

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", JobHub)
WATCHER = web.AppKey("watcher", FileWatcher)
"""Absent on a gateway (no jobs root)."""
BUS = web.AppKey("bus", Bus)
"""Present in cluster mode only."""
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])
METRICS = web.AppKey("metrics", Metrics)
CLOSES = web.AppKey("closes", ClosePacer)
"""Paces the closes that follow jobs' ends."""
SUPERVISOR = web.AppKey("supervisor", Supervisor)
"""Runs every background task, restarting one that fails (``/healthz`` names those down)."""
