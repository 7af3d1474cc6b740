"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now: the system's choice for a socket bound and closed at once.

    Another process may take it before the caller binds it: callers that can, retry.

    Args:
        host: the address the port is free on.
    """
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
