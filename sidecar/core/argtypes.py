"""Argument types for the command lines (the sidecar's and the trainer's): short, clear errors."""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import re
import urllib.parse


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
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    if value == float("inf"):  # an infinite timeout, learning rate or epoch count breaks later
        raise argparse.ArgumentTypeError(f"must be finite: {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = float(_number(float, text))
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
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


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_node_name(text: str) -> bool:
    return _NODE_NAME.fullmatch(text) is not None


def node_name(text: str) -> str:
    """A node's name in a cluster: a letter or digit, then letters, digits, ``.``, ``_`` and
    ``-``, at most 64 in all."""
    if not is_node_name(text):
        shown = repr(text) if len(text) <= 80 else repr(text[:77]) + "..."
        raise argparse.ArgumentTypeError(
            f"not a node name: {shown} (a letter or digit, then letters, digits, '.', '_' and "
            "'-', at most 64 in all)"
        )
    return text


REDIS_URL_FORM = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS) or unix:///PATH"


def redis_url(text: str) -> str:
    """A Redis URL. The error never repeats the text: it may hold a password."""
    value = text.strip()
    if not _is_redis_url(value):
        hint = ""
        if "://" not in value and "@" not in value and _HOST_PORT.fullmatch(value):
            hint = f"; did you mean redis://{value}?"
        raise argparse.ArgumentTypeError(
            f"not a Redis URL (want {REDIS_URL_FORM}; a password with /, # or @ in it is "
            f"written %2F, %23, %40){hint}"
        )
    return value


_HOST_PORT = re.compile(r"[A-Za-z0-9.-]+(:\d+)?(/\d+)?")


def _is_redis_url(text: str) -> bool:
    try:
        url = urllib.parse.urlsplit(text)
        url.port  # noqa: B018 (raises on a port that is not one)
    except ValueError:
        return False
    if url.scheme == "unix":
        return bool(url.path)
    database = url.path.removeprefix("/")
    return (
        url.scheme in ("redis", "rediss")
        and bool(url.hostname)
        and (database == "" or database.isdigit())
    )


DISTRIBUTION = "progress-sidecar"


def version() -> str:
    """This distribution's version, as installed (``unknown`` when it is not: a checkout run
    without an install has no metadata to read); both commands' ``--version``."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"
