"""One state of a job as clients receive it: numbered, diffed against the one before, and
encoded once for every client."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from sidecar.core.codec import JSONObject, encode, encode_with_list
from sidecar.core.patch import merge_patch
from sidecar.core.protocol import LOG, PATCH, RESUMED, SNAPSHOT, MessageType, envelope

DirectSend = Callable[["Version", "Version"], bool]
"""``direct(new, previous)`` writes the patch from ``previous`` to ``new`` now; False if it cannot."""

VersionId = tuple[str, int]
"""``(epoch, seq)``: a version's name, the same on every sidecar that serves the job."""


def new_epoch() -> str:
    """A fresh epoch: the time in hexadecimal milliseconds (so that a later sidecar's sorts
    after), then random hex, so that two sidecars started in the same millisecond differ."""
    return f"{int(time.time() * 1000):011x}{secrets.token_hex(3)}"


class Version:
    """One state of a job as sent to clients, named by ``(epoch, seq)``."""

    __slots__ = (
        "_patch",
        "_previous_body",
        "_previous_id",
        "_snapshot",
        "body",
        "complete",
        "created",
        "epoch",
        "index",
        "seq",
    )

    def __init__(
        self, seq: int, body: JSONObject, previous: Version | None, *, epoch: str = "0"
    ) -> None:
        self.epoch = epoch
        self.seq = seq
        self.body = body
        # The how-manieth state of its job: a jump in ``index`` counts the states skipped.
        self.index: int = previous.index + 1 if previous is not None else 0
        self.created = time.monotonic()
        self.complete = body.get("complete") is True
        self._previous_body = previous.body if previous is not None else None
        self._previous_id = previous.id if previous is not None else None
        self._snapshot: bytes | None = None
        self._patch: bytes | None = None

    def snapshot_frame(self) -> bytes:
        """The whole state as a ``snapshot`` message."""
        if self._snapshot is None:
            self._snapshot = encode(self._envelope(SNAPSHOT, self.body))
        return self._snapshot

    @property
    def id(self) -> VersionId:
        return self.epoch, self.seq

    def patch_frame(self, since: Version) -> bytes:
        """A ``patch`` message that turns the state of ``since`` into this one."""
        if since.id == self._previous_id:
            if self._patch is None:
                assert self._previous_body is not None
                self._patch = encode(
                    self._envelope(PATCH, merge_patch(self._previous_body, self.body))
                )
                self._previous_body = None  # the cached frame is all that is needed from now on
            return self._patch
        # A client that skipped states: its own patch, built once for it.
        return encode(self._envelope(PATCH, merge_patch(since.body, self.body)))

    def resume_frame(self, since: JSONObject) -> bytes:
        """The ``patch`` message, ``resumed: true``, that turns an earlier state (``since``, a
        body) into this one: the first message of a client that resumes."""
        return encode(self._envelope(PATCH, {RESUMED: True, **merge_patch(since, self.body)}))

    def log_frame(self, entries: list[bytes], *, reset: bool = False) -> bytes:
        """A ``log`` message carrying history entries (already encoded), at this version."""
        return encode_with_list(
            self._envelope(LOG, {"reset": True} if reset else {}), "entries", entries
        )

    def _envelope(self, kind: MessageType, fields: JSONObject) -> JSONObject:
        return envelope(
            kind,
            job_id=self.body["job_id"],
            epoch=self.epoch,
            seq=self.seq,
            timestamp=self.body["timestamp"],
            fields=fields,
        )
