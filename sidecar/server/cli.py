"""``progress-sidecar``: run the sidecar (or ``tail``, the terminal client, or ``redis-acl``)
from the command line. The options are ``arguments``; serving is ``serving``."""

from __future__ import annotations

import asyncio
import logging
import sys
import urllib.parse
from collections.abc import Sequence

from sidecar.bus.interface import BusConfigError
from sidecar.server import logs
from sidecar.server.arguments import parse_settings
from sidecar.server.serving import TooFewFiles, serve
from sidecar.server.settings import Settings

__all__ = ["main", "parse_settings"]

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sidecar; or ``tail`` (the terminal client), or ``redis-acl`` (a role's Redis ACL
    rules), when the first argument names one.

    Args:
        argv: the arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0 after SIGINT or SIGTERM, 1 when the address cannot be listened
        on, 2 for a configuration error (``tail`` has its own: ``sidecar.clients.tail``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["tail"]:
        from sidecar.clients import tail

        return tail.main(args[1:])
    if args[:1] == ["redis-acl"]:
        from sidecar.server import redis_acl

        return redis_acl.main(args[1:])
    settings, log_level = parse_settings(args)
    logs.configure(log_level, secrets=_secrets(settings))
    try:
        asyncio.run(serve(settings))
    except (TooFewFiles, BusConfigError) as e:
        logger.error("%s", e)
        return 2
    except OSError as e:
        logger.error("cannot serve on %s:%s: %s", settings.host, settings.port, e)
        return 1
    return 0


def _secrets(settings: Settings) -> list[str]:
    """What no log line may show: the token, and Redis' password."""
    secrets = [settings.token] if settings.token else []
    if settings.redis_url is not None:
        url = urllib.parse.urlsplit(settings.redis_url)
        secrets += [s for s in (url.password, urllib.parse.unquote(url.password or "")) if s]
        query = urllib.parse.parse_qs(url.query)
        secrets += query.get("password", [])
    return secrets
