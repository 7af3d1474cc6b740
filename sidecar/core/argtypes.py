"""Argument types for the command lines (the sidecar's and the trainer's): short, clear errors."""

from __future__ import annotations

import argparse
import re


def _number(kind: type[int] | type[float], text: str) -> int | float:
    try:
        return kind(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from e


def positive_int(text: str) -> int:
    value = int(_number(int, text))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def positive_float(text: str) -> float:
    value = float(_number(float, text))
    if not value > 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def port(text: str) -> int:
    value = int(_number(int, text))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535: {text!r}")
    return value


_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


def host_name(text: str) -> str:
    """A name clients reach a server by (``train.example``, ``10.0.0.5``, ``[::1]``), no port."""
    name = text.strip().lower()
    if not _HOST_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"not a host name: {text!r} (give the name alone, e.g. train.example)"
        )
    return name


_ORIGIN = re.compile(r"https?://[^/\s?#]+")


def origin(text: str) -> str:
    """A browser origin: ``scheme://host[:port]``, no path; or ``*``."""
    value = text.strip().rstrip("/")
    if value != "*" and not _ORIGIN.fullmatch(value.lower()):
        raise argparse.ArgumentTypeError(
            f"not an origin: {text!r} (want scheme://host[:port], e.g. http://localhost:3000, or *)"
        )
    return value
