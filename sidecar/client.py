"""The Python client, where it has always been imported from: ``from sidecar.client import
follow_job``. It lives in ``sidecar.clients.follow``."""

from sidecar.clients.follow import (
    GIVE_UP_AFTER,
    FollowError,
    InvalidURL,
    SidecarUnreachable,
    StreamError,
    follow_job,
    sidecar_url,
    ws_url,
)

__all__ = [
    "GIVE_UP_AFTER",
    "FollowError",
    "InvalidURL",
    "SidecarUnreachable",
    "StreamError",
    "follow_job",
    "sidecar_url",
    "ws_url",
]
