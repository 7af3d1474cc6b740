"""The Python client's URLs: what a user types, and the stream URL built from it."""

from __future__ import annotations

import pytest

from sidecar.clients.follow import FollowError, InvalidURL, sidecar_url, ws_url


def test_ws_url() -> None:
    assert ws_url("http://h:1/", "j") == "ws://h:1/ws/training/j"
    assert ws_url("https://h", "j", history=True) == "wss://h/ws/training/j?history=1"
    assert ws_url("h:1", "a/b?c") == "ws://h:1/ws/training/a%2Fb%3Fc"


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("//127.0.0.1:8765/", "http://127.0.0.1:8765"),
        ("localhost", "http://localhost"),
        ("[::1]:8765", "http://[::1]:8765"),
        ("HTTP://Train.Example:8765/", "http://train.example:8765"),
        ("https://train.example/sidecar/", "https://train.example/sidecar"),
        ("ws://h:1", "http://h:1"),
        ("wss://h", "https://h"),
    ],
)
def test_sidecar_url_takes_host_port_and_the_web_schemes(typed: str, url: str) -> None:
    assert sidecar_url(typed) == url


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("ftp://x", "scheme 'ftp' not supported: use http or https"),
        ("ftp:x", "want http://host:port"),
        ("", "want http://host:port"),
        ("not a url", "want http://host:port"),
        ("http://", "no host"),
        ("http://h:99999", "port out of range 0-65535"),
        ("http://u:p@h", "want http://host:port, without credentials, query or fragment"),
        ("http://h/?token=x", "want http://host:port, without credentials, query or fragment"),
    ],
)
def test_sidecar_url_refuses_other_schemes_and_garbage(typed: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as refused:
        sidecar_url(typed)
    assert str(refused.value) == f"invalid sidecar url {typed!r}: {reason}"
    assert isinstance(refused.value, FollowError) and isinstance(refused.value, ValueError)


def test_ws_url_carries_since_with_the_other_parameters() -> None:
    assert ws_url("h:1", "j", since=("0195f3a2b1c4d5e6f7", 12)) == (
        "ws://h:1/ws/training/j?since=0195f3a2b1c4d5e6f7:12"
    )
    assert ws_url("https://h/p", "a b", history=True, since=("e_-1", 0)) == (
        "wss://h/p/ws/training/a%20b?history=1&since=e_-1:0"
    )
