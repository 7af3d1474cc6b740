"""``progress-sidecar redis-acl``: print the Redis ACL rules of a node or of a gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sidecar.bus import acl
from sidecar.core.argtypes import node_name

PROG = "progress-sidecar redis-acl"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Print, on one line, the Redis ACL rules a sidecar of that role needs: the tokens "
            "that follow `ACL SETUSER <user> on >PASSWORD`. A node may write only its own keys "
            "and a gateway none; both read every node's."
        ),
        epilog=(
            "Example: redis-cli ACL SETUSER gpu-1 on '>PASSWORD' $(progress-sidecar redis-acl "
            "node gpu-1); then SIDECAR_REDIS_URL=redis://gpu-1:PASSWORD@HOST:6379/0 on node "
            "gpu-1. See docs/cluster.md#acl-users."
        ),
    )
    roles = parser.add_subparsers(dest="role", required=True, metavar="{node NAME,gateway}")
    node = roles.add_parser("node", help="the rules of the sidecar of node NAME (its --node)")
    node.add_argument("name", type=node_name, metavar="NAME", help="the node's --node")
    roles.add_parser("gateway", help="the rules of a gateway (--redis without --root)")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    print(acl.rules(args.role, args.name if args.role == acl.NODE else None))
    sys.stdout.flush()
    return 0
