"""The hub's indexes over its jobs, so that neither the jobs list nor the stall sweep walks
every job: their ids in order, and the jobs the stall rule can change. Pure.

With 100,000 jobs (most of them pending: directories without a file) a walk of every job costs
tens of ms: the stall sweep made one every second, and the jobs list sorted every id at each
request (docs/reliability.md, "Many jobs").
"""

from __future__ import annotations

from sidecar.core.state import JobState


def stall_candidate(state: JobState, *, own: bool) -> bool:
    """Whether the stall rule can change a job: one of this node's own, with a file, and not
    complete (``state.stall_reason``: a pending or complete job is never stalled)."""
    return own and state.has_file and not state.complete


class JobIndex:
    """Job ids in order, kept as jobs come and go at O(1) each, and the ids of the jobs the
    stall rule can change. Ids that come in order, after every other (a scan's, at start:
    100,000 of them), are appended; others are merged in when the order is next asked for (one
    sort of the ids that came, then of the whole: a merge of two runs)."""

    __slots__ = ("_changes", "_ordered", "_tail", "stall_candidates")

    def __init__(self) -> None:
        self._ordered: list[str] = []
        self._tail: list[str] = []
        """Ids that came after every other, in order, since the order was last made."""
        # Each job added (True) or removed (False) otherwise, the last word for each counting.
        self._changes: dict[str, bool] = {}
        self.stall_candidates: set[str] = set()
        """The jobs the stall rule can change (``stall_candidate``)."""

    def added(self, job_id: str) -> None:
        last = self._tail[-1] if self._tail else self._ordered[-1] if self._ordered else None
        if not self._changes and (last is None or job_id > last):
            self._tail.append(job_id)
        else:
            self._changes[job_id] = True

    def removed(self, job_id: str) -> None:
        self._changes[job_id] = False
        self.stall_candidates.discard(job_id)

    def note(self, job_id: str, state: JobState, *, own: bool) -> None:
        """A job's state (or its owner) changed: it may have become a stall candidate, or
        stopped being one."""
        if stall_candidate(state, own=own):
            self.stall_candidates.add(job_id)
        else:
            self.stall_candidates.discard(job_id)

    def ordered(self) -> list[str]:
        """Every job id, sorted. A new list whenever the jobs changed, never changed after it
        is returned: a listing may go on walking it while jobs come and go."""
        if not self._tail and not self._changes:
            return self._ordered
        ordered = self._ordered + self._tail
        self._tail = []
        if self._changes:
            gone = {job_id for job_id, present in self._changes.items() if not present}
            if gone:
                ordered = [job_id for job_id in ordered if job_id not in gone]
            came = sorted(job_id for job_id, present in self._changes.items() if present)
            self._changes.clear()
            if came:
                ordered += came
                ordered.sort()  # two sorted runs: a merge
                # A job removed and added again since may be there twice.
                ordered = list(dict.fromkeys(ordered))
        self._ordered = ordered
        return ordered
