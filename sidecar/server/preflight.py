"""The checks of the command line that look at the machine: the address to listen on, and the
jobs root. Each says what is wrong in one short line, for the parser's error."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
from pathlib import Path

_IPV4_LIKE = re.compile(r"[0-9.]+")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def listen_host(text: str) -> str:
    """An address to listen on: an IP address (``0.0.0.0``, ``::``, ``[::1]``) or a host name
    (``localhost``); a name is resolved later, by ``host_problem``."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # [::1], as written in a URL
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _IPV4_LIKE.fullmatch(host):  # no host name is all digits and dots
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}")
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise argparse.ArgumentTypeError(
            f"not an IP address or a host name: {text!r} (e.g. 127.0.0.1, 0.0.0.0 or localhost)"
        )
    return host


def host_problem(host: str) -> str | None:
    """Why the sidecar cannot listen on ``host``, if a name that does not resolve."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        why = e.strerror if isinstance(e, socket.gaierror) and e.strerror else str(e)
        return f"--host {host}: cannot resolve it ({why.lower()})"
    return None


def root_problem(root: Path) -> str | None:
    """Why ``root`` cannot be a jobs root, if it cannot: not a directory, or not readable. A
    root that does not exist is fine: the training server may make it later."""
    try:
        with os.scandir(root):
            return None
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return f"--root {root} is not a directory"
    except PermissionError:
        return f"--root {root}: permission denied (the sidecar must be able to list it)"
    except OSError as e:
        return f"--root {root}: {os.strerror(e.errno or 0).lower()}"
