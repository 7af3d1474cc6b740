"""The dashboard's health banner (health-banner.js): what /healthz says that the page's own
live sockets cannot, shown above every view. In Chromium, against a real node and gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import StartSidecar
from tests.helpers import spawn_sidecar, stop_sidecar, write_atomic
from tests.redis_server import RedisServer
from tests.sidecar.server.dashboard import open_page, running
from tests.sidecar.server.test_dashboard_states import shot

pytestmark = pytest.mark.timeout(90)
BANNER_WAIT = 12000  # ms: the banner looks at /healthz every 5 s


async def test_banner_says_a_gateways_bus_is_down_and_a_node_lost(
    tmp_path: Path, redis_server: RedisServer, browser: Browser
) -> None:
    """A gateway whose Redis went away keeps its list (the last states it had) under a banner
    saying they may be out of date; the banner goes once Redis is back. A node that stops
    being heard from is named lost."""
    root = tmp_path / "jobs"
    write_atomic(root / "job-a" / "progress.json", running(3))
    node, _, _ = await spawn_sidecar(
        root, "--redis", redis_server.url, "--node", "node-a", "--node-timeout", "1.5"
    )
    gateway, host, port = await spawn_sidecar(
        None, "--redis", redis_server.url, "--node-timeout", "1.5"
    )
    try:
        watched = await open_page(browser, f"http://{host}:{port}/")
        page = watched.page
        banner = page.locator("#health-banner")
        await expect(page.locator("tr[data-job=job-a]")).to_be_visible(timeout=10000)
        await expect(banner).to_be_hidden()

        redis_server.kill()
        await expect(banner).to_contain_text("This gateway's bus is down", timeout=BANNER_WAIT)
        await expect(banner).to_contain_text("the jobs shown may be out of date")
        await expect(page.locator("tr[data-job=job-a]")).to_be_visible()  # the last state
        await shot(page, "gateway-bus-down-banner")
        redis_server.start()
        await expect(banner).to_be_hidden(timeout=BANNER_WAIT + 5000)

        node.kill()  # no goodbye: the gateway hears nothing more from node-a
        await node.wait()
        await expect(banner).to_have_text(
            "Node node-a lost: not heard from; its running jobs are shown stalled.",
            timeout=BANNER_WAIT,
        )
        assert watched.errors == []
    finally:
        if node.returncode is None:
            await stop_sidecar(node)
        log = await stop_sidecar(gateway)
    assert "Traceback" not in log


async def test_banner_names_the_tasks_down(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """/healthz names each task down, with why, in an object: the banner names them."""
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/"))
    lines = await watched.page.evaluate(
        """() => [
          HealthBanner.linesOf({status: "degraded", tasks_down: {watcher: "crashed: OSError"}}),
          HealthBanner.linesOf(JSON.parse('{"tasks_down": {"a": "x", "b": "y", "__proto__": "z"}}')),
          HealthBanner.linesOf({tasks_down: ["not", "an", "object"]}),
          HealthBanner.linesOf({status: "ok"}),
        ]"""
    )
    assert lines == [
        [
            "The sidecar's watcher task is down and being restarted: what it does is not done "
            "meanwhile."
        ],
        [
            "The sidecar's a, b, __proto__ tasks are down and being restarted: what they do is "
            "not done meanwhile."
        ],
        [],
        [],
    ]
    assert watched.errors == []
