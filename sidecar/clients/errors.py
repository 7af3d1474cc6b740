"""What following a job raises: one base, ``FollowError``, and a class for each way it fails."""

from __future__ import annotations


class FollowError(Exception):
    """Following a job failed for good: the base of this module's errors."""


class InvalidURL(FollowError, ValueError):
    """The sidecar's URL is not one this client can use."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"invalid sidecar url {url!r}: {reason}")
        self.url = url
        self.reason = reason


class StreamError(FollowError):
    """The server refused the stream for good; ``code`` is the WebSocket close code (403 and
    other HTTP statuses when the opening handshake was refused)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} ({code})")
        self.code = code
        self.reason = reason


class SidecarUnreachable(FollowError):
    """No connection to the sidecar could be made for ``give_up_after`` seconds."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason
