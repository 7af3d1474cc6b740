"""Typed keys for what the application holds."""

from __future__ import annotations

from aiohttp import web

from sidecar.hub import JobHub
from sidecar.metrics import Metrics
from sidecar.settings import Settings
from sidecar.watcher import FileWatcher

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", JobHub)
WATCHER = web.AppKey("watcher", FileWatcher)
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])
METRICS = web.AppKey("metrics", Metrics)
