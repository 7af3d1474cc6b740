"""The kernel's TCP counters (``/proc/net/netstat``, ``/proc/net/snmp``) read before and after a
connection storm: listen-queue overflows and drops, SYN retransmissions, resets. They count for
the whole network namespace: anything else connecting meanwhile counts too."""

from __future__ import annotations

from pathlib import Path

WATCHED = (
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPSynRetrans",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.SyncookiesSent",
    "TcpExt.TCPBacklogDrop",
    "TcpExt.TCPTimeouts",
    "Tcp.ActiveOpens",
    "Tcp.PassiveOpens",
    "Tcp.AttemptFails",
    "Tcp.EstabResets",
    "Tcp.RetransSegs",
    "Tcp.OutRsts",
)
"""The counters a storm is judged by (``Group.Name``)."""
SOURCES = (Path("/proc/net/netstat"), Path("/proc/net/snmp"))


def parse_counters(text: str) -> dict[str, int]:
    """``Group.Name``: value, from the header-and-values line pairs of netstat/snmp text."""
    counters: dict[str, int] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        group, _, names = header.partition(":")
        value_group, _, numbers = values.partition(":")
        if group != value_group:
            continue
        for name, number in zip(names.split(), numbers.split(), strict=False):
            try:
                counters[f"{group}.{name}"] = int(number)
            except ValueError:
                continue
    return counters


def read_counters() -> dict[str, int]:
    """Every counter of the sources (none where they cannot be read: not Linux)."""
    counters: dict[str, int] = {}
    for source in SOURCES:
        try:
            counters.update(parse_counters(source.read_text()))
        except OSError:
            continue
    return counters


def counters_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """How much each watched counter grew (those the kernel has)."""
    return {
        name: after[name] - before[name] for name in WATCHED if name in before and name in after
    }
