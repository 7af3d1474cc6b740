"""The sidecar's command line: its options, in groups, and the ``Settings`` they make.

Every argument is checked here, before the sidecar starts or logs anything: a mistake is one
error line and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

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
    version,
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
from sidecar.server.preflight import host_problem, listen_host, root_problem
from sidecar.server.settings import Settings

PROG = "progress-sidecar"

USAGE = (
    "%(prog)s [--root DIR] [--redis URL] [--host HOST] [--port PORT] [options]\n"
    "       %(prog)s tail JOB_ID [--url URL] [--wait]"
)

# The groups of --help, in order, with what each is about.
_GROUPS: dict[str, str | None] = {
    "where to look": "the jobs root, and how the sidecar finds what changes under it",
    "serving": None,
    "clients and limits": None,
    "memory": "what is kept for the clients that ask for a history or resume",
    "cluster": "several nodes and gateways on one Redis (docs/cluster.md)",
    "access": "who may connect (docs/protocol.md)",
    "logging": None,
}
WHERE, SERVING, LIMITS, MEMORY, CLUSTER, ACCESS, LOGGING = _GROUPS

# Each option sets the Settings field of the same name, and takes its default from there:
# (group, flag, parse, metavar, help).
_OPTIONS: list[tuple[str, str, Callable[[str], Any], str | None, str]] = [
    (WHERE, "--pattern", str, None, "where a job's progress file lies under the root; {job_id} marks the job id"),
    (WHERE, "--stall-after", positive_float, "SECONDS", "a job not complete whose file has not changed for this long is sent stalled: true"),
    (WHERE, "--max-file-bytes", positive_int, "BYTES", "larger progress files are refused and the last good state kept"),
    (WHERE, "--poll-interval", positive_float, "SECONDS", "seconds between two polls (with --poll, on a network filesystem, or while a name under the root keeps inotify from working); at least 20 times what the last poll took"),
    (WHERE, "--rescan-interval", positive_float, "SECONDS", "seconds between two scans that catch what inotify may have missed"),
    (WHERE, "--watch-step-ms", positive_int, "MS", "while events flow (2 s after one), how often the watcher looks for more: a write waits one to two of these"),
    (WHERE, "--watch-warm-seconds", non_negative_float, "SECONDS", "after the last event, how long the watcher still looks every 3 ms (a write waits 3 to 6 ms) before it looks every 25 ms at rest; about 0.5 %% of a core meanwhile; 0: none (see docs/benchmarks.md)"),
    (SERVING, "--port", port, None, "port to listen on (0: any free one)"),
    (SERVING, "--send-timeout", positive_float, "SECONDS", "a client that takes no data for this long is dropped"),
    (SERVING, "--heartbeat", positive_float, "SECONDS", "ping each client this often; one that does not answer within half of it is dropped"),
    (LIMITS, "--max-clients-per-job", positive_int, "N", "WebSocket clients allowed on one job; more are closed with 1013"),
    (LIMITS, "--max-clients-per-address", positive_int, "N", "WebSocket clients allowed on one job from one address, so that one client cannot take the job's quota (behind a reverse proxy every client has the proxy's address: raise it to --max-clients-per-job)"),
    (LIMITS, "--max-clients", positive_int, "N", "WebSocket clients allowed in all; more are closed with 1013 (lowered, with a warning, to what the open-file limit carries)"),
    (MEMORY, "--max-history", positive_int, "N", "history entries (metrics.jsonl lines) kept per job; the oldest go first"),
    (MEMORY, "--history-bytes", positive_int, "BYTES", "memory for the histories held, all jobs together; past it the histories nobody follows go first, then the largest lose their oldest entries"),
    (MEMORY, "--history-grace", non_negative_float, "SECONDS", "a history nobody follows (no ?history=1 client, no REST request for it) is released this long after its last use; the next request reads it again"),
    (MEMORY, "--resume-bytes-per-job", positive_int, "BYTES", "memory for one job's last versions, kept to resume reconnecting clients from (?since=); the oldest go first, and a client that resumes from one gone gets a snapshot"),
    (MEMORY, "--resume-bytes", positive_int, "BYTES", "memory for the versions kept to resume clients from, all jobs together; the oldest of all go first"),
    (CLUSTER, "--node", node_name, "NAME", "this node's name in a cluster (unique there; shown as each job's node, also without --redis)"),
    (CLUSTER, "--node-timeout", positive_float, "SECONDS", "with --redis: a node not heard from for this long is lost, and its running jobs are shown stalled"),
    (CLUSTER, "--max-nodes", positive_int, "N", "with --redis: other nodes read at once; more are left out, counted in /metrics and logged"),
    (CLUSTER, "--max-jobs-per-node", positive_int, "N", "with --redis: jobs taken of each other node; more are left out, counted in /metrics and logged"),
    (CLUSTER, "--max-bytes-per-node", positive_int, "BYTES", "with --redis: what the states of each other node's jobs may take, as read (in memory, 5 to 15 times that); a state past it is left out, counted and logged, the job keeping its last"),
]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """Its errors are one line, and never repeat a password: a mistyped flag (``--rediss
    redis://:pw@...``) is echoed back, and stderr ends up in the journal."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {logs.redact_urls(message)}\n")


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
    """The sidecar's parser (``tail`` has its own: ``sidecar.clients.tail``)."""
    defaults = Settings(root=Path("."))
    parser = _Parser(
        prog=PROG,
        usage=USAGE,
        description=(
            "Watch <root>/<job_id>/progress.json files and stream every change to WebSocket "
            "clients at /ws/training/{job_id} within milliseconds; REST at /api/jobs. "
            "The sidecar only reads the jobs root."
        ),
        formatter_class=_DefaultsHelpFormatter,
        epilog="progress-sidecar tail JOB_ID [--url URL]: show one job live in the terminal "
        "(see progress-sidecar tail --help). progress-sidecar redis-acl node NAME | gateway: "
        "print the Redis ACL rules of a node's or a gateway's user (docs/cluster.md).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    groups = {title: parser.add_argument_group(title, about) for title, about in _GROUPS.items()}
    groups[WHERE].add_argument(
        "--root",
        type=Path,
        default=env_root(),
        metavar="DIR",
        help=f"the jobs root to watch (or env {ROOT_ENV}); one that does not exist yet is "
        "waited for, with a warning. With --redis and no root, the sidecar is a gateway: it "
        "serves every job of the cluster and watches none",
    )
    groups[WHERE].add_argument(
        "--poll",
        action="store_true",
        help="find changes by stat (for network filesystems) instead of inotify",
    )
    groups[SERVING].add_argument(
        "--host",
        type=listen_host,
        default=defaults.host,
        help="address to listen on (an IP address or a host name; 0.0.0.0: every IPv4 one)",
    )
    groups[CLUSTER].add_argument(
        "--redis",
        type=redis_url,
        action=_Once,
        default=None,  # not the environment's: --help would print it, password and all
        metavar="URL",
        help=f"cluster mode: publish this node's jobs to Redis and serve every node's (or env "
        f"{REDIS_ENV}, which keeps a password out of the process list); {REDIS_URL_FORM}. "
        "Needs the cluster extra: pip install 'progress-sidecar[cluster]'",
    )
    for group, flag, parse, metavar, text in _OPTIONS:
        default = getattr(defaults, _field(flag))
        groups[group].add_argument(flag, type=parse, default=default, metavar=metavar, help=text)
    _add_access(groups[ACCESS])
    groups[LOGGING].add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log (to stderr)",
    )
    return parser


def _add_access(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--token",
        default=None,  # not the environment's: --help would print it
        help=f"require this bearer token on every request (or env {TOKEN_ENV}, which keeps it "
        "out of the process list); default: none",
    )
    group.add_argument(
        "--allowed-origin",
        action="append",
        type=origin,
        default=[],
        metavar="ORIGIN",
        help="let browser pages from ORIGIN (e.g. http://localhost:3000; * for any) in, with "
        "CORS; repeatable. By default only same-origin pages and non-browser clients",
    )
    group.add_argument(
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


def parse_settings(argv: Sequence[str] | None = None) -> tuple[Settings, str]:
    """Settings and log level from the command line; exits 2 with a message on bad input.

    Args:
        argv: the arguments (``sys.argv[1:]`` when None).
    """
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
    if (problem := host_problem(args.host)) is not None:
        parser.error(problem)
    if redis is not None and not _has_redis_client():
        parser.error("--redis needs Redis' client: pip install 'progress-sidecar[cluster]'")
    options = {_field(flag): getattr(args, _field(flag)) for _, flag, *_ in _OPTIONS}
    settings = Settings(
        root=root,
        host=args.host,
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
