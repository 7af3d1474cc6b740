"""When a client following a job connects again, and when it gives up."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

from sidecar.clients.errors import SidecarUnreachable, StreamError
from sidecar.core.backoff import Backoff
from sidecar.core.protocol import FINAL_CLOSE_CODES, CloseCode

RESTART_SPREAD: Final = 1.0
"""Seconds over which the first try after a sidecar's 1001 (it is going away: a restart, a
gateway leaving) is spread, at random: every client it had drops at the same moment, and would
otherwise come back within the same 50 ms."""
CONNECT_TIMEOUT: Final = 10.0
"""The longest one opening handshake may take (less when the give-up time is nearer, 1 s at
least)."""


def is_final(code: int, *, followed: bool, wait: bool) -> bool:
    """Whether a stream closed with ``code`` is over for good: a final close code, or an
    unknown job (4404) once the job was followed (it was removed), or unless waiting for it."""
    return code in FINAL_CLOSE_CODES or (code == CloseCode.NOT_FOUND and (followed or not wait))


class Reconnection:
    """When to connect again, and when to give up: the backoff between tries, and the give-up
    clock, which runs from the start while no stream has opened, from the last contact after.
    """

    def __init__(
        self,
        url: str,
        *,
        give_up_after: float | None,
        backoff: Backoff,
        clock: Callable[[], float],
    ) -> None:
        self.url = url
        self.give_up_after = give_up_after
        self.backoff = backoff
        """Reset whenever a state comes: the next drop is a new failure."""
        self._clock = clock
        self._contact = clock()

    def handshake_timeout(self) -> float:
        """``CONNECT_TIMEOUT``, or less when the give-up time is nearer (1 s at least)."""
        if self.give_up_after is None:
            return CONNECT_TIMEOUT
        left = self._contact + self.give_up_after - self._clock()
        return min(CONNECT_TIMEOUT, max(1.0, left))

    def pause(self, code: int | None, reason: str, *, contact: bool) -> float:
        """Seconds to wait before the next try, after a stream that ended with ``code`` (None:
        none opened) for ``reason``.

        Args:
            code: the close code, None when no stream opened.
            reason: why it ended.
            contact: whether the sidecar answered (a stream, or "unknown job"): the give-up
                clock starts over.

        Raises:
            StreamError: ``give_up_after`` passed since the last contact, with a close code.
            SidecarUnreachable: the same, with none.
        """
        now = self._clock()
        if contact:
            self._contact = now
        first = self.backoff.failures == 0
        delay = self.backoff.next()
        if first and code == CloseCode.GOING_AWAY:
            delay = random.uniform(0, RESTART_SPREAD)  # full jitter: the crowd spreads
        if self.give_up_after is None:
            return delay
        left = self._contact + self.give_up_after - now
        if left <= 0:
            if code is not None:
                raise StreamError(code, reason)
            raise SidecarUnreachable(self.url, reason)
        return min(delay, left)
