"""What of one read of a node's stream is taken: a job's latest state, not every one before it.

A reader reads up to 100 entries of each node's stream at a time. When it fell behind (a crowd
of clients connecting held its event loop up), a reply holds several states of the same job:
taking each costs a write to every client of the job, where only the latest is shown in the
end. A sidecar that reads a file reads only its latest content; a reader so takes only the
latest state of each job in a reply.
"""

from __future__ import annotations

from sidecar.bus import wire
from sidecar.core.events import JobGone, JobPublished


def latest_states(
    messages: list[tuple[wire.Message, int]],
) -> list[tuple[wire.Message, int]]:
    """One reply's messages of a node, less each job state that a later one in the same reply
    replaces (with no end of the job between): the latest is what is shown, and every state
    taken costs a write to each of the job's clients. A gateway that fell behind (a crowd of
    clients connecting held it up) so catches up with one state a job, as a sidecar that reads
    only a file's latest content does, not every state it missed (300 of them held 10,000
    clients up by 2 s more)."""
    replaced: set[str] = set()
    kept: list[tuple[wire.Message, int]] = []
    for message, size in reversed(messages):
        if isinstance(message, JobGone):
            replaced.discard(message.job_id)
        elif isinstance(message, JobPublished):
            if message.job_id in replaced:
                continue
            replaced.add(message.job_id)
        kept.append((message, size))
    kept.reverse()
    return kept
