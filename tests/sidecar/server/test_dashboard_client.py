"""The browser client in a real Chromium: reconnection, another origin, polling, resumption."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from playwright.async_api import Browser, WebSocketRoute, expect

from scripts.support.listening import await_listening
from scripts.support.ports import free_port
from tests.conftest import StartSidecar
from tests.helpers import wait_for, write_atomic
from tests.sidecar.server.dashboard import Watched, open_page, running


async def _sidecar_process(root: Path, port: int, *args: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "--root", str(root), "--port", str(port), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await await_listening(process, timeout=20, what="the sidecar")
    return process


async def test_the_page_reconnects_by_itself_when_the_sidecar_restarts(
    tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    write_atomic(tmp_path / "j" / "progress.json", running(1))
    process = await _sidecar_process(tmp_path, port)
    try:
        watched = await open_page(browser, f"http://127.0.0.1:{port}/#job=j")
        page = watched.page
        await expect(page.locator("[data-field=step] dd")).to_have_text("1 / 100", timeout=5000)
        process.send_signal(signal.SIGTERM)
        await process.wait()
        write_atomic(tmp_path / "j" / "progress.json", running(7))  # written while it is down
        await expect(page.locator("#connection")).not_to_have_text("live", timeout=5000)
        process = await _sidecar_process(tmp_path, port)
        await expect(page.locator("[data-field=step] dd")).to_have_text("7 / 100", timeout=15000)
        write_atomic(tmp_path / "j" / "progress.json", running(8))
        await expect(page.locator("[data-field=step] dd")).to_have_text("8 / 100", timeout=5000)
        # The page's only errors are the refused reconnections while the sidecar was down.
        assert all(
            "WebSocket" in e or "ERR_CONNECTION_REFUSED" in e or e.startswith("failed:")
            for e in watched.errors
        )
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


FRONTEND = """<!doctype html><html><head><meta charset="utf-8"><title>frontend</title>
<link rel="icon" href="data:,"></head><body>
<p id="out">waiting</p>
<script src="{sidecar}/static/progress-client.js"></script>
<script>
  new ProgressClient({{
    url: "{sidecar}", jobId: "j", token: "{token}",
    onState: (s) => {{ document.getElementById("out").textContent = s.status + " " + s.current_step; }},
  }}).start();
</script></body></html>"""


async def test_the_client_works_on_a_page_from_another_allowed_origin(
    tmp_path: Path, browser: Browser
) -> None:
    """A frontend on another port: the 10-line integration of the README, token included."""
    port = free_port()
    write_atomic(tmp_path / "j" / "progress.json", running(3))
    frontend = web.Application()
    page_html = FRONTEND.format(sidecar=f"http://127.0.0.1:{port}", token="t0ken")

    async def serve_page(request: web.Request) -> web.Response:
        return web.Response(text=page_html, content_type="text/html")

    frontend.router.add_get("/", serve_page)
    runner = web.AppRunner(frontend)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    process = await _sidecar_process(tmp_path, port, "--token", "t0ken", "--allowed-origin", origin)
    try:
        watched = await open_page(browser, origin + "/")
        await expect(watched.page.locator("#out")).to_have_text("running 3", timeout=5000)
        write_atomic(tmp_path / "j" / "progress.json", running(4))
        await expect(watched.page.locator("#out")).to_have_text("running 4", timeout=5000)
        assert watched.errors == []
    finally:
        process.terminate()
        await process.wait()
        await runner.cleanup()


async def test_the_client_falls_back_to_polling_and_comes_back(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """WebSockets blocked (a proxy that refuses upgrades): REST polling every 2 s, then back."""
    write_atomic(jobs_root / "j" / "progress.json", running(1))
    sidecar = await start_sidecar()
    page = await browser.new_page()
    blocked = True

    async def route(ws: WebSocketRoute) -> None:
        if blocked:
            await ws.close(code=1011, reason="blocked by a proxy")
        else:
            ws.connect_to_server()

    await page.route_web_socket(re.compile(r"/ws/training/"), route)
    await page.goto(sidecar.url("/#job=j"))
    await expect(page.locator("#connection")).to_have_text("polling", timeout=10000)
    await expect(page.locator("[data-field=step] dd")).to_have_text("1 / 100", timeout=5000)
    write_atomic(jobs_root / "j" / "progress.json", running(2))
    await expect(page.locator("[data-field=step] dd")).to_have_text("2 / 100", timeout=5000)
    blocked = False  # every fifth poll tries the WebSocket again
    await expect(page.locator("#connection")).to_have_text("live", timeout=15000)
    write_atomic(jobs_root / "j" / "progress.json", running(3))
    await expect(page.locator("[data-field=step] dd")).to_have_text("3 / 100", timeout=2000)


RESUMING_CLIENT = """() => {
  window.states = [];
  window.logs = [];
  window.kept = []; // the history, as a chart keeps it
  window.follower = new ProgressClient({
    jobId: "j",
    onState: (state) => states.push(state),
    onLog: (entries, reset) => {
      const steps = entries.map((entry) => entry.step);
      logs.push([steps, reset]);
      kept = reset ? steps : kept.concat(steps);
    },
  }).start();
}"""


async def test_the_client_resumes_after_a_drop_and_replaces_the_history(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """The sidecar runs on, the page's connection drops (closed server-side by a proxy) while
    the job moves on: the client reconnects with ``since`` = the epoch and seq of the last
    state it applied, merges the ``resumed`` patch it gets, keeps the envelope out of the
    state, and takes the reconnection's first log (the whole history) as a reset."""
    job = jobs_root / "j"
    write_atomic(job / "progress.json", running(1, loss=2.0))
    (job / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    sidecar = await start_sidecar()
    page = await browser.new_page()
    watched = Watched(page)
    links: list[dict[str, Any]] = []  # each connection: its URL, what reached the page, its route

    async def route(ws: WebSocketRoute) -> None:
        link: dict[str, Any] = {"url": ws.url, "delivered": [], "route": ws, "held": False}
        links.append(link)
        server = ws.connect_to_server()

        def relay(message: str | bytes) -> None:
            if not link["held"]:
                link["delivered"].append(json.loads(message))
                ws.send(message)

        server.on_message(relay)

    await page.route_web_socket(re.compile(r"/ws/training/"), route)
    await page.goto(sidecar.url("/"))
    await page.evaluate(RESUMING_CLIENT)
    await page.wait_for_function("() => states.at(-1)?.current_step === 1 && kept.length")
    write_atomic(job / "progress.json", running(2, loss=1.5))
    with open(job / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "loss": 1.5}\n')
    await page.wait_for_function("() => states.at(-1)?.current_step === 2 && kept.join() === '1,2'")
    first = links[0]
    last = [m for m in first["delivered"] if m["type"] != "log"][-1]
    assert last["current_step"] == 2
    # Nothing more reaches the page on this connection; the job moves on meanwhile.
    first["held"] = True
    write_atomic(job / "progress.json", running(3, eval_loss=1.2))
    with open(job / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 1.0}\n')

    async def sidecar_is_at_step_3() -> bool:
        _, state = await sidecar.get_json("/api/jobs/j")
        _, logged = await sidecar.get_json("/api/jobs/j/history")
        return state["current_step"] == 3 and len(logged["entries"]) == 3

    await wait_for(sidecar_is_at_step_3, what="the sidecar to read step 3")
    logged_before = await page.evaluate("() => logs.length")
    await first["route"].close(code=1001, reason="dropped by a proxy")
    await page.wait_for_function(
        "() => states.at(-1)?.current_step === 3 && kept.join() === '1,2,3'"
    )
    second = links[-1]
    query = parse_qs(urlsplit(second["url"]).query)
    assert query == {"history": ["1"], "since": [f"{last['epoch']}:{last['seq']}"]}
    resumed = second["delivered"][0]
    assert (resumed["type"], resumed.get("resumed"), resumed["loss"]) == ("patch", True, None)
    state = await page.evaluate("() => states.at(-1)")
    _, rest = await sidecar.get_json("/api/jobs/j")
    assert state == {k: v for k, v in rest.items() if k not in ("type", "epoch", "seq", "resumed")}
    assert "loss" not in state and state["eval_loss"] == 1.2
    logs = await page.evaluate("() => logs")
    assert logs[logged_before] == [[1, 2, 3], True]  # the whole history, as a reset
    assert watched.errors == []


async def test_the_browser_client_spreads_a_crowd_that_a_restart_dropped(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """The page's pause before reconnecting, drawn many times as each client draws it: after a
    first drop with 1001, anywhere in a second; otherwise doubling, half of it random."""
    sidecar = await start_sidecar()
    page = await browser.new_page()
    await page.goto(sidecar.url("/static/progress-client.js"))
    await page.add_script_tag(url=sidecar.url("/static/progress-client.js"))
    draws = await page.evaluate(
        """() => {
        const options = { minBackoff: 250, maxBackoff: 10000 };
        const draw = (failures, code) =>
          Array.from({ length: 2000 }, () => ProgressClient.reconnectDelay(failures, code, options));
        return { restart: draw(1, 1001), dropped: draw(1, 1006), third: draw(3, 1001) };
    }"""
    )
    restart = draws["restart"]
    assert min(restart) >= 0 and max(restart) <= 1000
    tenths = [sum(int(p // 100) == t for p in restart) for t in range(10)]
    assert min(tenths) > 120, tenths
    assert all(250 <= p <= 500 for p in draws["dropped"])
    assert all(1000 <= p <= 2000 for p in draws["third"])
    await page.close()
