"""Each job's versions: the current one, the ones before it that clients resume from, and the
fan-out of each new one to the job's clients."""

from __future__ import annotations

import itertools

from sidecar.core.codec import JSONObject, decode_document, encode
from sidecar.core.kept_versions import KeptVersions
from sidecar.core.patch import json_equal
from sidecar.core.state import JobState
from sidecar.core.subscription import Channel
from sidecar.core.version import Version, VersionId


class JobVersions:
    """The jobs' channels (a job's state, its version, its clients), by job id.

    Args:
        epoch: the numbering of this sidecar's own versions.
        kept: the versions before the current ones, kept to resume clients from.
    """

    def __init__(self, *, epoch: str, kept: KeptVersions) -> None:
        self.epoch = epoch
        self.channels: dict[str, Channel] = {}
        self.kept = kept
        self._seq = itertools.count(1)
        self.last_change = 0.0
        """When (monotonic clock) a job last got a new version."""

    def put(
        self, state: JobState, *, arrived: float | None = None, name: VersionId | None = None
    ) -> tuple[Version, Version | None] | None:
        """Make ``state`` the job's current state. Returns the job's new version and the one
        before it (None for a new job); None when what clients see did not change. The clients
        are not told yet: ``deliver`` does.

        Args:
            state: the job's new state.
            arrived: when the change reached the sidecar (monotonic clock); now by default.
            name: the version's ``(epoch, seq)``, as the job's owner named it; by default the
                next of this sidecar's own.
        """
        channel = self.channels.get(state.job_id)
        body = state.body()
        if channel is None:
            version = self._version(body, None, name)
            self.channels[state.job_id] = Channel(state.job_id, state, version)
            return version, None
        channel.state = state
        if json_equal(channel.version.body, body) and (name is None or name == channel.version.id):
            return None
        previous = channel.version
        version = channel.version = self._version(body, previous, name)
        self.last_change = version.created  # made now (before ``arrived`` may replace it)
        # Kept encoded: a tenth of the memory.
        self.kept.keep(state.job_id, previous.id, encode(previous.body))
        if arrived is not None:
            version.created = arrived
        return version, previous

    def deliver(self, job_id: str, version: Version, previous: Version) -> None:
        """Tell the job's clients of its new ``version``, which follows ``previous``."""
        for subscription in self.channels[job_id].subscribers:
            subscription.deliver(version, previous)

    def resume_base(self, job_id: str, since: VersionId) -> JSONObject | None:
        """The body of the job's version ``since``: the current one, or one of those kept;
        None when it is neither (too old, or never was)."""
        channel = self.channels.get(job_id)
        if channel is None:
            return None
        if channel.version.id == since:
            return channel.version.body
        body = self.kept.find(job_id, since)
        if body is None:
            return None
        base: JSONObject = decode_document(body)
        return base

    def remove(self, job_id: str) -> Channel | None:
        """Forget a job (None if it was not known); its clients are woken, to see it gone."""
        self.kept.forget(job_id)
        channel = self.channels.pop(job_id, None)
        if channel is not None:
            channel.removed = True
            for subscription in channel.subscribers:
                subscription.wake()
        return channel

    def _version(
        self, body: JSONObject, previous: Version | None, name: VersionId | None
    ) -> Version:
        epoch, seq = name if name is not None else (self.epoch, next(self._seq))
        return Version(seq, body, previous, epoch=epoch)
