"""The sidecar's log: to stderr, with secrets redacted and floods of like lines held back.

Both are filters on the handler, so they see every record that reaches it, aiohttp's and
asyncio's included, with its traceback already formatted.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

from aiohttp import web

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
MIN_SECRET_LENGTH = 6

# ``token=`` in a query, spelled in any mix of plain and percent-encoded letters, and a bearer
# header or subprotocol: what follows them is a secret, whatever the token is.
_LETTERS = "".join(f"(?:{c}|%{ord(c):02x})" for c in "token")
_SECRET_PATTERNS = (
    re.compile(rf"(?i)((?:[?&;]|%3f|%26){_LETTERS}(?:=|%3d))[^&\s\"'\\]*"),
    re.compile(r"(?i)(\bbearer(?:\s+|,\s*|%20|%2c))[^\s,\"'\\]+"),
)


def redact_query(request: web.BaseRequest) -> str:
    """A request's path and query as the server understood them, with the token's value hidden
    (``?%74oken=`` is ``?token=`` to the server, and hidden as well)."""
    if not request.query:
        return request.path
    pairs = [
        f"{key}={MASK if key.lower() == 'token' else value}" for key, value in request.query.items()
    ]
    return f"{request.path}?{'&'.join(pairs)}"


_URL_PASSWORD = re.compile(r"(://[^\s/@:\[]*:)[^\s/@\]]*@")


def redact_urls(text: str) -> str:
    """``text`` with the password of every URL in it hidden (``redis://:***@host``)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret (in plain and URL-encoded spellings) and every token-shaped
    value hidden."""
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH:
            continue  # too short to find without mangling the line; the patterns still apply
        for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(spelling, MASK)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(rf"\g<1>{MASK}", text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and traceback with secrets hidden.

    Args:
        secrets: values never to write (the token).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


class FloodFilter(logging.Filter):
    """Lets at most ``burst`` like records (same logger, level and message) through per
    ``window`` seconds; the first one after a held-back run says how many were held back.
    Distinct messages (one per job, say) are never held back by each other.

    Args:
        burst: records of one kind let through per window.
        window: seconds.
        clock: the monotonic clock.
    """

    def __init__(
        self, *, burst: int = 10, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        # kind -> [window start, records let through in it, records held back since]
        self._kinds: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, record.getMessage())
        now = self._clock()
        counts = self._kinds.get(kind)
        if counts is None or now - counts[0] >= self.window:
            held = int(counts[2]) if counts is not None else 0
            self._kinds[kind] = [now, 1, 0]
            if len(self._kinds) > 1000:  # never grow unbounded: forget all but this one
                self._kinds = {kind: self._kinds[kind]}
            if held:
                record.msg = f"{record.getMessage()} ({held} more like it held back)"
                record.args = None
            return True
        if counts[1] < self.burst:
            counts[1] += 1
            return True
        counts[2] += 1
        return False


def configure(level: str, *, secrets: Iterable[str] = ()) -> None:
    """Log to stderr at ``level``, through both filters."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(FloodFilter())
    handler.addFilter(RedactingFilter(secrets))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if level != "debug":
        # watchfiles says "N changes detected" at info level for every batch.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
    # redis-py's debug lines are its own internals (features Redis 7.0 does not have...).
    logging.getLogger("redis").setLevel(logging.INFO)
