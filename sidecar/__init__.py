"""progress-sidecar: streams training progress files to WebSocket clients as they change."""

from sidecar.app import create_app
from sidecar.hub import JobHub
from sidecar.settings import Settings

__all__ = ["JobHub", "Settings", "create_app"]
