"""``progress-sidecar``: run the sidecar from the command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from aiohttp import web

from sidecar.bus.interface import BusConfigError
from sidecar.core.argtypes import (
    REDIS_URL_FORM,
    host_name,
    node_name,
    non_negative_float,
    origin,
    port,
    positive_float,
    positive_int,
    redis_url,
)
from sidecar.core.environment import (
    REDIS_ENV,
    ROOT_ENV,
    TOKEN_ENV,
    env_redis_url,
    env_root,
    env_token,
)
from sidecar.files.layout import JobLayout
from sidecar.server import logs
from sidecar.server.access import AccessLogger, is_loopback
from sidecar.server.app import create_app
from sidecar.server.runner import (
    BACKLOG,
    MIN_OPEN_FILES,
    SidecarRunner,
    clients_that_fit,
    connection_budget,
    raise_open_files_limit,
)
from sidecar.server.settings import Settings

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 0.3


# Each option sets the Settings field of the same name, and takes its default from there:
# (flag, parse, metavar, help).
_OPTIONS: list[tuple[str, Callable[[str], Any], str | None, str]] = [
    ("--host", str, None, "address to listen on"),
    ("--port", port, None, "port to listen on (0: any free one)"),
    ("--pattern", str, None, "where a job's progress file lies under the root; {job_id} marks the job id"),
    ("--max-clients-per-job", positive_int, "N", "WebSocket clients allowed on one job; more are closed with 1013"),
    ("--max-clients-per-address", positive_int, "N", "WebSocket clients allowed on one job from one address, so that one client cannot take the job's quota (behind a reverse proxy every client has the proxy's address: raise it to --max-clients-per-job)"),
    ("--max-clients", positive_int, "N", "WebSocket clients allowed in all; more are closed with 1013 (lowered, with a warning, to what the open-file limit carries)"),
    ("--stall-after", positive_float, "SECONDS", "a job not complete whose file has not changed for this long is sent stalled: true"),
    ("--poll-interval", positive_float, "SECONDS", "seconds between two polls with --poll"),
    ("--rescan-interval", positive_float, "SECONDS", "seconds between two scans that catch what inotify may have missed"),
    ("--max-file-bytes", positive_int, "BYTES", "larger progress files are refused and the last good state kept"),
    ("--send-timeout", positive_float, "SECONDS", "a client that takes no data for this long is dropped"),
    ("--heartbeat", positive_float, "SECONDS", "ping each client this often; one that does not answer within half of it is dropped"),
    ("--max-history", positive_int, "N", "history entries (metrics.jsonl lines) kept per job; the oldest go first"),
    ("--history-bytes", positive_int, "BYTES", "memory for the histories held, all jobs together; past it the histories nobody follows go first, then the largest lose their oldest entries"),
    ("--history-grace", non_negative_float, "SECONDS", "a history nobody follows (no ?history=1 client, no REST request for it) is released this long after its last use; the next request reads it again"),
    ("--resume-bytes-per-job", positive_int, "BYTES", "memory for one job's last versions, kept to resume reconnecting clients from (?since=); the oldest go first, and a client that resumes from one gone gets a snapshot"),
    ("--resume-bytes", positive_int, "BYTES", "memory for the versions kept to resume clients from, all jobs together; the oldest of all go first"),
    ("--node", node_name, "NAME", "this node's name in a cluster (unique there; shown as each job's node, also without --redis)"),
    ("--node-timeout", positive_float, "SECONDS", "with --redis: a node not heard from for this long is lost, and its running jobs are shown stalled"),
    ("--watch-step-ms", positive_int, "MS", "while events flow (2 s after one), how often the watcher looks for more: a write waits one to two of these"),
    ("--watch-warm-seconds", non_negative_float, "SECONDS", "after the last event, how long the watcher still looks every 3 ms (a write waits 3 to 6 ms) before it looks every 25 ms at rest; about 0.5 %% of a core meanwhile; 0: none (see docs/benchmarks.md)"),
]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """Its errors never repeat a password: a mistyped flag (``--rediss redis://:pw@...``) is
    echoed back, and stderr ends up in the journal."""

    def error(self, message: str) -> NoReturn:
        super().error(logs.redact_urls(message))


class _Once(argparse.Action):
    """A flag that may be given once (a second ``--redis`` would silently win)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} given twice")
        setattr(namespace, self.dest, values)


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default where it has one worth showing (not None, [] or a switch's off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, [], False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _field(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings(root=Path("."))
    parser = _Parser(
        prog="progress-sidecar",
        description=(
            "Watch <root>/<job_id>/progress.json files and stream every change to WebSocket "
            "clients at /ws/training/{job_id} within milliseconds; REST at /api/jobs. "
            "The sidecar only reads the jobs root."
        ),
        formatter_class=_DefaultsHelpFormatter,
        epilog="progress-sidecar tail JOB_ID [--url URL]: show one job live in the terminal "
        "(see progress-sidecar tail --help).",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=env_root(),
        metavar="DIR",
        help=f"the jobs root to watch (or env {ROOT_ENV}); one that does not exist yet is "
        "waited for, with a warning. With --redis and no root, the sidecar is a gateway: it "
        "serves every job of the cluster and watches none",
    )
    parser.add_argument(
        "--redis",
        type=redis_url,
        action=_Once,
        default=None,  # not the environment's: --help would print it, password and all
        metavar="URL",
        help=f"cluster mode: publish this node's jobs to Redis and serve every node's (or env "
        f"{REDIS_ENV}, which keeps a password out of the process list); {REDIS_URL_FORM}. "
        "Needs the cluster extra: pip install 'progress-sidecar[cluster]'",
    )
    for flag, parse, metavar, text in _OPTIONS:
        default = getattr(defaults, _field(flag))
        parser.add_argument(flag, type=parse, default=default, metavar=metavar, help=text)
    parser.add_argument(
        "--token",
        default=None,  # not the environment's: --help would print it
        help=f"require this bearer token on every request (or env {TOKEN_ENV}, which keeps it "
        "out of the process list); default: none",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        type=origin,
        default=[],
        metavar="ORIGIN",
        help="let browser pages from ORIGIN (e.g. http://localhost:3000; * for any) in, with "
        "CORS; repeatable. By default only same-origin pages and non-browser clients",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        type=host_name,
        default=[],
        metavar="HOST",
        help="a name clients may reach the sidecar by (the Host header; e.g. train.example); "
        "repeatable. Listening on a loopback address, only localhost, 127.0.0.1 and [::1] are "
        "let in otherwise (403), against DNS rebinding; with this flag, that check holds on "
        "any address",
    )
    parser.add_argument(
        "--poll",
        action="store_true",
        help="find changes by stat (for network filesystems) instead of inotify",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log (to stderr)",
    )
    return parser


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


def parse_settings(argv: Sequence[str] | None = None) -> tuple[Settings, str]:
    """Settings and log level from the command line; exits 2 with a message on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    redis = args.redis
    if redis is None and (from_env := env_redis_url()) is not None:
        try:
            redis = redis_url(from_env)
        except argparse.ArgumentTypeError as e:
            parser.error(f"{REDIS_ENV}: {e}")
    if args.root is None and redis is None:
        parser.error(
            f"--root is required (or set {ROOT_ENV}); without a root, --redis URL runs a gateway"
        )
    root = Path(args.root).absolute() if args.root is not None else None
    if root is not None:
        if (problem := root_problem(root)) is not None:
            parser.error(problem)
        try:
            JobLayout(root, args.pattern)
        except ValueError as e:
            parser.error(str(e))
    if redis is not None and not _has_redis_client():
        parser.error("--redis needs Redis' client: pip install 'progress-sidecar[cluster]'")
    options = {_field(flag): getattr(args, _field(flag)) for flag, *_ in _OPTIONS}
    settings = Settings(
        root=root,
        redis_url=redis,
        poll=args.poll,
        token=args.token or env_token(),
        allowed_origins=tuple(args.allowed_origin),
        allowed_hosts=tuple(args.allowed_host),
        **options,
    )
    return settings, args.log_level


def _has_redis_client() -> bool:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        return False
    return True


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then close every client with 1001 and return.

    Raises:
        BusConfigError: Redis refuses this sidecar (wrong password...).
    """
    if settings.redis_url is not None:  # first: a refusal is a configuration error
        from sidecar.bus.link import refused

        await refused(settings.redis_url)
    settings = fit_open_files(settings)
    if not is_loopback(settings.host) and settings.token is None and not settings.allowed_hosts:
        logger.warning(
            "listening on %s with neither a token nor --allowed-host: anyone who reaches the "
            "port reads every job, and a page whose DNS name points here passes for this "
            "sidecar (set SIDECAR_TOKEN, and --allowed-host with the names clients use)",
            settings.host,
        )
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
        site = web.TCPSite(runner, settings.host, settings.port, backlog=BACKLOG)
        await site.start()
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


class TooFewFiles(RuntimeError):
    """The open-file limit cannot carry the sidecar at all."""


def fit_open_files(settings: Settings) -> Settings:
    """Raise the open-file limit as far as allowed, and lower ``max_clients`` (with a warning)
    if the descriptors would run out before it is reached."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sidecar (or ``tail``, the terminal client); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["tail"]:
        from sidecar.clients import tail

        return tail.main(args[1:])
    settings, log_level = parse_settings(args)
    logs.configure(log_level, secrets=_secrets(settings))
    try:
        asyncio.run(serve(settings))
    except TooFewFiles as e:
        logger.error("%s", e)
        return 2
    except BusConfigError as e:
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
