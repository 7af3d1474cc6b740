"""``progress-sidecar redis-acl``, run as a real subprocess: one line of rules, or a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONSOLE_SCRIPT = Path(sys.executable).with_name("progress-sidecar")
PROG = "progress-sidecar redis-acl"


def redis_acl(
    *args: str, command: tuple[str, ...] = (sys.executable, "-m", "sidecar")
) -> subprocess.CompletedProcess[str]:
    """``redis-acl ARGS``, as ``python -m sidecar`` (or ``command``) runs it."""
    return subprocess.run(
        [*command, "redis-acl", *args], capture_output=True, text=True, timeout=30
    )


def test_redis_acl_node_prints_one_line_of_its_own_rules() -> None:
    result = redis_acl("node", "gpu-1.rack_2")
    assert (result.returncode, result.stderr) == (0, "")
    [line] = result.stdout.splitlines()
    assert result.stdout == line + "\n"
    tokens = line.split()
    assert tokens[:4] == ["resetkeys", "resetchannels", "clearselectors", "-@all"]
    assert "%R~{progress-sidecar}:*" in tokens
    assert "%RW~{progress-sidecar}:node:gpu-1.rack_2:*" in tokens
    assert {"+xadd", "+hset", "+rpush"} <= set(tokens)
    assert not {"+@all", "allkeys", "~*", "allcommands", "nopass", "+flushall"} & set(tokens)


def test_redis_acl_gateway_prints_one_line_that_writes_nothing() -> None:
    result = redis_acl("gateway")
    assert (result.returncode, result.stderr) == (0, "")
    [line] = result.stdout.splitlines()
    tokens = line.split()
    assert tokens[:4] == ["resetkeys", "resetchannels", "clearselectors", "-@all"]
    assert "%R~{progress-sidecar}:*" in tokens
    assert not [t for t in tokens if t.startswith(("%RW~", "%W~", "~", "+@"))], tokens
    assert not {"+xadd", "+set", "+hset", "+del", "+rpush", "+expire"} & set(tokens)


def test_redis_acl_runs_as_the_console_script() -> None:
    if not CONSOLE_SCRIPT.exists():
        pytest.skip(f"{CONSOLE_SCRIPT} is not installed (pip install -e .)")
    script = redis_acl("node", "node-a", command=(str(CONSOLE_SCRIPT),))
    module = redis_acl("node", "node-a")
    assert (script.returncode, script.stderr) == (0, "")
    assert script.stdout == module.stdout


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("node",), f"{PROG} node: error: the following arguments are required: NAME"),
        (("node", "a:b"), f"{PROG} node: error: argument NAME: not a node name: 'a:b'"),
        (("node", "*"), f"{PROG} node: error: argument NAME: not a node name: '*'"),
        (("node", "node-a*"), f"{PROG} node: error: argument NAME: not a node name: 'node-a*'"),
        (("node", "x" * 65), f"{PROG} node: error: argument NAME: not a node name"),
        (("node", ""), f"{PROG} node: error: argument NAME: not a node name: ''"),
        (("wizard",), f"{PROG}: error: argument {{node NAME,gateway}}: invalid choice: 'wizard'"),
        ((), f"{PROG}: error: the following arguments are required: {{node NAME,gateway}}"),
        (("gateway", "node-a"), f"{PROG}: error: unrecognized arguments: node-a"),
        (("node", "a", "b"), f"{PROG}: error: unrecognized arguments: b"),
    ],
)
def test_redis_acl_bad_arguments_are_a_clear_usage_error(args: tuple[str, ...], error: str) -> None:
    """Exit status 2, nothing on stdout, a usage line and one error line naming what is wrong."""
    result = redis_acl(*args)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"usage: {PROG}"), lines
    assert lines[-1].startswith(error), lines
    if "not a node name" in error:
        assert "letters, digits" in lines[-1]


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("node", "--help"), ("gateway", "-h")])
def test_redis_acl_help_exits_0_and_says_what_it_prints(args: tuple[str, ...]) -> None:
    result = redis_acl(*args)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"usage: {PROG}")
    if args[0].startswith("-"):
        assert "ACL SETUSER" in result.stdout and "node" in result.stdout
        assert "gateway" in result.stdout
