"""JSON Merge Patch (RFC 7386): compute the patch between two objects, and apply one."""

from __future__ import annotations

from sidecar.core.codec import JSONObject, JSONValue


def json_equal(a: JSONValue, b: JSONValue) -> bool:
    """Equality as JSON sees it: ``1`` differs from ``true``, ``1`` equals ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def merge_patch(old: JSONObject, new: JSONObject) -> JSONObject:
    """The smallest merge patch that turns ``old`` into ``new``.

    Neither object may hold null members (RFC 7386 reads null as "remove"); see
    ``codec.drop_nulls``.
    """
    patch: JSONObject = {key: None for key in old.keys() - new.keys()}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
            continue
        before = old[key]
        if json_equal(before, value):
            continue
        if isinstance(before, dict) and isinstance(value, dict):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch


def apply_merge_patch(target: JSONValue, patch: JSONValue) -> JSONValue:
    """Apply ``patch`` to ``target`` as RFC 7386 section 2 describes; returns a new value."""
    if not isinstance(patch, dict):
        return patch
    result: JSONObject = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
