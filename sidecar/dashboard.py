"""The dashboard at ``/`` and the static files under ``/static/`` (the browser client among them)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"

# The page talks to this sidecar only; nothing is loaded from anywhere else.
CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"


async def index(request: web.Request) -> web.FileResponse:
    """The jobs dashboard (a single page; the job view is ``#job=<id>``)."""
    return web.FileResponse(
        STATIC / "index.html",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
