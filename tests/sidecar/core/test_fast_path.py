"""The hub's broadcast fast path, without a server: an idle, up-to-date client is handed the shared
patch at once; every other is woken for its own sender to catch it up."""

from __future__ import annotations

from typing import Any

from sidecar.core.events import JobSeen
from sidecar.core.hub import JobHub
from sidecar.core.subscription import Subscription
from sidecar.core.version import Version

T0 = 1_762_432_200.0


class Connection:
    """What a server hands the hub as ``Subscription.direct``: records what it was handed."""

    def __init__(self, *, writable: bool = True) -> None:
        self.writable = writable
        self.frames: list[bytes] = []

    def __call__(self, version: Version, previous: Version) -> bool:
        if not self.writable:
            return False
        self.frames.append(version.patch_frame(previous))
        return True


def seen(hub: JobHub, **fields: Any) -> None:
    hub.apply(JobSeen(hub.node, "j", {"status": "running", **fields}, T0))


async def follower(hub: JobHub, connection: Connection) -> Subscription:
    """A client whose sender has sent the current version and waits: idle and up to date."""
    subscription = hub.subscribe("j")
    await subscription.wait()  # (a new subscription has its snapshot to send at once)
    subscription.sent = hub.version("j")
    subscription.direct = connection
    return subscription


async def test_an_idle_up_to_date_client_gets_the_shared_patch_at_once_without_a_wake() -> None:
    hub = JobHub(clock=lambda: T0)
    seen(hub, step=1)
    first, second = Connection(), Connection()
    a, b = await follower(hub, first), await follower(hub, second)
    before = hub.version("j")
    seen(hub, step=2)
    after = hub.version("j")
    assert before is not None and after is not None
    assert first.frames == [after.patch_frame(before)]
    assert first.frames[0] is second.frames[0]  # encoded once, the same bytes for both
    assert a.sent is after and b.sent is after
    assert not a.woken and not b.woken


async def test_a_busy_client_is_woken_not_written_to() -> None:
    hub = JobHub(clock=lambda: T0)
    seen(hub, step=1)
    connection = Connection()
    subscription = await follower(hub, connection)
    subscription.busy = True  # its own sender is in the middle of a send
    seen(hub, step=2)
    assert connection.frames == [] and subscription.woken
    assert subscription.sent is not hub.version("j")


async def test_a_client_behind_is_woken_for_its_sender_to_catch_up() -> None:
    hub = JobHub(clock=lambda: T0)
    seen(hub, step=1)
    connection = Connection()
    subscription = await follower(hub, connection)
    seen(hub, step=2)
    subscription.direct = None  # step 3 goes to its sender, which has not sent it...
    seen(hub, step=3)
    subscription.direct = connection  # ...and is idle again, but not up to date
    await subscription.wait()
    seen(hub, step=4)
    assert len(connection.frames) == 1  # step 2 only
    assert subscription.woken


async def test_a_connection_that_cannot_take_it_now_leaves_it_to_the_sender() -> None:
    hub = JobHub(clock=lambda: T0)
    seen(hub, step=1)
    connection = Connection(writable=False)
    subscription = await follower(hub, connection)
    sent = subscription.sent
    seen(hub, step=2)
    assert connection.frames == [] and subscription.woken and subscription.sent is sent


async def test_the_final_version_goes_out_at_once_and_the_close_waits_its_turn() -> None:
    hub = JobHub(clock=lambda: T0)
    seen(hub, step=1)
    connection = Connection()
    subscription = await follower(hub, connection)
    turns: list[object] = []
    subscription.close_turn = turns.append
    hub.apply(JobSeen(hub.node, "j", {"status": "completed", "step": 2}, T0))
    final = hub.version("j")
    assert final is not None and final.complete
    assert len(connection.frames) == 1 and subscription.sent is final
    assert turns == [subscription.wake] and not subscription.woken
    # Nothing more goes out on the fast path once the final message did: the close is next.
    hub.apply(JobSeen(hub.node, "j", {"status": "completed", "step": 3}, T0))
    assert len(connection.frames) == 1 and subscription.woken


async def test_without_a_close_turn_the_final_version_wakes_the_sender_to_close() -> None:
    hub = JobHub(clock=lambda: T0)
    seen(hub, step=1)
    connection = Connection()
    subscription = await follower(hub, connection)
    hub.apply(JobSeen(hub.node, "j", {"status": "failed", "error": "oom"}, T0))
    assert len(connection.frames) == 1 and subscription.woken
