"""The browser client as an ES module, its close codes in onStatus, and stop() from callbacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.conftest import Sidecar, StartSidecar
from tests.helpers import write_atomic
from tests.sidecar.server.dashboard import Watched, open_page, running

DOCS = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
HOOK = Path(__file__).resolve().parents[3] / "tests" / "types" / "use-job-progress.ts"

FRONTEND = """<!doctype html><html><head><meta charset="utf-8"><title>frontend</title>
<link rel="icon" href="data:,"></head><body>
<p id="out">waiting</p>
<script type="module">
  import DefaultClient, {{ ProgressClient }} from "{sidecar}/static/progress-client.mjs";
  window.sameClass = DefaultClient === ProgressClient && ProgressClient === window.ProgressClient;
  window.statuses = [];
  new ProgressClient({{
    url: "{sidecar}", jobId: "j", token: "t0ken",
    onState: (s) => {{ document.getElementById("out").textContent = s.status + " " + s.current_step; }},
    onStatus: (status, code) => statuses.push([status, code ?? null]),
  }}).start();
</script></body></html>"""


def _jobs(root: Path) -> None:
    write_atomic(root / "run" / "progress.json", running(1, loss=2.0))
    (root / "run" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    done = {"status": "completed", "progress": 100, "current_step": 9, "final_loss": 0.5}
    write_atomic(root / "done" / "progress.json", done)
    (root / "done" / "metrics.jsonl").write_text('{"step": 9, "loss": 0.5}\n')


async def test_a_frontend_on_another_origin_imports_the_module(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """`import { ProgressClient } from ".../progress-client.mjs"` in a page of another origin
    (a module script: the sidecar must allow it by CORS): the named and the default export are
    the classic script's class, and the job's states come, then "complete" with code 1000."""
    frontend = web.Application()
    page_html: list[str] = []

    async def serve_page(request: web.Request) -> web.Response:
        return web.Response(text=page_html[0], content_type="text/html")

    frontend.router.add_get("/", serve_page)
    runner = web.AppRunner(frontend)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        write_atomic(jobs_root / "j" / "progress.json", running(3))
        sidecar = await start_sidecar(token="t0ken", allowed_origins=(origin,))
        page_html.append(FRONTEND.format(sidecar=sidecar.url("").rstrip("/")))
        watched = await open_page(browser, origin + "/")
        page = watched.page
        await expect(page.locator("#out")).to_have_text("running 3", timeout=5000)
        assert await page.evaluate("() => sameClass") is True
        write_atomic(jobs_root / "j" / "progress.json", {"status": "completed", "current_step": 4})
        await expect(page.locator("#out")).to_have_text("completed 4", timeout=5000)
        await page.wait_for_function("() => statuses.at(-1)?.[0] === 'complete'")
        statuses = await page.evaluate("() => statuses")
        assert statuses == [["connecting", None], ["live", None], ["complete", 1000]]
        assert watched.errors == []
    finally:
        await runner.cleanup()


async def test_the_module_and_the_types_are_served(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    for name, content_type, text in (
        ("progress-client.mjs", "text/javascript", 'import "./progress-client.js";'),
        ("progress-client.d.ts", "text/plain", "export declare class ProgressClient"),
    ):
        async with sidecar.session.get(sidecar.url(f"/static/{name}")) as response:
            assert response.status == 200
            assert response.content_type == content_type
            assert text in await response.text()


# The page's WebSockets, timers and fetches, counted by wrapping the browser's own; a client
# from the module, `run.trace` of its callbacks, and, on `stopOn`, stop() from inside that
# callback, then (once the client's code after the callback has run) what is still pending.
HARNESS = """async ({ jobId, stopOn, history }) => {
  const pending = new Set();
  const nativeSet = window.setTimeout.bind(window);
  const nativeClear = window.clearTimeout.bind(window);
  window.setTimeout = (fn, ms) => {
    const id = nativeSet(() => { pending.delete(id); fn(); }, ms);
    pending.add(id);
    return id;
  };
  window.clearTimeout = (id) => { pending.delete(id); nativeClear(id); };
  const NativeSocket = window.WebSocket;
  const sockets = [];
  window.WebSocket = class extends NativeSocket {
    constructor(...args) { super(...args); sockets.push(this); }
  };
  const nativeFetch = window.fetch.bind(window);
  let fetching = 0;
  window.fetch = (...args) => {
    run.fetches += 1;
    fetching += 1;
    return nativeFetch(...args).finally(() => { fetching -= 1; });
  };
  const { ProgressClient } = await import("/static/progress-client.mjs");
  window.run = { trace: [], stoppedAt: null, afterStop: null, fetches: 0, sockets };
  run.open = () => sockets.filter((s) => s.readyState !== NativeSocket.CLOSED).length;
  let states = 0;
  let logs = 0;
  const seen = (what) => {
    run.trace.push(what);
    if (what !== stopOn || run.stoppedAt !== null) return;
    client.stop();
    run.stoppedAt = run.trace.length;
    queueMicrotask(() => {
      const live = sockets.filter((s) => s.readyState <= NativeSocket.OPEN).length;
      run.afterStop = { timers: pending.size, live, fetching };
    });
  };
  const client = new ProgressClient({
    jobId, minBackoff: 20, maxBackoff: 40, pollInterval: 50, failuresBeforePolling: 2,
    onState: (state) => seen(state.complete ? "state:complete" : `state:${++states}`),
    onLog: history ? () => seen(`log:${++logs}`) : undefined,
    onStatus: (status, code) => seen(`status:${status}`),
  });
  client.start();
}"""

STOPS = [
    ("ghost", "status:connecting", False),
    ("ghost", "status:reconnecting", False),  # after a 4404: the pause's timer is next
    ("ghost", "status:polling", False),  # the first poll is next
    ("run", "status:live", False),
    ("run", "state:1", False),  # a connection's first state
    ("run", "log:1", True),
    ("done", "state:complete", False),  # the end and its "complete" are next
    ("done", "state:complete", True),  # the history that the end waits for is next
    ("done", "log:1", True),  # the end is next
    ("done", "status:complete", True),
    ("blocked", "state:1", False),  # a polled state: the next poll's timer is next
]


async def _follow(page: Page, sidecar: Sidecar, job: str, stop_on: str, history: bool) -> None:
    await page.goto(sidecar.url("/static/progress-client.d.ts"))  # a bare page of the sidecar
    arguments = {"jobId": job, "stopOn": stop_on, "history": history}
    await page.evaluate(HARNESS, arguments)
    await page.wait_for_function("() => run.afterStop !== null", timeout=10000)


@pytest.mark.parametrize(("job", "stop_on", "history"), STOPS)
async def test_stop_from_inside_a_callback_leaves_nothing_running(
    jobs_root: Path,
    start_sidecar: StartSidecar,
    browser: Browser,
    job: str,
    stop_on: str,
    history: bool,
) -> None:
    """Once the callback that called stop() returns, the client holds no socket that is
    connecting or open, no timer, no request; no callback comes after it, and nothing opens
    later (watched for several of its 20-40 ms pauses and 50 ms polls)."""
    _jobs(jobs_root)
    sidecar = await start_sidecar()
    page = await browser.new_page()
    watched = Watched(page)

    async def refuse(ws: WebSocketRoute) -> None:
        await ws.close(code=1011, reason="blocked by a proxy")

    if job == "blocked":  # WebSockets refused: the client polls the job named "run"
        await page.route_web_socket(re.compile(r"/ws/training/"), refuse)
        job = "run"
    await _follow(page, sidecar, job, stop_on, history)
    run: dict[str, Any] = await page.evaluate(
        "() => ({ ...run, sockets: run.sockets.length, open: run.open() })"
    )
    assert run["afterStop"] == {"timers": 0, "live": 0, "fetching": 0}, run
    assert run["trace"][-1] == stop_on and len(run["trace"]) == run["stoppedAt"], run
    await page.wait_for_function("() => run.open() === 0")  # the closing handshakes end
    # Absence can only be watched for a while: 300 ms is over seven of the client's longest
    # pauses (40 ms) and polls (50 ms); a client that stopped has none left (checked above).
    await page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 300))")
    later = await page.evaluate("() => ({ ...run, sockets: run.sockets.length, open: run.open() })")
    assert (later["trace"], later["sockets"], later["fetches"], later["open"]) == (
        run["trace"],
        run["sockets"],
        run["fetches"],
        0,
    )
    if stop_on == "status:connecting":
        assert run["sockets"] == 0
    # The only errors: the refused connections to a job that does not exist (404 by REST).
    assert all("ghost" in e or "404" in e or "1011" in e for e in watched.errors), watched.errors
    await page.close()


STATUS_CODES = """async ({ jobId, token }) => {
  const { ProgressClient } = await import("/static/progress-client.mjs");
  window.statuses = [];
  new ProgressClient({
    jobId, token, minBackoff: 20, maxBackoff: 40, failuresBeforePolling: 2, pollInterval: 50,
    onStatus: (status, code) => statuses.push([status, code ?? null]),
  }).start();
}"""


@pytest.mark.parametrize(
    ("job", "token", "expected"),
    [
        ("done", "t0ken", [["connecting", None], ["live", None], ["complete", 1000]]),
        (
            "ghost",
            "t0ken",
            [
                ["connecting", None],
                ["reconnecting", 4404],  # the pause begins
                ["reconnecting", 4404],  # the next try
                ["polling", 4404],
            ],
        ),
        ("run", "wrong", [["connecting", None], ["error: unauthorized", 4401]]),
    ],
)
async def test_on_status_has_the_close_code_behind_each_status(
    jobs_root: Path,
    start_sidecar: StartSidecar,
    browser: Browser,
    job: str,
    token: str,
    expected: list[list[Any]],
) -> None:
    _jobs(jobs_root)
    sidecar = await start_sidecar(token="t0ken")
    page = await browser.new_page()
    await page.goto(sidecar.url("/static/progress-client.d.ts"))
    await page.evaluate(STATUS_CODES, {"jobId": job, "token": token})
    await page.wait_for_function(f"() => statuses.length >= {len(expected)}")
    assert (await page.evaluate("() => statuses"))[: len(expected)] == expected
    await page.close()


def test_the_docs_react_hook_is_the_one_tsc_checks() -> None:
    """docs/protocol.md's useJobProgress is tests/types/use-job-progress.ts, which
    scripts/check compiles against progress-client.d.ts (with React's types)."""
    text = DOCS.read_text()
    section = text[text.index("## The browser client and the dashboard") :]
    block = re.search(r"```tsx?\n(.*?useJobProgress.*?)```", section, re.DOTALL)
    assert block, "no useJobProgress example in docs/protocol.md"
    assert block.group(1) == HOOK.read_text()
