"""The REST fallback: the same states as the WebSocket, for clients that cannot hold one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from sidecar.core.codec import JSONObject, encode_with_list
from sidecar.core.contract import is_valid_job_id
from sidecar.core.history_export import csv_pieces, jsonl_pieces
from sidecar.core.history_store import LOAD_TIMEOUT
from sidecar.core.listing import JOBS_QUERY_KEYS, parse_jobs_query
from sidecar.core.protocol import INVALID_JOB_ID, UNKNOWN_JOB
from sidecar.server.jobs_listing import listing_body
from sidecar.server.keys import BUS, HUB, METRICS, SETTINGS, SUPERVISOR, WATCHER
from sidecar.server.metrics import CONTENT_TYPE
from sidecar.server.slices import in_slices

routes = web.RouteTableDef()


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@routes.get("/api/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """Every job's summary, by job id; ``?status=``, ``?limit=`` and ``?after=`` choose some
    (docs/protocol.md). Sent a slice at a time (``jobs_listing``)."""
    query = parse_jobs_query(
        {key: request.query.getall(key) for key in JOBS_QUERY_KEYS if key in request.query}
    )
    if isinstance(query, str):
        return json_error(400, query)
    return web.Response(body=listing_body(request.app[HUB], query), content_type="application/json")


@routes.get("/api/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    """One job's whole state: the body of a snapshot message."""
    job_id = request.match_info["job_id"]
    if not is_valid_job_id(job_id):
        return json_error(400, INVALID_JOB_ID.reason)
    version = request.app[HUB].version(job_id)
    if version is None:
        return json_error(404, UNKNOWN_JOB.reason)
    return web.Response(body=version.snapshot_frame(), content_type="application/json")


async def kept_history(request: web.Request) -> list[bytes] | web.Response:
    """Every history entry (metrics.jsonl) of the request's job kept so far, once loaded (see
    ``LOAD_TIMEOUT``); or the error to answer (400 invalid id, 404 unknown job)."""
    job_id = request.match_info["job_id"]
    if not is_valid_job_id(job_id):
        return json_error(400, INVALID_JOB_ID.reason)
    hub = request.app[HUB]
    if job_id not in hub:
        return json_error(404, UNKNOWN_JOB.reason)
    log = await hub.histories.loaded(job_id, timeout=LOAD_TIMEOUT)
    return list(log.entries) if log is not None else []


@routes.get("/api/jobs/{job_id}/history")
async def get_history(request: web.Request) -> web.Response:
    """Every history entry (metrics.jsonl) of one job kept so far."""
    entries = await kept_history(request)
    if isinstance(entries, web.Response):
        return entries
    body = encode_with_list({"job_id": request.match_info["job_id"]}, "entries", entries)
    return web.Response(body=body, content_type="application/json")


@routes.get("/api/jobs/{job_id}/history.csv")
async def download_history_csv(request: web.Request) -> web.Response:
    """The same entries as a CSV file to download (``history_export``)."""
    return await download(request, "csv")


@routes.get("/api/jobs/{job_id}/history.jsonl")
async def download_history_jsonl(request: web.Request) -> web.Response:
    """The same entries as a JSON Lines file to download, one entry a line."""
    return await download(request, "jsonl")


# Each download's encoder and content type, by its file's extension.
_DOWNLOADS: dict[str, tuple[Callable[[list[bytes]], Iterable[bytes]], str]] = {
    "csv": (csv_pieces, "text/csv; charset=utf-8"),
    "jsonl": (jsonl_pieces, "application/x-ndjson"),
}


async def download(request: web.Request, extension: str) -> web.Response:
    """The job's history as a file to download, ``<job_id>-history.<extension>``, made and
    sent a slice at a time; or the error to answer, as ``GET .../history`` has it."""
    entries = await kept_history(request)
    if isinstance(entries, web.Response):
        return entries
    pieces, content_type = _DOWNLOADS[extension]
    # A job id is [A-Za-z0-9._-]: nothing in it needs quoting in the header.
    name = f"{request.match_info['job_id']}-history.{extension}"
    headers = {
        "Content-Type": content_type,
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Content-Type-Options": "nosniff",
    }
    return web.Response(body=in_slices(pieces(entries)), headers=headers)


@routes.get("/healthz")
async def health(request: web.Request) -> web.Response:
    """Whether the sidecar is up, how it watches, and how much it serves."""
    watcher, bus = request.app.get(WATCHER), request.app.get(BUS)
    hub = request.app[HUB]
    health: JSONObject = {"status": "ok"}
    if hub.node:
        health["node"] = hub.node
    if watcher is not None:
        health.update(
            {
                "status": "ok" if watcher.root_present else "waiting for root",
                "watcher": watcher.mode,
                "watcher_reason": watcher.mode_reason,
                "root": "present" if watcher.root_present else "missing",
                "root_path": str(request.app[SETTINGS].root),
                "root_present": watcher.root_present,
            }
        )
        if watcher.root_hint.text is not None:
            health["hint"] = watcher.root_hint.text  # a hint, not a failure: still "ok"
    else:
        health["role"] = "gateway"
    health.update({"jobs": len(hub), "clients": hub.client_count})
    if bus is not None:
        reason = bus.reason
        health["bus"] = "up" if reason is None else "down"
        if reason is not None:
            health["bus_reason"] = reason
        health["nodes"] = bus.nodes()
        health["lost_nodes"] = sorted(hub.stranded_nodes())
    down = request.app[SUPERVISOR].down
    if down:
        # A background task failed and is being restarted: what it does is not being done.
        health["status"] = "degraded"
        health["tasks_down"] = down
    return web.json_response(health, status=503 if down else 200)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text format (docs/protocol.md lists each metric)."""
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn aiohttp's plain-text HTTP errors (404 on an unknown path...) into JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return json_error(e.status, (e.reason or "error").lower())
