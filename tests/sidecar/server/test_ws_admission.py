"""Who gets a WebSocket stream: refusals, client limits, and clients that never read."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from sidecar.server.keys import HUB
from tests.conftest import StartSidecar
from tests.helpers import silent_client, wait_for, write_atomic
from tests.sidecar.server.ws import progress


@pytest.mark.parametrize(
    ("job_id", "code", "reason"),
    [
        ("job%2F..%2Fetc", 4400, "invalid job id"),
        ("-job", 4400, "invalid job id"),
        (".hidden", 4400, "invalid job id"),
        ("a" * 129, 4400, "invalid job id"),
        ("a%00b", 4400, "invalid job id"),
        ("j%C3%A9", 4400, "invalid job id"),
        ("nosuchjob", 4404, "unknown job"),
    ],
)
async def test_refusals_close_after_handshake(
    jobs_root: Path, start_sidecar: StartSidecar, job_id: str, code: int, reason: str
) -> None:
    sidecar = await start_sidecar()
    client = await sidecar.connect(job_id)
    message = await client.ws.receive(timeout=5)
    assert message.type.name == "CLOSE"
    assert (message.data, message.extra) == (code, reason)


async def test_invalid_format_is_refused(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    write_atomic(jobs_root / "job1" / "progress.json", progress())
    sidecar = await start_sidecar()
    client = await sidecar.connect("job1", "format=xml")
    message = await client.ws.receive(timeout=5)
    assert (message.data, message.extra) == (4400, "invalid format: use patch or full")


async def test_capacity_per_job_and_in_all(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    for job in ("a", "b"):
        write_atomic(jobs_root / job / "progress.json", progress(job))
    sidecar = await start_sidecar(max_clients_per_job=2, max_clients=3)
    kept = [await sidecar.connect("a"), await sidecar.connect("a")]
    for client in kept:
        assert await client.next() is not None
    third = await sidecar.connect("a")
    message = await third.ws.receive(timeout=5)
    assert (message.data, message.extra) == (1013, "too many clients for this job")
    kept.append(await sidecar.connect("b"))
    assert await kept[-1].next() is not None
    fourth = await sidecar.connect("b")
    message = await fourth.ws.receive(timeout=5)
    assert (message.data, message.extra) == (1013, "too many clients")
    # A slot freed is a slot to take.
    await kept[0].ws.close()
    hub = sidecar.app[HUB]
    await wait_for(lambda: hub.client_count == 2, what="the closed client to be released")
    again = await sidecar.connect("a")
    assert await again.next() is not None


async def test_client_that_never_reads_is_dropped_and_hurts_nobody(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    file = jobs_root / "job1" / "progress.json"
    write_atomic(file, progress(current_step=0))
    sidecar = await start_sidecar(send_timeout=0.5)
    hub = sidecar.app[HUB]
    # A raw client: it completes the handshake, then never reads a byte.
    writer = await silent_client(sidecar.server.host, sidecar.server.port, "job1")
    good = await sidecar.connect("job1")
    await good.next()
    await wait_for(lambda: hub.client_count == 2, what="both clients subscribed")
    # Large states fill the socket buffers of the stuck client quickly.
    step = 0
    while hub.client_count == 2:
        step += 1
        assert step < 2000, "the stuck client was never dropped"
        write_atomic(file, progress(current_step=step, padding=str(step) * 100_000))
        await good.until(lambda s, step=step: s.get("current_step") == step, timeout=2)
    # The good client kept up with every state while the stuck one was being dropped.
    write_atomic(file, progress(current_step=step + 1))
    await good.until(lambda s: s.get("current_step") == step + 1)
    writer.close()


async def test_one_address_cannot_lock_a_job(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    """Ten idle connections from one address used to keep every other viewer off a job."""
    write_atomic(jobs_root / "a" / "progress.json", progress("a"))
    sidecar = await start_sidecar()  # defaults: 10 per job, 5 per address
    mine = [await sidecar.connect("a") for _ in range(5)]
    for client in mine:
        assert await client.next() is not None
    sixth = await sidecar.connect("a")
    message = await sixth.ws.receive(timeout=5)
    assert (message.data, message.extra) == (
        1013,
        "too many clients for this job from this address",
    )
    # Another address (127.0.0.2 is loopback too) still gets in.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=connector) as other,
        other.ws_connect(sidecar.ws_url("a")) as ws,
    ):
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
