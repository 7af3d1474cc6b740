"""The dashboard at ``/`` and the static files under ``/static/`` (the browser client among them).

The files are small (about 80 KiB in all) and read once, at start: a response then holds no file
descriptor, so a client that never reads its responses costs the server one socket, not two.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"

# The page talks to this sidecar only; nothing is loaded from anywhere else.
CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"
# By suffix; .mjs must be JavaScript for browsers to run it as a module, and .ts (the client's
# type declarations) would otherwise pass for a Qt translation file.
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".ts": "text/plain",
}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: str
    etag: str


def _load(directory: Path) -> dict[str, _File]:
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        body = path.read_bytes()
        content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        files[path.relative_to(directory).as_posix()] = _File(body, content_type, etag)
    return files


_FILES = _load(STATIC)


def _respond(request: web.Request, file: _File, headers: dict[str, str]) -> web.Response:
    headers = {"Cache-Control": "no-cache", "ETag": file.etag, **headers}
    if request.headers.get("If-None-Match") == file.etag:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if file.content_type.startswith("text/") else None
    return web.Response(
        body=file.body, content_type=file.content_type, charset=charset, headers=headers
    )


async def index(request: web.Request) -> web.Response:
    """The jobs dashboard (a single page; the job view is ``#job=<id>``)."""
    return _respond(request, _FILES["index.html"], {"Content-Security-Policy": CSP})


async def static_file(request: web.Request) -> web.Response:
    """A file of ``static/``: code and styles, no data, open to any page on any origin."""
    file = _FILES.get(request.match_info["path"])
    if file is None:
        raise web.HTTPNotFound()
    return _respond(request, file, {})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/static/{path:.+}", static_file)
