"""The dashboard's job list and job view, live, in a real Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

from playwright.async_api import Browser, expect

from tests.conftest import Sidecar, StartSidecar
from tests.helpers import write_atomic
from tests.sidecar.server.dashboard import open_page, running

DOCS = Path(__file__).parents[3] / "docs"


async def test_the_page_loads_live_without_console_errors(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    write_atomic(jobs_root / "a" / "progress.json", running(10, loss=1.5, eta_seconds=90))
    write_atomic(
        jobs_root / "b" / "progress.json", {"status": "failed", "error": "CUDA out of memory"}
    )
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/"))
    page = watched.page
    await expect(page.locator("tr[data-job=a] progress")).to_have_attribute(
        "value", "10", timeout=5000
    )
    await expect(page.locator("tr[data-job=b]")).to_have_class(re.compile("status-failed"))
    # A new job shows up, and a change moves its bar, with no reload.
    write_atomic(jobs_root / "c" / "progress.json", running(50))
    await expect(page.locator("tr[data-job=c] progress")).to_have_attribute(
        "value", "50", timeout=5000
    )
    await expect(page.locator("#connection")).to_have_text("live")
    # Keyboard: the job link takes focus (past the list's controls) and opens the job.
    link = page.locator("a[href='#job=a']")
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await link.evaluate("a => a === document.activeElement"):
            break
    await expect(link).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#job-title")).to_have_text("a")
    assert watched.errors == []


async def test_each_write_moves_the_bar_and_the_chart_within_a_second(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    job = jobs_root / "run"
    write_atomic(job / "progress.json", running(0))
    (job / "metrics.jsonl").write_text("")
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=run"))
    page = watched.page
    await expect(page.locator("#job-progress")).to_have_attribute("value", "0", timeout=5000)
    for n, step in enumerate((10, 20, 30, 40), start=1):
        with open(job / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "loss": 2.0 / n}) + "\n")
        write_atomic(job / "progress.json", running(step, loss=2.0 / n))
        await expect(page.locator("#job-progress")).to_have_attribute(
            "value", str(step), timeout=1000
        )
        await expect(page.locator("#chart")).to_have_attribute("data-points", str(n), timeout=1000)
    await expect(page.locator("[data-field=loss] dd")).to_have_text("0.5")
    assert watched.errors == []


async def test_a_failed_job_shows_its_error(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", running(5))
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=j"))
    page = watched.page
    await expect(page.locator("[data-field=step] dd")).to_have_text("5 / 100", timeout=5000)
    write_atomic(
        jobs_root / "j" / "progress.json",
        {"status": "failed", "error": "RuntimeError: CUDA out of memory"},
    )
    await expect(page.locator("#job-alert")).to_have_text(
        "failed: RuntimeError: CUDA out of memory", timeout=5000
    )
    await expect(page.locator("#job-alert")).to_be_visible()
    await page.click("#back")
    await expect(page.locator("tr[data-job=j]")).to_have_class(re.compile("status-failed"))
    assert watched.errors == []


async def test_with_a_token_the_page_needs_it(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    write_atomic(jobs_root / "j" / "progress.json", running(2))
    sidecar = await start_sidecar(token="s3cret")
    page = await browser.new_page()
    response = await page.goto(sidecar.url("/"))
    assert response is not None and response.status == 401
    assert "unauthorized" in await page.content()
    watched = await open_page(browser, sidecar.url("/?token=s3cret"))
    await expect(watched.page.locator("tr[data-job=j] progress")).to_have_attribute(
        "value", "2", timeout=5000
    )
    await watched.page.click("a[href='#job=j']")
    await expect(watched.page.locator("[data-field=step] dd")).to_have_text("2 / 100", timeout=5000)
    assert watched.errors == []


async def test_a_real_training_run_in_the_job_view(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser, tmp_path: Path
) -> None:
    """The screenshot in the README comes from here (DOCS_SCREENSHOT=1 writes it to docs/)."""
    sidecar: Sidecar = await start_sidecar()
    (jobs_root / "tiny-gpt2").mkdir()
    watched = await open_page(browser, sidecar.url("/#job=tiny-gpt2"))
    trainer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trainer", "--jobs-root", str(jobs_root), "--job-id", "tiny-gpt2",
        "--max-steps", "300", "--eval-steps", "30", "--logging-steps", "5", "--progress-interval", "0.2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await asyncio.wait_for(trainer.wait(), 180) == 0
    page = watched.page
    await expect(page.locator("[data-field=status] dd")).to_have_text("completed", timeout=30000)
    await expect(page.locator("#chart")).to_have_attribute("data-points", "60", timeout=30000)
    assert watched.errors == []
    shot = tmp_path / "job-view.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("DOCS_SCREENSHOT"):
        shutil.copy(shot, DOCS / "dashboard-job.png")


async def test_the_node_shows_in_the_list_and_in_the_job_view(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """A Node column after Job, from each summary's ``node`` (a lone sidecar's is its host
    name), and the node among the job's facts; a long name is cut short, whole on hover."""
    write_atomic(jobs_root / "a" / "progress.json", running(10))
    sidecar = await start_sidecar()
    _, listing = await sidecar.get_json("/api/jobs")
    node = listing["jobs"][0]["node"]
    assert node == socket.gethostname()
    watched = await open_page(browser, sidecar.url("/"))
    page = watched.page
    columns = ["Compare", "Job", "Node", "Status", "Progress", "Step", "Loss", "ETA"]
    columns += ["Started", "Duration", "Updated"]
    await expect(page.locator("#jobs thead th")).to_have_text(columns)
    cell = page.locator("tr[data-job=a] td").nth(2)
    await expect(cell).to_have_text(node, timeout=5000)
    await page.click("a[href='#job=a']")
    await expect(page.locator("[data-field=node] dd")).to_have_text(node, timeout=5000)
    await expect(page.locator("[data-field=node] dt")).to_have_text("Node")
    assert watched.errors == []

    long = "gpu-node-0042.training-cluster.europe-west4.example.internal"
    other = await start_sidecar(node=long)
    watched = await open_page(browser, other.url("/"))
    name = watched.page.locator("tr[data-job=a] .node")
    await expect(name).to_have_text(long, timeout=5000)
    await expect(name).to_have_attribute("title", long)
    box = await name.bounding_box()
    assert box is not None and box["width"] <= 9 * 16  # 9rem
    assert await name.evaluate("span => span.scrollWidth > span.clientWidth")  # cut short
    assert watched.errors == []


async def test_a_job_waited_for_is_followed_by_one_client(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """A job view opened before its job exists follows it once it appears, with one client,
    however many messages of other jobs the list gets after (each started one more)."""
    write_atomic(jobs_root / "other" / "progress.json", running(1))
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=late"))
    page = watched.page
    await expect(page.locator("#job-problem-text")).to_contain_text("No job named late")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    write_atomic(jobs_root / "late" / "progress.json", running(2))
    await expect(page.locator("#job-progress-text")).to_have_text("2.0 %", timeout=5000)
    for step in range(3, 8):
        write_atomic(jobs_root / "other" / "progress.json", running(step))
        await asyncio.sleep(0.2)  # a message of the list each, apart
    _, health = await sidecar.get_json("/healthz")
    assert health["clients"] == 2, health  # the list, and the one job
    assert [url for url in sockets if "/ws/training/" in url] == [
        sidecar.ws_url("late", "history=1")
    ]
    assert watched.errors == []
