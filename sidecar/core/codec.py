"""Strict JSON in and out: what the sidecar reads from files and Redis and writes to clients.

``decode_document`` is the one boundary every outside value passes (progress files, history
lines, bus entries): what comes out of it is safe for everything past it. Its rules
(docs/reliability.md, "The boundary"):

- bytes that are not UTF-8, or not JSON, are refused (``ValueError``, a short reason);
- nesting deeper than ``MAX_DEPTH`` is refused;
- a lone surrogate escape (``"\\ud800"``: JSON's grammar allows it, UTF-8 cannot carry it) is
  replaced by U+FFFD, in strings and in keys, so that the text stays shown (a failed job's
  error that names a path which is not UTF-8 must still show the job failed);
- NaN, Infinity and numbers a float cannot hold become null; an integer beyond 2**63 becomes
  the float nearest it (as a browser reads it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, Final, TypeAlias

JSONValue: TypeAlias = Any
"""A value that came out of ``decode_document``: dict, list, str, int, float, bool or None."""
JSONObject: TypeAlias = dict[str, JSONValue]

MAX_DEPTH: Final = 64
"""The deepest nesting of arrays and objects a document may have (a progress file is two or
three levels deep); deeper is refused."""
REPLACEMENT: Final = "\ufffd"
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_INT_LIMIT: Final = 1 << 63
_MAX_INT_DIGITS: Final = 18
"""Integers of this many characters or fewer are below 2**63: no check needed."""
_FLOAT_DIGITS: Final = 400
"""Integers longer than this are past the largest float (about 1.8e308)."""
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
"""Where a surrogate can come from in JSON text: raw UTF-8 cannot carry one (it is refused)."""


class TooDeep(ValueError):
    """A document nested deeper than ``MAX_DEPTH``."""


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _bounded_int(text: str) -> int | float | None:
    if len(text) <= _MAX_INT_DIGITS:
        return int(text)
    if len(text) > _FLOAT_DIGITS:
        return None  # past any float, and int() would refuse it past 4,300 digits
    value = int(text)
    if -_INT_LIMIT <= value < _INT_LIMIT:
        return value
    as_float = float(text)
    return as_float if math.isfinite(as_float) else None


def _constant_to_none(_name: str) -> None:
    # NaN, Infinity and -Infinity are not JSON; browsers' JSON.parse rejects them.
    return None


def safe_text(text: str) -> str:
    """``text`` with every surrogate code point (only a lone one can be in a ``str``) replaced
    by U+FFFD, so that it encodes as UTF-8."""
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def sanitize(value: JSONValue, *, max_depth: int = MAX_DEPTH) -> JSONValue:
    """``value`` made safe to keep and encode: surrogates replaced, non-finite floats and ints
    a float cannot hold nulled, depth checked; tuples become lists, other types raise.

    Raises:
        TooDeep: nested deeper than ``max_depth``.
        TypeError: a value JSON has no type for.
    """
    return _sanitize(value, max_depth)


def _sanitize(value: JSONValue, depth: int) -> JSONValue:
    if isinstance(value, str):
        return safe_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_INT_LIMIT <= value < _INT_LIMIT:
            return value
        return _bounded_int(str(value)) if value.bit_length() < 1100 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth <= 0:
        raise TooDeep(f"nesting too deep (over {MAX_DEPTH} levels)")
    if isinstance(value, dict):
        return {safe_text(str(k)): _sanitize(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitize(v, depth - 1) for v in value]
    raise TypeError(f"not a json value: {type(value).__name__}")


def decode_document(data: bytes, *, max_depth: int = MAX_DEPTH) -> JSONValue:
    """Parse UTF-8 JSON bytes from outside into a value that is safe to keep and encode.

    Raises:
        ValueError: the bytes are not UTF-8, not JSON, or nested deeper than ``max_depth``
            (``TooDeep``).
    """
    text = _text(data, "utf-8-sig")
    value = _loads(text, _constant_to_none, _finite_or_none, _bounded_int)
    if _SURROGATE_ESCAPE.search(text):
        return _sanitize(value, max_depth)
    _check_depth(value, max_depth)  # the hooks did the rest: no copy needed
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON has")


def _strict_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"a number past a float's range: {text[:20]}")
    return value


def _strict_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS + 1:
        raise ValueError(f"an integer of {len(text)} digits")
    value = int(text)
    if not -_INT_LIMIT <= value < _INT_LIMIT:
        raise ValueError("an integer past 2**63")
    return value


def decode_strict(data: bytes, *, max_depth: int = MAX_DEPTH) -> JSONValue:
    """Parse what this project's own code wrote (a bus entry): what ``encode`` never writes
    is refused, not repaired. Besides ``decode_document``'s refusals: any surrogate escape,
    NaN and Infinity, a float past its range, an integer past 2**63, a byte-order mark.

    Raises:
        ValueError: the bytes are not such JSON (the reason says why).
    """
    text = _text(data, "utf-8")
    if _SURROGATE_ESCAPE.search(text):
        raise ValueError("a surrogate escape (text that is not encodable as UTF-8)")
    value = _loads(text, _refuse_constant, _strict_float, _strict_int)
    _check_depth(value, max_depth)
    return value


def _text(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"not utf-8 (byte {e.start})") from None


def _loads(
    text: str,
    constant: Callable[[str], Any],
    number: Callable[[str], Any],
    integer: Callable[[str], Any],
) -> JSONValue:
    """``json.loads`` with these hooks, its failures as ``ValueError`` (``TooDeep``)."""
    try:
        return json.loads(text, parse_constant=constant, parse_float=number, parse_int=integer)
    except RecursionError:
        raise TooDeep(f"nesting too deep (over {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid json: {e.msg} at line {e.lineno} column {e.colno}") from None


def _check_depth(value: JSONValue, depth: int) -> None:
    kind = type(value)
    if kind is not dict and kind is not list:
        return
    if depth <= 0:
        raise TooDeep(f"nesting too deep (over {MAX_DEPTH} levels)")
    for item in value.values() if kind is dict else value:
        if type(item) is dict or type(item) is list:
            _check_depth(item, depth - 1)


def encode(value: JSONValue) -> bytes:
    """Serialise to compact, strict JSON (never NaN or Infinity) as UTF-8 bytes.

    What passed ``decode_document`` encodes as it is; a lone surrogate that reached here some
    other way is replaced by U+FFFD rather than raising (a frame is never lost to one).
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text).encode()


def encode_with_list(value: JSONObject, key: str, encoded_items: list[bytes]) -> bytes:
    """``encode(value)`` with one more member, ``key``, a list of items already encoded: kept
    as bytes (history entries), they are joined, not decoded and encoded again.

    Only bytes that ``encode`` made (history entries, each one decoded and encoded again at the
    boundary: ``decode_entry``) may be joined here: never text from outside as it came.
    """
    head = encode(value)
    separator = b"," if value else b""
    items = b",".join(encoded_items)
    return b"".join((head[:-1], separator, encode(key), b":[", items, b"]}"))


def decode_entry(data: bytes, *, strict: bool = False) -> bytes:
    """One history entry from outside (a metrics.jsonl line; ``strict``: a Redis list item,
    through ``decode_strict``), checked and encoded again by ``encode``: the only bytes
    ``encode_with_list`` may join.

    Raises:
        ValueError: it is not a JSON object (the reason says why).
    """
    value = decode_strict(data) if strict else decode_document(data)
    if not isinstance(value, dict):
        raise ValueError("not a json object")
    return encode(value)


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
