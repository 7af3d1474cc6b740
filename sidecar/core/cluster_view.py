"""The hub's view of the cluster: which node owns a job, which nodes are lost, and what is shown
of another node's job (its owner's state and version name; stalled while its node is lost)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from sidecar.core.events import JobPublished
from sidecar.core.state import NODE_LOST, JobState
from sidecar.core.subscription import Channel
from sidecar.core.version import VersionId

LOST_SUFFIX = "-lost"
"""Ends the epoch of a version shown while its node is lost: the owner's version, stalled."""

logger = logging.getLogger(__name__)


class ClusterView:
    """Ownership and lost nodes, as seen by the sidecar of node ``node`` ("" for a gateway,
    which owns no job)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._lost: set[str] = set()
        self._conflicts: set[tuple[str, str]] = set()
        """(job id, node) pairs already warned about: each is said once."""

    @property
    def lost_nodes(self) -> AbstractSet[str]:
        """The nodes lost now (a view: not to be changed, and no copy at each call)."""
        return self._lost

    def owns(self, origin: str, job_id: str, channel: Channel | None) -> bool:
        """Whether ``origin`` owns the job held in ``channel`` (or may: no node has it yet).
        Job ids are the training server's to keep unique; when two nodes have the same, the
        first one seen keeps it, but a node always serves its own job (its ``JobSeen`` takes
        the id back)."""
        if channel is None or channel.state.node == origin:
            return True
        mine = origin == self.node and channel.published is not None
        other, kept = (channel.state.node, origin) if mine else (origin, channel.state.node)
        if (job_id, other) not in self._conflicts:
            self._conflicts.add((job_id, other))
            logger.warning(
                "job %s: node %s has a job of that id too; serving node %s's only (job ids must "
                "be unique across the cluster)",
                job_id,
                other,
                kept,
            )
        return mine

    def news(self, event: JobPublished, channel: Channel | None) -> JobState | None:
        """The state to show of a published version (its node and id from the event, never
        from the state it carries); None when it is not one to show: this node's own job (its
        own file is the truth), the version shown, or (read out of its owner's order) older than it."""
        if channel is not None and channel.published is not None:
            epoch, seq = channel.published[1]
            if epoch == event.epoch and (
                event.seq == seq or (event.seq < seq and not event.ordered)
            ):
                return None
        if event.origin == self.node or (channel is not None and channel.published is None):
            return None
        return dataclasses.replace(event.state, node=event.origin, job_id=event.job_id)

    def shown(self, state: JobState, name: VersionId) -> tuple[JobState, VersionId]:
        """What is shown of another node's job, published as ``state`` under ``name``: the same,
        or, while its node is lost and the job not complete, stalled under a ``-lost`` epoch."""
        if state.node in self._lost and not state.complete:
            return dataclasses.replace(state, stall_reason=NODE_LOST), (
                name[0] + LOST_SUFFIX,
                name[1],
            )
        return state, name

    def node_seen(self, node: str, *, lost: bool) -> bool:
        """A node was found lost, or back; False if that was known already."""
        if lost == (node in self._lost):
            return False
        if lost:
            self._lost.add(node)
        else:
            self._lost.discard(node)
        return True

    def stranded(self, states: Iterable[JobState]) -> set[str]:
        """The lost nodes that own a job of ``states`` not complete (a node gone with nothing
        running is no one's concern)."""
        return {state.node for state in states if state.node in self._lost and not state.complete}

    def forget(self, job_id: str) -> None:
        """The job is gone: a conflict over its id is news again."""
        self._conflicts = {c for c in self._conflicts if c[0] != job_id}
