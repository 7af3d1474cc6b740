"""The demo's options: one parser, for ``scripts/demo.py`` and for ``scripts/demo``, which runs
this module with the system's Python before it installs anything (``python3 -m
scripts.demo_cli ARGS``), so that ``--help`` and a mistake answer at once. So it imports the
standard library alone, and ``sidecar.core.argtypes``, which needs nothing more."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sidecar.core.argtypes import port, positive_int

DESCRIPTION = (
    "The sidecar with real training: two tiny fine-tuning runs, one of them failing part-way."
)
HELP_SHOWN = 10
"""This module's exit status once it has printed the help: scripts/demo then exits 0 at once."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The demo's options; exits 0 after ``--help``, 2 on a mistake, as argparse does.

    Args:
        argv: the arguments (default: the command line's).
    """
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description=DESCRIPTION,
        epilog="The commands it prints run from a new shell in this directory.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help="the jobs root (default: a new folder for each run: ./jobs/<date>-<time>); with "
        "--cluster, the folder of the nodes' roots: DIR/node-a and DIR/node-b",
    )
    parser.add_argument(
        "--port",
        type=port,
        default=8765,
        help="the sidecar's port; 0: any free one (default: %(default)s); with --cluster, the "
        "gateway's (the nodes take free ones)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=400,
        help="training steps per job (default: %(default)s)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit when both jobs have ended (default: keep serving until Ctrl-C)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run the two jobs on a cluster of this machine (default: one sidecar, no Redis): a "
        "redis-server of the demo's own (apt-get install redis-server), two node sidecars, "
        "node-a and node-b, one job on each, and a gateway on --port that serves both; needs "
        "the cluster extra (scripts/demo --cluster installs it)",
    )
    return parser.parse_args(argv)


def check(argv: Sequence[str]) -> int:
    """What scripts/demo runs first: 0 when the options are valid (the demo may go on),
    HELP_SHOWN once the help is printed, 2 after argparse's error."""
    try:
        parse_args(argv)
    except SystemExit as e:
        if e.code in (0, None):
            return HELP_SHOWN
        return e.code if isinstance(e.code, int) else 2
    return 0


if __name__ == "__main__":
    sys.exit(check(sys.argv[1:]))
