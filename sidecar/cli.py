"""``progress-sidecar``: run the sidecar from the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from sidecar.app import create_app
from sidecar.layout import JobLayout
from sidecar.settings import Settings

logger = logging.getLogger(__name__)

ROOT_ENV = "SIDECAR_ROOT"
SHUTDOWN_TIMEOUT = 0.3


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from e
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings(root=Path("."))
    parser = argparse.ArgumentParser(
        prog="progress-sidecar",
        description=(
            "Watch <root>/<job_id>/progress.json files and stream every change to WebSocket "
            "clients at /ws/training/{job_id} within milliseconds; REST at /api/jobs. "
            "The sidecar only reads the jobs root."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=os.environ.get(ROOT_ENV),
        help=f"the jobs root to watch (or env {ROOT_ENV}); a root that does not exist yet is waited for",
    )
    parser.add_argument("--host", default=defaults.host, help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=defaults.port, help="port to listen on (0: any free one)"
    )
    parser.add_argument(
        "--pattern",
        default=defaults.pattern,
        help="where a job's progress file lies under the root; {job_id} marks the job id",
    )
    parser.add_argument(
        "--max-clients-per-job",
        type=_positive(int),
        default=defaults.max_clients_per_job,
        metavar="N",
        help="WebSocket clients allowed on one job; more are closed with 1013",
    )
    parser.add_argument(
        "--max-clients",
        type=_positive(int),
        default=defaults.max_clients,
        metavar="N",
        help="WebSocket clients allowed in all; more are closed with 1013",
    )
    parser.add_argument(
        "--stall-after",
        type=_positive(float),
        default=defaults.stall_after,
        metavar="SECONDS",
        help="a job not complete whose file has not changed for this long is sent stalled: true",
    )
    parser.add_argument(
        "--poll",
        action="store_true",
        help="find changes by stat (for network filesystems) instead of inotify",
    )
    parser.add_argument(
        "--poll-interval",
        type=_positive(float),
        default=defaults.poll_interval,
        metavar="SECONDS",
        help="seconds between two polls with --poll",
    )
    parser.add_argument(
        "--rescan-interval",
        type=_positive(float),
        default=defaults.rescan_interval,
        metavar="SECONDS",
        help="seconds between two scans that catch what inotify may have missed",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=_positive(int),
        default=defaults.max_file_bytes,
        metavar="BYTES",
        help="larger progress files are refused and the last good state kept",
    )
    parser.add_argument(
        "--send-timeout",
        type=_positive(float),
        default=defaults.send_timeout,
        metavar="SECONDS",
        help="a client that takes no data for this long is dropped",
    )
    parser.add_argument(
        "--watch-step-ms",
        type=_positive(int),
        default=defaults.watch_step_ms,
        metavar="MS",
        help="inotify batching: quiet time that ends a batch of events; lower is faster but "
        "costs more idle CPU (see docs/benchmarks.md)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log (to stderr)",
    )
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> tuple[Settings, str]:
    """Settings and log level from the command line; exits 2 with a message on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.root is None:
        parser.error(f"--root is required (or set {ROOT_ENV})")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0 to 65535, not {args.port}")
    root = Path(args.root).absolute()
    try:
        JobLayout(root, args.pattern)
    except ValueError as e:
        parser.error(str(e))
    settings = Settings(
        root=root,
        host=args.host,
        port=args.port,
        pattern=args.pattern,
        max_clients_per_job=args.max_clients_per_job,
        max_clients=args.max_clients,
        stall_after=args.stall_after,
        poll=args.poll,
        poll_interval=args.poll_interval,
        rescan_interval=args.rescan_interval,
        max_file_bytes=args.max_file_bytes,
        send_timeout=args.send_timeout,
        watch_step_ms=args.watch_step_ms,
    )
    return settings, args.log_level


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then close every client with 1001 and return."""
    # One access-log line per request drowns what matters; it is there at debug level.
    access_log = logging.getLogger("aiohttp.access")
    runner = web.AppRunner(
        create_app(settings),
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log=access_log if access_log.isEnabledFor(logging.DEBUG) else None,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        print(
            f"progress-sidecar listening on http://{shown}:{port} (jobs root {settings.root})",
            flush=True,
        )
        await stop.wait()
        logger.info("shutting down")
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sidecar; returns the exit status."""
    settings, log_level = parse_settings(argv)
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if log_level != "debug":
        # watchfiles says "N changes detected" at info level for every batch.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(settings))
    except OSError as e:
        logger.error("cannot serve on %s:%s: %s", settings.host, settings.port, e)
        return 1
    return 0
