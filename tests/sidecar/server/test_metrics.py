"""GET /metrics: Prometheus' text format, counting what really happened."""

from __future__ import annotations

import asyncio
import gc
import itertools
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sidecar.server.keys import HUB
from tests.conftest import Sidecar, StartSidecar
from tests.helpers import silent_client, wait_for, write_atomic


async def scrape(sidecar: Sidecar) -> dict[str, float]:
    async with sidecar.session.get(sidecar.url("/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
            if "le" not in sample.labels:
                samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


async def test_metrics_count_what_happened(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 0})
    sidecar = await start_sidecar()
    before = await scrape(sidecar)
    assert before["sidecar_jobs"] == 1 and before["sidecar_connections"] == 0
    assert before["sidecar_scans_total"] >= 1
    # One stat of the one job's file a scan, in the usual layout (its directory is listed).
    assert before["sidecar_scan_stats_total"] == before["sidecar_scans_total"]
    client = await sidecar.connect("j", "history=1")
    await client.next()
    for step in range(1, 6):
        write_atomic(file, {"status": "running", "step": step})
        await client.until(lambda s, step=step: s.get("step") == step)
    write_atomic(file, "{broken")
    await client.until(lambda s: "read_error" in s)
    after = await scrape(sidecar)
    assert after["sidecar_connections"] == 1
    assert after["sidecar_messages_sent_total{type=snapshot}"] == 1
    assert after["sidecar_messages_sent_total{type=log}"] == 1
    assert after["sidecar_messages_sent_total{type=patch}"] >= 6
    assert after["sidecar_file_reads_total"] >= before["sidecar_file_reads_total"] + 6
    assert after["sidecar_file_read_errors_total{reason=invalid_json}"] == 1
    assert (
        after["sidecar_event_to_send_seconds_count"]
        == after["sidecar_messages_sent_total{type=patch}"]
    )
    assert (
        0
        < after["sidecar_event_to_send_seconds_sum"]
        < after["sidecar_event_to_send_seconds_count"]
    )
    # (Coalescing is counted in test_a_slow_client_skips_to_the_latest_state, which makes a
    # client slow for sure.)
    assert after["sidecar_send_timeouts_total"] == 0
    await client.ws.close()
    await wait_for(lambda: _connections_zero(sidecar), what="the connection to close")


async def _connections_zero(sidecar: Sidecar) -> bool:
    return (await scrape(sidecar))["sidecar_connections"] == 0


async def test_a_slow_client_skips_to_the_latest_state(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """States written while a client does not read are coalesced: it gets the latest, once."""
    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 0})
    sidecar = await start_sidecar()
    client = await sidecar.connect("j")
    await client.next()
    transport = client.ws._response.connection.transport  # type: ignore[union-attr]
    transport.pause_reading()
    for step in range(1, 41):
        write_atomic(file, {"status": "running", "step": step, "padding": str(step) * 300_000})
        await asyncio.sleep(0.01)
    transport.resume_reading()
    await client.until(lambda s: s["step"] == 40)
    steps = [m["step"] for m in client.messages if "step" in m]
    assert steps == sorted(steps) and len(steps) < 40  # some were skipped, in order
    latest = sidecar.app[HUB].version("j")
    assert latest is not None
    # Every state the job went through (index 0 was the snapshot) was sent or coalesced away.
    samples = await scrape(sidecar)
    assert samples["sidecar_states_coalesced_total"] == latest.index - (len(steps) - 1) > 0


async def test_send_timeouts_are_counted(jobs_root: Path, start_sidecar: StartSidecar) -> None:
    """A client that stops reading for good is dropped, and counted."""

    file = jobs_root / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 0})
    sidecar = await start_sidecar(send_timeout=0.3)
    writer = await silent_client(sidecar.server.host, sidecar.server.port, "j")
    step = 0
    while (await scrape(sidecar))["sidecar_send_timeouts_total"] == 0:
        step += 1
        assert step < 3000
        write_atomic(file, {"status": "running", "step": step, "padding": str(step) * 50_000})
        await asyncio.sleep(0.005)
    writer.close()


async def test_metrics_time_the_garbage_collectors_pauses(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar()
    before = await scrape(sidecar)
    garbage: list[list[object]] = [[] for _ in range(100_000)]
    for a, b in itertools.pairwise(garbage):
        a.append(b)
        b.append(a)  # cycles: only the collector frees them
    del garbage
    gc.collect()
    after = await scrape(sidecar)
    full = "sidecar_gc_collections_total{generation=2}"
    assert after[full] >= before[full] + 1
    paused = "sidecar_gc_pause_seconds_total{generation=2}"
    assert after[paused] > before[paused]
    assert after["sidecar_gc_pause_seconds_max"] > 0
