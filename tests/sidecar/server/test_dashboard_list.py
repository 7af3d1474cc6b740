"""The dashboard's jobs list: sorting, filters held in the address, counts per status, the
columns a finished job needs, ticking jobs to compare, and a thousand jobs. In a real Chromium
against a real sidecar, with real progress files."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.conftest import StartSidecar
from tests.helpers import write_atomic
from tests.sidecar.server.dashboard import Watched, open_page, running
from tests.sidecar.server.test_dashboard_hostile import ODD_LIST

ROWS = "#jobs tbody tr[data-job]"  # not the spacers of a long list
SUMMARY = (
    "node", "status", "progress", "complete", "stalled", "updated_at", "current_step",
    "total_steps", "loss", "eval_loss", "final_loss", "eta_seconds", "error", "started_at",
    "stall_reason", "read_error",
)  # fmt: skip
"""What a summary of /ws/jobs carries besides the job's id."""


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def write_at(path: Path, state: dict[str, Any], mtime: float) -> None:
    """Write ``state`` as a trainer does, then date the file ``mtime`` (its ``updated_at``)."""
    write_atomic(path, state)
    os.utime(path, (mtime, mtime))


async def shown_ids(page: Page) -> list[str]:
    return list(await page.locator(ROWS).evaluate_all("rows => rows.map(row => row.dataset.job)"))


async def expect_ids(page: Page, ids: list[str]) -> None:
    """The list shows ``ids``, in this order, within a few seconds."""
    deadline = time.monotonic() + 5
    while (shown := await shown_ids(page)) != ids and time.monotonic() < deadline:
        await page.wait_for_timeout(50)
    assert shown == ids


def hash_of(page: Page) -> str:
    return page.url.partition("#")[2]


def write_mixed(root: Path) -> None:
    """Four jobs, each updated a minute after the one before: run-a, run-b (running), oom
    (failed), done (completed)."""
    now = time.time()
    write_at(root / "run-a" / "progress.json", running(10, loss=0.5), now - 240)
    write_at(root / "run-b" / "progress.json", running(20, loss=0.25), now - 180)
    failed = {"status": "failed", "progress": 40, "error": "CUDA out of memory"}
    write_at(root / "oom" / "progress.json", failed, now - 120)
    write_at(root / "done" / "progress.json", {"status": "completed", "progress": 100}, now - 60)


async def on_nodes(page: Page, nodes: dict[str, str]) -> None:
    """Route /ws/jobs through the page: each job named in ``nodes`` gets that node."""

    def rewrite(message: dict[str, Any]) -> dict[str, Any]:
        for job, change in (message.get("jobs") or {}).items():
            if change and job in nodes:
                change["node"] = nodes[job]
        return message

    async def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        server.on_message(lambda m: ws.send(json.dumps(rewrite(json.loads(m)))))

    await page.route_web_socket(re.compile(r"/ws/jobs"), route)


async def test_list_sorts_by_a_column_and_back(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Most recently updated first; a click on Job (or Enter on it) sorts by id, a second the
    other way; the header says which (aria-sort) and the hash keeps it."""
    write_mixed(jobs_root)
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/"))
    page = watched.page
    await expect_ids(page, ["done", "oom", "run-b", "run-a"])
    updated = page.locator("th[data-sort=updated]")
    await expect(updated).to_have_attribute("aria-sort", "descending")
    await page.click("th[data-sort=job] button")
    await expect_ids(page, ["done", "oom", "run-a", "run-b"])
    await expect(page.locator("th[data-sort=job]")).to_have_attribute("aria-sort", "ascending")
    await expect(updated).to_have_attribute("aria-sort", "none")
    assert hash_of(page) == "sort=job&dir=asc"
    await page.focus("th[data-sort=job] button")
    await page.keyboard.press("Enter")
    await expect_ids(page, ["run-b", "run-a", "oom", "done"])
    assert hash_of(page) == "sort=job&dir=desc"
    await page.click("th[data-sort=loss] button")  # the lowest loss first, none last
    await expect_ids(page, ["run-b", "run-a", "done", "oom"])
    await page.reload()  # the order is the address's
    await expect_ids(page, ["run-b", "run-a", "done", "oom"])
    await expect(page.locator("th[data-sort=loss]")).to_have_attribute("aria-sort", "ascending")
    assert watched.errors == []


async def test_list_filters_as_the_address_says(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """``#status=``, ``#q=`` (id, node, status and error, any case), ``#node=`` and their
    combinations, each loaded directly; an unknown status or node shows no row, says so, and
    offers to clear the filters."""
    write_mixed(jobs_root)
    sidecar = await start_sidecar()
    page = await browser.new_page()
    watched = Watched(page)
    await on_nodes(page, {"run-a": "gpu-a", "oom": "gpu-a", "run-b": "gpu-b", "done": "gpu-b"})
    cases = {
        "status=failed": ["oom"],
        "q=cuda": ["oom"],  # its error
        "q=GPU-B": ["done", "run-b"],  # their node
        "q=run": ["run-b", "run-a"],  # their ids (and status)
        "node=gpu-a": ["oom", "run-a"],
        "status=running&node=gpu-a": ["run-a"],
        "status=completed&q=do": ["done"],
    }
    for query, ids in cases.items():
        await page.goto(sidecar.url(f"/#{query}"))
        await expect_ids(page, ids)
        await expect(page.locator("#jobs-none")).to_be_hidden()
    await page.goto(sidecar.url("/#status=running&node=gpu-a"))
    await expect(page.locator("#jobs-status")).to_have_value("running")
    await expect(page.locator("#jobs-node")).to_have_value("gpu-a")
    for query in ("status=lost", "node=elsewhere", "q=nothing-like-it"):
        await page.goto(sidecar.url(f"/#{query}"))
        await expect(page.locator("#jobs-none")).to_have_text(
            re.compile("^No job matches these filters"), timeout=5000
        )
        await expect(page.locator("#jobs-table")).to_be_hidden()
        await page.click("#jobs-clear")
        await expect_ids(page, ["done", "oom", "run-b", "run-a"])
        assert hash_of(page) == ""
    assert watched.errors == []


async def test_list_controls_write_the_hash_in_place(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Typing and choosing filter the list and rewrite the hash, with no history entry."""
    write_mixed(jobs_root)
    sidecar = await start_sidecar()
    page = await browser.new_page()
    watched = Watched(page)
    await on_nodes(page, {"run-a": "gpu-a", "oom": "gpu-a", "run-b": "gpu-b", "done": "gpu-b"})
    await page.goto(sidecar.url("/"))
    await expect_ids(page, ["done", "oom", "run-b", "run-a"])
    entries = await page.evaluate("() => history.length")
    await page.locator("#jobs-q").press_sequentially("Run")
    await expect_ids(page, ["run-b", "run-a"])
    assert hash_of(page) == "q=Run"
    await page.select_option("#jobs-node", "gpu-b")
    await expect_ids(page, ["run-b"])
    assert hash_of(page) == "node=gpu-b&q=Run"
    await page.fill("#jobs-q", "")
    await page.select_option("#jobs-status", "completed")
    await expect_ids(page, ["done"])
    assert hash_of(page) == "status=completed&node=gpu-b"
    assert await page.evaluate("() => history.length") == entries
    await page.reload()  # the address is the view
    await expect_ids(page, ["done"])
    await expect(page.locator("#jobs-q")).to_have_value("")
    assert watched.errors == []


async def test_list_counts_each_status_and_filters_on_a_click(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    write_mixed(jobs_root)
    write_atomic(jobs_root / "stop" / "progress.json", {"status": "cancelled", "progress": 5})
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/"))
    page = watched.page
    counts = page.locator("#jobs-counts")
    await expect(counts).to_have_text(
        "running 2 · completed 1 · failed 1 · cancelled 1", timeout=5000
    )
    await counts.get_by_role("button", name="failed 1").click()
    await expect_ids(page, ["oom"])
    assert hash_of(page) == "status=failed"
    await expect(counts.get_by_role("button", name="failed 1")).to_have_attribute(
        "aria-pressed", "true"
    )
    write_atomic(jobs_root / "run-a" / "progress.json", {"status": "failed", "error": "NaN"})
    await expect(counts).to_have_text("running 1 · completed 1 · failed 2 · cancelled 1")
    await expect_ids(page, ["run-a", "oom"])
    await counts.get_by_role("button", name="failed 2").click()  # again: every status
    assert hash_of(page) == ""
    await expect(page.locator(ROWS)).to_have_count(5)
    assert watched.errors == []


async def test_list_shows_the_error_times_and_final_loss_of_a_job(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """A failed job's error under its name (cut short, whole in its title); Started; Duration
    from start to the last update once finished, to now (each second) while running; a
    finished job with only final_loss shows it as its loss."""
    now = time.time()
    error = "CUDA out of memory. " * 20
    failed = {"status": "failed", "error": error, "started_at": iso(now - 3723 - 50)}
    write_at(jobs_root / "oom" / "progress.json", failed, now - 50)
    done = {"status": "completed", "progress": 100, "final_loss": 0.125}
    write_atomic(jobs_root / "done" / "progress.json", done)
    write_atomic(jobs_root / "run" / "progress.json", running(5, started_at=iso(now - 30)))
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/"))
    page = watched.page
    line = page.locator("tr[data-job=oom] .job-error")
    await expect(line).to_have_attribute("title", error)
    assert len(await line.text_content() or "") <= 100
    await expect(line).to_have_text(re.compile("^CUDA out of memory. .*…$"))
    started = await page.evaluate("s => DashboardFormat.time(s)", failed["started_at"])
    cells = page.locator("tr[data-job=oom] td")
    await expect(cells.nth(8)).to_have_text(started)
    await expect(cells.nth(9)).to_have_text("1:02:03")  # started to updated_at
    await expect(page.locator("tr[data-job=done] td").nth(6)).to_have_text("0.125")
    await expect(page.locator("tr[data-job=done] td").nth(6)).to_have_attribute(
        "title", "final loss"
    )
    duration = page.locator("tr[data-job=run] td").nth(9)
    await expect(duration).to_have_text(re.compile(r"^0:00:[34]\d$"))
    first = await duration.text_content()
    await expect(duration).not_to_have_text(first or "", timeout=3000)  # the clock moves it
    assert watched.errors == []


async def test_list_ticks_jobs_to_compare_and_refuses_an_eleventh(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    ids = [f"j{n:02}" for n in range(11)]
    for job in ids:
        write_atomic(jobs_root / job / "progress.json", running(1))
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#sort=job&dir=asc"))
    page = watched.page
    compare = page.locator("#jobs-compare")
    await expect(compare).to_have_text("Compare (0)", timeout=5000)
    await expect(compare).to_have_attribute("aria-disabled", "true")
    await page.check("input[data-pick=j05]")
    await expect(compare).to_have_text("Compare (1)")
    assert await compare.get_attribute("href") is None
    await page.check("input[data-pick=j01]")
    await expect(compare).to_have_attribute("href", "#compare=j05,j01")
    others = [job for job in ids if job not in ("j05", "j01")][:8]
    for job in others:
        await page.check(f"input[data-pick={job}]")
    await expect(compare).to_have_text("Compare (10)")
    await page.click("input[data-pick=j10]")
    await expect(page.locator("input[data-pick=j10]")).not_to_be_checked()
    await expect(page.locator("#jobs-pick-note")).to_have_text(
        re.compile("At most 10 jobs can be compared")
    )
    await expect(compare).to_have_text("Compare (10)")
    for job in others:
        await page.uncheck(f"input[data-pick={job}]")
    await expect(page.locator("#jobs-pick-note")).to_have_text("")
    assert watched.errors == []
    await compare.click()  # the compare view is tested on its own
    await page.wait_for_function("() => location.hash === '#compare=j05,j01'")
    await expect(page.locator("#compare-view")).to_be_visible()


async def test_list_of_a_thousand_jobs_changes_only_the_rows_that_change(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """A thousand jobs list within seconds, the table holding the rows near the viewport (and
    spacers as tall as the rest); a write changes that job's row, in place: the other rows are
    the same elements as before; a scroll to the end shows the last jobs."""
    for n in range(1000):
        write_atomic(jobs_root / f"job{n:04}" / "progress.json", running(n % 100, loss=1.0))
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#sort=job&dir=asc"))
    page = watched.page
    await expect(page.locator("#jobs-counts")).to_have_text("running 1000", timeout=10000)
    rows = page.locator("#jobs tbody tr[data-job]")
    await expect(rows.first).to_have_attribute("data-job", "job0000")
    shown = await rows.count()
    assert 10 < shown < 200, shown
    assert await shown_ids(page) == [f"job{n:04}" for n in range(shown)]
    height = await page.evaluate("() => document.documentElement.scrollHeight")
    assert height > 1000 * 30, height  # the spacer stands for the rows not in the table
    await page.evaluate(
        "() => document.querySelectorAll('#jobs tbody tr').forEach(r => { r.marked = 1; })"
    )
    write_atomic(jobs_root / "job0003" / "progress.json", running(99, loss=0.5))
    step = page.locator("tr[data-job=job0003] td").nth(5)
    await expect(step).to_have_text("99 / 100", timeout=5000)
    unmarked = (
        "() => [...document.querySelectorAll('#jobs tbody tr')].filter(r => !r.marked).length"
    )
    assert await page.evaluate(unmarked) == 0
    await page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    await expect(page.locator("tr[data-job=job0999]")).to_be_in_viewport(timeout=5000)
    await expect(page.locator("tr[data-job=job0000]")).to_have_count(0)
    write_atomic(jobs_root / "job0998" / "progress.json", running(98, loss=0.5))
    await expect(page.locator("tr[data-job=job0998] td").nth(5)).to_have_text("98 / 100")
    assert watched.errors == []


def odd_summaries(message: dict[str, Any], n: int) -> dict[str, Any]:
    """A /ws/jobs message with an odd value in every member of each job's summary."""
    jobs = message.get("jobs")
    if not isinstance(jobs, dict):
        return message
    odd = {
        job: change
        and {key: ODD_LIST[(n + i + j) % len(ODD_LIST)] for j, key in enumerate(SUMMARY)}
        for i, (job, change) in enumerate(jobs.items())
    }
    return {**message, "jobs": odd}


async def test_list_sorts_filters_and_counts_whatever_the_summaries_hold(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Odd values in every field of the summaries: every row shows, each column sorts, the
    filters and counts work, and the page has no error."""
    ids = [f"j{n:02}" for n in range(len(ODD_LIST))]
    for job in ids:
        write_atomic(jobs_root / job / "progress.json", running(5))
    sidecar = await start_sidecar()
    page = await browser.new_page()
    watched = Watched(page)

    async def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        counter = iter(range(10**6))
        server.on_message(
            lambda m: ws.send(json.dumps(odd_summaries(json.loads(m), next(counter))))
        )

    await page.route_web_socket(re.compile(r"/ws/jobs"), route)
    await page.goto(sidecar.url("/"))
    await expect(page.locator(ROWS)).to_have_count(len(ids), timeout=10000)
    assert await page.locator(f"{ROWS}.unrenderable").count() == 0
    for column in ("job", "node", "status", "progress", "step", "loss", "eta", "started",
                   "duration", "updated"):  # fmt: skip
        for _ in range(2):
            await page.click(f"th[data-sort={column}] button")
            await expect(page.locator(ROWS)).to_have_count(len(ids))
    counts = page.locator("#jobs-counts button")
    assert await counts.count() >= 2
    await counts.first.click()
    await expect(page.locator("#jobs-none")).to_be_hidden()
    await page.click("#jobs-counts button[aria-pressed=true]")  # again: every status
    await page.fill("#jobs-q", "x")
    await page.fill("#jobs-q", "")
    await expect(page.locator(ROWS)).to_have_count(len(ids))
    assert watched.errors == []
