from __future__ import annotations

import argparse

import pytest

from sidecar.core.argtypes import port, positive_float, positive_int


def test_good_values() -> None:
    assert (positive_int("3"), positive_float("0.5"), port("0"), port("65535")) == (
        3,
        0.5,
        0,
        65535,
    )


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (positive_int, "0", "must be positive: '0'"),
        (positive_int, "1.5", "not a number: '1.5'"),
        (positive_float, "-1", "must be positive: '-1'"),
        (positive_float, "nan", "not a number: 'nan'"),
        (positive_float, "inf", "must be finite: 'inf'"),
        (positive_float, "1e999", "must be finite: '1e999'"),
        (positive_float, "-inf", "must be positive: '-inf'"),
        (positive_float, "x", "not a number: 'x'"),
        (port, "65536", "must be 0 to 65535: '65536'"),
    ],
)
def test_bad_values(parse: object, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{message}$".replace("(", r"\(")):
        parse(text)  # type: ignore[operator]
