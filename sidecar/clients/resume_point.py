"""The client's side of a resumable stream: the job's state as the messages build it, kept
across connections, with the version a reconnection resumes from (``since=EPOCH:SEQ``)."""

from __future__ import annotations

from collections.abc import Callable

from sidecar.core.codec import JSONObject
from sidecar.core.patch import apply_merge_patch
from sidecar.core.protocol import ENVELOPE_KEYS, LOG, PATCH, RESUMED, SNAPSHOT, is_epoch
from sidecar.core.version import VersionId

LogCallback = Callable[[list[JSONObject], bool], None]
"""Called with each batch of history entries, and whether it replaces all earlier ones (after a
reconnection the first batch is the whole history again, and replaces them)."""


def version_of(message: JSONObject) -> VersionId | None:
    """The ``(epoch, seq)`` a message names, if it names one a ``since`` can carry (a sidecar
    before resumption sends no epoch)."""
    epoch, seq = message.get("epoch"), message.get("seq")
    if not isinstance(epoch, str) or not is_epoch(epoch):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 10**18:
        return None
    return epoch, seq


class ResumePoint:
    """The job's merged state and its version, across the connections of one ``follow_job``.

    Args:
        on_log: receives the history entries of ``log`` messages (see ``LogCallback``).
    """

    def __init__(self, on_log: LogCallback | None = None) -> None:
        self.state: JSONObject | None = None
        """The job's whole state, once a message gave one."""
        self.version: VersionId | None = None
        """The version of ``state``, once a message named one: what to resume from."""
        self._on_log = on_log
        self._logged = False  # on_log has been called
        self._first_state = self._first_log = True  # the connection's first messages

    @property
    def log_due(self) -> bool:
        """Whether this connection's history (its first ``log``) is still to come."""
        return self._on_log is not None and self._first_log

    def connected(self) -> None:
        """A new connection opened: its first messages start over."""
        self._first_state = self._first_log = True

    def take(self, message: JSONObject) -> JSONObject | None:
        """Merge one decoded message (its envelope's keys are removed from it); returns the
        state after it, or None for a history (``log``) message."""
        kind = message.get("type")
        named = version_of(message)
        resumed = message.get(RESUMED) is True
        for key in ENVELOPE_KEYS:
            message.pop(key, None)
        if kind == LOG:
            if self._on_log is not None:
                # A connection's first log has the whole history: after a reconnection it
                # replaces what the earlier ones had.
                reset = bool(message.get("reset")) or (self._first_log and self._logged)
                self._on_log(message.get("entries", []), reset)
                self._first_log, self._logged = False, True
            return None
        # A patch applies to the state held, but on a connection that does not resume from it:
        # there the first patch must say ``resumed``.
        onto = self.state if not self._first_state or (kind == PATCH and resumed) else None
        state = message if kind == SNAPSHOT or onto is None else apply_merge_patch(onto, message)
        assert isinstance(state, dict)
        self.state, self.version = state, named
        self._first_state = False
        return state
