"""The state of one job as clients see it, and the rules that derive it: pure, no I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sidecar.core.codec import JSONObject, drop_nulls
from sidecar.core.contract import is_terminal, isoformat_utc
from sidecar.core.protocol import ENVELOPE_KEYS

DERIVED_KEYS = ("node", "complete", "stalled", "stall_reason", "read_error")
"""Keys the sidecar sets; the same keys in a progress file are dropped."""

PENDING_DOCUMENT: JSONObject = {"status": "pending"}
"""The document of a job without a file; shared (the file source hands this very dict for
every pending job it finds), so never changed."""

SUMMARY_KEYS = (
    "current_step",
    "total_steps",
    "loss",
    "eval_loss",
    "final_loss",
    "eta_seconds",
    "error",
    "started_at",
)
"""Keys of the file that the jobs list shows too, when the file has them."""


@dataclass(frozen=True, slots=True)
class JobState:
    """What the sidecar knows of one job.

    Args:
        job_id: the job's id, as in its path.
        document: the last good content of progress.json, null members dropped; ``{"status":
            "pending"}`` while the job has no readable file yet.
        modified_at: POSIX mtime of the file behind ``document`` (of the job directory while
            the job has no file).
        has_file: whether ``document`` came from a progress file.
        stall_reason: why the job is stalled (its trainer process exited, or its file has not
            changed for the stall timeout) while it is not complete; None when it is not.
        read_error: why the latest read of the file failed; None once a read succeeds.
        node: the node the job runs on (its owner: the sidecar that reads its file).
    """

    job_id: str
    document: JSONObject
    modified_at: float
    has_file: bool
    stall_reason: str | None = None
    read_error: str | None = None
    node: str = ""

    @property
    def complete(self) -> bool:
        return is_terminal(self.document.get("status"))

    @property
    def stalled(self) -> bool:
        return self.stall_reason is not None

    @property
    def trainer_process(self) -> tuple[int, str] | None:
        """The ``pid`` and ``hostname`` the file names, when it names both."""
        pid, host = self.document.get("pid"), self.document.get("hostname")
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and isinstance(host, str):
            return pid, host
        return None

    def body(self) -> JSONObject:
        """The flat object clients receive, less the envelope's ``type`` and ``seq``."""
        body = {
            k: v
            for k, v in self.document.items()
            if k not in ENVELOPE_KEYS and k not in DERIVED_KEYS
        }
        body["job_id"] = self.job_id
        body["node"] = self.node
        if "timestamp" not in body:
            body["timestamp"] = isoformat_utc(self.modified_at)
        body["complete"] = self.complete
        body["stalled"] = self.stalled
        if self.stall_reason is not None:
            body["stall_reason"] = self.stall_reason
        if self.read_error is not None:
            body["read_error"] = self.read_error
        return body

    def summary(self) -> JSONObject:
        """The job's line in ``GET /api/jobs`` and ``/ws/jobs``."""
        summary: JSONObject = {
            "job_id": self.job_id,
            "node": self.node,
            "status": self.document.get("status"),
            "progress": self.document.get("progress"),
            "complete": self.complete,
            "stalled": self.stalled,
            "updated_at": isoformat_utc(self.modified_at),
        }
        for key in SUMMARY_KEYS:
            if key in self.document:
                summary[key] = self.document[key]
        if self.stall_reason is not None:
            summary["stall_reason"] = self.stall_reason
        if self.read_error is not None:
            summary["read_error"] = self.read_error
        return summary


def pending_state(job_id: str, *, modified_at: float) -> JobState:
    """A job whose directory exists but whose progress file does not (yet)."""
    return JobState(job_id, dict(PENDING_DOCUMENT), modified_at, has_file=False)


def with_document(
    job_id: str,
    document: JSONObject,
    *,
    modified_at: float,
    now: float,
    stall_after: float,
) -> JobState:
    """The state after a good read of the job's file."""
    state = JobState(job_id, drop_nulls(document), modified_at, has_file=True)
    return with_stall(state, now=now, stall_after=stall_after)


def with_read_error(previous: JobState, reason: str) -> JobState:
    """The state after a failed read: the last good document stays, the reason is shown."""
    return dataclasses.replace(previous, read_error=reason)


PROCESS_EXITED = "process exited"
NODE_LOST = "node lost"


def stall_reason(
    state: JobState, *, now: float, stall_after: float, process_alive: bool | None = None
) -> str | None:
    """The stall rule, for a job with a file that is not complete.

    Args:
        state: the job.
        now: POSIX time.
        stall_after: seconds without a change of the file that make a job stalled.
        process_alive: whether the trainer process the file names still runs; None when that
            cannot be known (no pid, or another machine's).
    """
    if not state.has_file or state.complete:
        return None
    if process_alive is False:
        return PROCESS_EXITED
    if now - state.modified_at >= stall_after:
        return f"no update for {stall_after:g} s"
    return None


def with_stall(
    state: JobState, *, now: float, stall_after: float, process_alive: bool | None = None
) -> JobState:
    reason = stall_reason(state, now=now, stall_after=stall_after, process_alive=process_alive)
    return (
        state if reason == state.stall_reason else dataclasses.replace(state, stall_reason=reason)
    )
