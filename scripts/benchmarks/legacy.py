"""The seed's plan, reproduced as its own server: read each progress.json every 2 s, push changes.

python scripts/bench.py --legacy-server ROOT
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from aiohttp import web

POLL_SECONDS = 2.0


async def serve(root: Path) -> None:
    clients: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
    reads = [0]

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        job = request.match_info["job_id"]
        clients[job].add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            clients[job].discard(ws)
        return ws

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"reads": reads[0]})

    async def monitor(app: web.Application):  # type: ignore[no-untyped-def]
        async def loop() -> None:
            last: dict[str, str] = {}
            while True:
                await asyncio.sleep(POLL_SECONDS)
                for path in root.glob("*/progress.json"):
                    job = path.parent.name
                    try:
                        text = path.read_text()
                    except OSError:
                        continue
                    reads[0] += 1
                    if text != last.get(job):
                        last[job] = text
                        for ws in list(clients.get(job, ())):
                            if not ws.closed:
                                await ws.send_str(text)
                        if '"completed"' in text:
                            for ws in list(clients.get(job, ())):
                                await ws.close()

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app = web.Application()
    app.router.add_get("/ws/training/{job_id}", socket)
    app.router.add_get("/reads", count)
    app.cleanup_ctx.append(monitor)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"legacy loop listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()
