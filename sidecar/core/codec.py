"""Strict JSON in and out: what the sidecar reads from files and writes to clients."""

from __future__ import annotations

import json
import math
from typing import Any, TypeAlias

JSONValue: TypeAlias = Any
"""A value that came out of ``json.loads``: dict, list, str, int, float, bool or None."""
JSONObject: TypeAlias = dict[str, JSONValue]


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _constant_to_none(_name: str) -> None:
    # NaN, Infinity and -Infinity are not JSON; browsers' JSON.parse rejects them.
    return None


def decode_document(data: bytes) -> JSONValue:
    """Parse UTF-8 JSON bytes; NaN, Infinity and numbers too large for a float become None.

    Raises:
        ValueError: the bytes are not UTF-8 or not JSON (also for nesting too deep to parse).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"not utf-8 (byte {e.start})") from e
    try:
        return json.loads(text, parse_constant=_constant_to_none, parse_float=_finite_or_none)
    except RecursionError as e:
        raise ValueError("nesting too deep") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid json: {e.msg} at line {e.lineno} column {e.colno}") from e


def encode(value: JSONValue) -> bytes:
    """Serialise to compact, strict JSON (never NaN or Infinity) as UTF-8 bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode_with_list(value: JSONObject, key: str, encoded_items: list[bytes]) -> bytes:
    """``encode(value)`` with one more member, ``key``, a list of items already encoded: kept
    as bytes (history entries), they are joined, not decoded and encoded again."""
    head = encode(value)
    separator = b"," if value else b""
    items = b",".join(encoded_items)
    return b"".join((head[:-1], separator, encode(key), b":[", items, b"]}"))


def drop_nulls(value: JSONValue) -> JSONValue:
    """Remove null members from every object, recursively; arrays keep their nulls.

    A JSON Merge Patch (RFC 7386) cannot set a member to null, only remove it, so the sidecar's
    state never holds null members: absent and null mean the same thing to a client.
    """
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value
