"""Serving until told to stop: the listening socket, the signals, and the open-file limit."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal

from aiohttp import web

from sidecar.server.access import AccessLogger, is_loopback
from sidecar.server.app import create_app
from sidecar.server.runner import (
    MIN_OPEN_FILES,
    SidecarRunner,
    accept_batch,
    clients_that_fit,
    connection_budget,
    lengthen_listen_queue,
    open_files_limit,
    raise_open_files_limit,
)
from sidecar.server.settings import Settings

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 0.3


class TooFewFiles(RuntimeError):
    """The open-file limit cannot carry the sidecar at all."""


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then close every client with 1001 and return.

    Args:
        settings: how to serve.

    Raises:
        BusConfigError: Redis refuses this sidecar (wrong password...).
        TooFewFiles: the open-file limit is too low.
        OSError: the address cannot be listened on (a port in use...).
    """
    if settings.redis_url is not None:  # first: a refusal is a configuration error
        from sidecar.bus import preflight

        await preflight.check(settings.redis_url, settings.node if settings.root else None)
    settings = fit_open_files(settings)
    # One access-log line per request (at debug level), with any token redacted.
    runner = SidecarRunner(
        create_app(settings),
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("sidecar.server.access"),
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        batch = accept_batch(open_files_limit())  # asyncio accepts its backlog at a time
        site = web.TCPSite(runner, settings.host, settings.port, backlog=batch)
        await site.start()
        # aiohttp keeps the server the loop made there (asyncio's or uvloop's: both list their
        # sockets).
        lengthen_listen_queue(getattr(site._server, "sockets", None) or ())
        _warn_if_open(settings)  # once listening: a host it cannot listen on is an error only
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        if settings.root is None:
            serving = "gateway: every node's jobs, from Redis"
        else:
            serving = f"jobs root {settings.root}"
            if settings.redis_url is not None:
                serving += f", node {settings.node}, cluster on Redis"
        print(f"progress-sidecar listening on http://{shown}:{port} ({serving})", flush=True)
        await stop.wait()
        logger.info("shutting down")
    finally:
        await runner.cleanup()


def _warn_if_open(settings: Settings) -> None:
    if not is_loopback(settings.host) and settings.token is None and not settings.allowed_hosts:
        logger.warning(
            "listening on %s with neither a token nor --allowed-host: anyone who reaches the "
            "port reads every job, and a page whose DNS name points here passes for this "
            "sidecar (set SIDECAR_TOKEN, and --allowed-host with the names clients use)",
            settings.host,
        )


def fit_open_files(settings: Settings) -> Settings:
    """Raise the open-file limit as far as allowed, and lower ``max_clients`` (with a warning)
    if the descriptors would run out before it is reached.

    Raises:
        TooFewFiles: the limit cannot be raised to ``MIN_OPEN_FILES``.
    """
    open_files = raise_open_files_limit()
    if open_files < MIN_OPEN_FILES:
        raise TooFewFiles(
            f"the open-file limit is {open_files}; the sidecar needs at least {MIN_OPEN_FILES} "
            "(raise it: LimitNOFILE= in a systemd unit, ulimit -n in a shell)"
        )
    fitting = clients_that_fit(settings.max_clients, open_files)
    logger.info(
        "open-file limit %d: up to %d connections, %d WebSocket clients",
        open_files,
        connection_budget(open_files),
        fitting,
    )
    if fitting < settings.max_clients:
        logger.warning(
            "--max-clients %d does not fit in the open-file limit of %d (each client holds one, "
            "and the sidecar needs some for its files); serving at most %d clients. Raise the "
            "limit (LimitNOFILE= in a systemd unit, ulimit -n in a shell)",
            settings.max_clients,
            open_files,
            fitting,
        )
        settings = dataclasses.replace(settings, max_clients=fitting)
    return settings
