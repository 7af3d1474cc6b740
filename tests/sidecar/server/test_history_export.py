"""``GET /api/jobs/{id}/history.csv`` and ``.jsonl``: a job's history as a file to download."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import Sidecar, StartSidecar
from tests.helpers import wait_for, write_atomic
from tests.redis_server import RedisServer
from tests.sidecar.bus.cluster import has_jobs, running_cluster, write_job
from tests.sidecar.files.history import append, entry
from tests.sidecar.server.test_many_jobs import HOLD_LIMIT, LoopHolds

TOKEN = "export-t0ken"
HOSTILE = {"step": 3, 'note, with "quotes"\nand a line': '=HYPERLINK("http://x")', "v": -1}


async def download(
    sidecar: Sidecar, path: str, **kwargs: object
) -> tuple[int, dict[str, str], bytes]:
    async with sidecar.session.get(sidecar.url(path), **kwargs) as response:  # type: ignore[arg-type]
        return response.status, dict(response.headers), await response.read()


@pytest.fixture
async def sidecar(jobs_root: Path, start_sidecar: StartSidecar) -> Sidecar:
    job = jobs_root / "run-1.a"
    write_atomic(job / "progress.json", {"status": "running"})
    append(
        job / "metrics.jsonl",
        entry(1, loss=2.0) + entry(2, eval_loss=1.5) + json.dumps(HOSTILE) + "\n",
    )
    return await start_sidecar()


async def test_history_csv_is_a_download_of_every_entry(sidecar: Sidecar) -> None:
    status, headers, body = await download(sidecar, "/api/jobs/run-1.a/history.csv")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="run-1.a-history.csv"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert body.endswith(b"\r\n") and body.count(b"\r\n") == 4  # CRLF rows, LF in a cell
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows == [
        ["step", "epoch", "timestamp", "loss", "eval_loss", 'note, with "quotes"\nand a line', "v"],
        ["1", "0.1", "2025-11-06T12:30:00Z", "2.0", "", "", ""],
        ["2", "0.2", "2025-11-06T12:30:00Z", "", "1.5", "", ""],
        ["3", "", "", "", "", '\'=HYPERLINK("http://x")', "-1"],
    ]


async def test_history_jsonl_is_the_entries_as_kept(sidecar: Sidecar) -> None:
    status, headers, body = await download(sidecar, "/api/jobs/run-1.a/history.jsonl")
    assert status == 200
    assert headers["Content-Type"] == "application/x-ndjson"
    assert headers["Content-Disposition"] == 'attachment; filename="run-1.a-history.jsonl"'
    _, history = await sidecar.get_json("/api/jobs/run-1.a/history")
    lines = body.split(b"\n")
    assert lines.pop() == b""
    assert [json.loads(line) for line in lines] == history["entries"]
    assert lines == [json.dumps(e, separators=(",", ":")).encode() for e in history["entries"]]
    assert history["entries"][2] == HOSTILE


async def test_history_downloads_without_a_metrics_file(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    sidecar = await start_sidecar()
    assert (await download(sidecar, "/api/jobs/j/history.csv"))[::2] == (200, b"step\r\n")
    assert (await download(sidecar, "/api/jobs/j/history.jsonl"))[::2] == (200, b"")


@pytest.mark.parametrize("extension", ["csv", "jsonl"])
async def test_history_download_errors_are_json(sidecar: Sidecar, extension: str) -> None:
    assert await sidecar.get_json(f"/api/jobs/nope/history.{extension}") == (
        404,
        {"error": "unknown job"},
    )
    assert await sidecar.get_json(f"/api/jobs/-x/history.{extension}") == (
        400,
        {"error": "invalid job id"},
    )
    assert (await sidecar.get_json("/api/jobs/run-1.a/history.xlsx"))[0] == 404


@pytest.mark.parametrize("extension", ["csv", "jsonl"])
async def test_history_download_needs_the_token(
    jobs_root: Path, start_sidecar: StartSidecar, extension: str
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", {"status": "running"})
    append(jobs_root / "j" / "metrics.jsonl", entry(1, loss=2.0))
    sidecar = await start_sidecar(token=TOKEN)
    path = f"/api/jobs/j/history.{extension}"
    status, headers, body = await download(sidecar, path)
    assert (status, json.loads(body)) == (401, {"error": "unauthorized"})
    assert "Content-Disposition" not in headers and b"loss" not in body
    assert (await download(sidecar, f"{path}?token=wrong"))[0] == 401
    status, _, body = await download(sidecar, path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and b"2.0" in body


@pytest.mark.timeout(120)
async def test_a_long_history_downloads_without_holding_the_event_loop(
    jobs_root: Path, start_sidecar: StartSidecar
) -> None:
    """100,000 entries go out a slice at a time: the event loop is never held 50 ms (made
    in one go, the CSV held it for 1.5 s)."""
    count = 100_000
    job = jobs_root / "j"
    write_atomic(job / "progress.json", {"status": "running"})
    append(
        job / "metrics.jsonl",
        "".join(entry(i, loss=1 / (i + 1), **{f"m{i % 50}": i}) for i in range(count)),
    )
    sidecar = await start_sidecar(max_history=count)
    # Loaded first (its reading is sliced on its own), so that only the downloads are timed;
    # held as bytes, not as decoded entries, which the collector would walk meanwhile.
    status, _, body = await download(sidecar, "/api/jobs/j/history.jsonl")
    assert status == 200 and body.count(b"\n") == count
    for extension in ("csv", "jsonl"):
        with LoopHolds() as loop:
            status, _, body = await download(sidecar, f"/api/jobs/j/history.{extension}")
        assert status == 200
        lines = body.split(b"\r\n" if extension == "csv" else b"\n")
        assert len(lines) == count + (2 if extension == "csv" else 1), extension
        assert lines[-2].startswith(b"99999," if extension == "csv" else b'{"step":99999,')
        longest = max(loop.holds)
        assert longest < HOLD_LIMIT, f"{extension}: the event loop was held {longest * 1000:.0f} ms"


@pytest.mark.timeout(90)
async def test_a_gateway_downloads_another_nodes_history(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """On a gateway the history comes from Redis: the first download waits for all of it."""
    async with running_cluster(redis_server, tmp_path) as cluster:
        root = cluster.root("node-a")
        write_job(root, "job-a")
        append(root / "job-a" / "metrics.jsonl", "".join(entry(i, loss=i) for i in range(300)))
        await cluster.start("node-a")
        gateway = await cluster.start(None)
        await wait_for(lambda: has_jobs(cluster, gateway, {"job-a": "node-a"}), what="job-a")
        async with cluster.session.get(gateway.url("/api/jobs/job-a/history.csv")) as response:
            assert response.status == 200
            body = await response.read()
        rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
        assert rows[0] == ["step", "epoch", "timestamp", "loss"]
        assert [row[0] for row in rows[1:]] == [str(i) for i in range(300)]
