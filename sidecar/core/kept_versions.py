"""The versions kept to resume clients from, on a budget in bytes. Pure.

A client that reconnects with ``?since=EPOCH:SEQ`` gets one patch from that version to the
current one while the version is kept, a snapshot otherwise. Each kept version costs its encoded
body and some bookkeeping; the store keeps at most ``depth`` versions of a job, at most
``job_bytes`` of them, and at most ``total_bytes`` of all jobs together: past any of these the
oldest go first (across all jobs, for the total). Keeping a version costs O(1), amortized.
"""

from __future__ import annotations

import collections

from sidecar.core.version import VersionId

RESUME_DEPTH = 100
"""Versions of a job kept to resume a client from (``?since=EPOCH:SEQ``), the current one
included."""
RESUME_BYTES_PER_JOB = 4 << 20
"""Bytes of one job's kept versions: a hundred versions of a document of 40 KB, or four of one
of 1 MiB (the largest a progress file may be by default)."""
RESUME_BYTES = 64 << 20
"""Bytes of every job's kept versions together."""
VERSION_OVERHEAD = 200
"""Bytes a kept version costs beyond its body: the bytes object's header, its name (a tuple of
the epoch and an int) and the slots that order it (measured with tracemalloc: about 190)."""


class _Kept:
    """One job's kept versions, oldest first, and how many slots of the global order it has
    (a slot whose version went already, by the job's own limits, stays there until reached)."""

    __slots__ = ("job_id", "size", "slots", "versions")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.versions: collections.deque[tuple[VersionId, bytes]] = collections.deque()
        self.size = 0
        self.slots = 0


class KeptVersions:
    """Every job's kept versions (their encoded bodies), by job, within the budgets.

    Args:
        depth: versions kept per job.
        job_bytes: bytes kept per job (bodies and bookkeeping).
        total_bytes: bytes kept in all.
    """

    def __init__(
        self,
        *,
        depth: int = RESUME_DEPTH,
        job_bytes: int = RESUME_BYTES_PER_JOB,
        total_bytes: int = RESUME_BYTES,
    ) -> None:
        self.depth = depth
        self.job_bytes = job_bytes
        self.total_bytes = total_bytes
        self.size = 0
        """The bytes kept in all (bodies and bookkeeping)."""
        self._jobs: dict[str, _Kept] = {}
        # One slot per version kept, in the order kept: the oldest of all is at the left. A
        # slot is its job's; its version may have gone already (the job's own limits, the job
        # removed): such slots are skipped when reached, and swept out when they pile up.
        self._order: collections.deque[_Kept] = collections.deque()
        self._count = 0

    def __len__(self) -> int:
        """Versions kept in all."""
        return self._count

    def keep(self, job_id: str, name: VersionId, body: bytes) -> None:
        """Keep a version of a job, making room as the budgets require (a body larger than a
        job's budget is not kept)."""
        cost = len(body) + VERSION_OVERHEAD
        if cost > min(self.job_bytes, self.total_bytes) or self.depth <= 0:
            return
        kept = self._jobs.get(job_id)
        if kept is None:
            kept = self._jobs[job_id] = _Kept(job_id)
        kept.versions.append((name, body))
        kept.size += cost
        kept.slots += 1
        self._order.append(kept)
        self.size += cost
        self._count += 1
        while len(kept.versions) > self.depth or kept.size > self.job_bytes:
            self._drop_oldest(kept)
        while self.size > self.total_bytes:
            self._drop_oldest_of_all()
        if len(self._order) > 2 * self._count + 1024:
            self._sweep()

    def find(self, job_id: str, name: VersionId) -> bytes | None:
        """The body of a job's version ``name``, if it is kept."""
        kept = self._jobs.get(job_id)
        if kept is None:
            return None
        for kept_name, body in reversed(kept.versions):
            if kept_name == name:
                return body
        return None

    def forget(self, job_id: str) -> None:
        """The job is gone: its versions go (their slots are skipped when reached)."""
        kept = self._jobs.pop(job_id, None)
        if kept is not None:
            self.size -= kept.size
            self._count -= len(kept.versions)
            kept.versions.clear()
            kept.size = 0

    def _drop_oldest(self, kept: _Kept) -> None:
        _name, body = kept.versions.popleft()
        cost = len(body) + VERSION_OVERHEAD
        kept.size -= cost
        self.size -= cost
        self._count -= 1
        if not kept.versions and self._jobs.get(kept.job_id) is kept:
            del self._jobs[kept.job_id]  # its slots left are skipped when reached

    def _drop_oldest_of_all(self) -> None:
        kept = self._order.popleft()
        # Each of a job's versions has its slot, and its slots are its latest: the slot at the
        # left is its oldest version's if the job has as many versions as slots; otherwise that
        # version went already.
        if kept.slots == len(kept.versions):
            self._drop_oldest(kept)
        kept.slots -= 1

    def _sweep(self) -> None:
        """Drop the slots of versions gone (amortized O(1): there are as many as live ones)."""
        dead: dict[_Kept, int] = {}
        live: collections.deque[_Kept] = collections.deque()
        for kept in self._order:
            skip = dead.setdefault(kept, kept.slots - len(kept.versions))
            if skip > 0:
                dead[kept] = skip - 1
            else:
                live.append(kept)
        for kept in self._jobs.values():
            kept.slots = len(kept.versions)
        self._order = live
