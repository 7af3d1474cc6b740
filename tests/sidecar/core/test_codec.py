from __future__ import annotations

import pytest

from sidecar.core.codec import decode_document, encode


def test_decode_turns_nan_and_infinity_into_none() -> None:
    assert decode_document(b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e999, "e": 1.5}') == {
        "a": None,
        "b": None,
        "c": None,
        "d": None,
        "e": 1.5,
    }


def test_decode_accepts_a_utf8_bom() -> None:
    assert decode_document('\ufeff{"a": "é"}'.encode()) == {"a": "é"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": "\xff"}', "not utf-8 (byte 7)"),
        (b'{"a": 1', "invalid json: Expecting ',' delimiter at line 1 column 8"),
        (b"[" * 100_000 + b"]" * 100_000, "nesting too deep (over 64 levels)"),
        (b"[" * 65 + b"]" * 65, "nesting too deep (over 64 levels)"),
    ],
)
def test_decode_errors_are_short_and_clear(data: bytes, message: str) -> None:
    with pytest.raises(
        ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"
    ):
        decode_document(data)


def test_encode_is_compact_strict_utf8() -> None:
    assert encode({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()
    with pytest.raises(ValueError, match="Out of range float values"):
        encode({"a": float("nan")})
