"""The log's filters: secrets hidden in every spelling, floods of like lines held back."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from sidecar.server.logs import FloodFilter, RedactingFilter, redact

TOKEN = "s3cr3t/t0ken+value"


def test_redact_hides_the_token_in_every_spelling() -> None:
    for text in (
        f"GET /api/jobs?token={TOKEN}",
        "GET /api/jobs?token=s3cr3t%2Ft0ken%2Bvalue",
        "GET /api/jobs?x=1&%74oKEN=anything-at-all HTTP/1.1",
        "Authorization: Bearer anything-at-all",
        "Sec-WebSocket-Protocol: bearer, anything-at-all",
        f"b'...{TOKEN}\\x01'",
    ):
        hidden = redact(text, [TOKEN])
        assert "***" in hidden
        assert TOKEN not in hidden and "anything-at-all" not in hidden and "t0ken" not in hidden
    assert redact("/api/jobs?history=1&token=abc&x=1") == "/api/jobs?history=1&token=***&x=1"
    assert redact("job j: invalid json at line 1") == "job j: invalid json at line 1"


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO, list[float]]]:
    """A logger whose handler has both filters, on a clock the test moves."""
    now = [0.0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(FloodFilter(burst=3, window=10.0, clock=lambda: now[0]))
    handler.addFilter(RedactingFilter([TOKEN]))
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream, now
    logger.removeHandler(handler)


def test_the_token_never_leaves_through_a_traceback(
    log: tuple[logging.Logger, io.StringIO, list[float]],
) -> None:
    logger, stream, _now = log
    try:
        raise ValueError(f"Bad status line b'GET /?token={TOKEN} HTTP/1.1'")
    except ValueError:
        logger.exception("error handling request from %s", "127.0.0.1")
    text = stream.getvalue()
    assert "Traceback" in text and "127.0.0.1" in text
    assert TOKEN not in text


def test_a_flood_of_like_lines_is_held_back_and_counted(
    log: tuple[logging.Logger, io.StringIO, list[float]],
) -> None:
    logger, stream, now = log
    for _ in range(100):
        logger.warning("socket.accept() out of system resource (%s)", "EMFILE")
    for job in range(5):  # distinct messages of one template all go through
        logger.warning("job %s: found, pending", job)
    assert stream.getvalue().count("out of system resource") == 3
    now[0] = 11.0
    logger.warning("socket.accept() out of system resource (%s)", "EMFILE")
    lines = stream.getvalue().splitlines()
    assert (
        lines[-1] == "socket.accept() out of system resource (EMFILE) (97 more like it held back)"
    )
    assert all(f"job {job}: found, pending" in lines for job in range(5))
