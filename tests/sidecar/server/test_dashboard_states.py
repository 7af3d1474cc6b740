"""The dashboard in the states that are not a job running well (issue 9): a missing jobs root,
an unknown or invalid job, a failed, cancelled or stalled job, and the loss chart's legend and
axes. In a real Chromium against a real sidecar, with real progress files.

``DASH_SHOTS=/some/dir`` saves a screenshot of each state there.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.conftest import StartSidecar
from tests.helpers import spawn_sidecar, stop_sidecar, write_atomic
from tests.redis_server import RedisServer
from tests.sidecar.server.dashboard import open_page, running

RED = "rgb(198, 40, 40)"  # --bad in dashboard.css
GREEN = "rgb(30, 138, 76)"  # --ok
GREY = "rgb(107, 114, 128)"  # --ended


async def shot(page: Page, name: str) -> None:
    """Save a screenshot of the page when DASH_SHOTS names a directory."""
    if directory := os.environ.get("DASH_SHOTS"):
        Path(directory).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)


def append_metrics(job: Path, *entries: dict[str, float]) -> None:
    with open(job / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps(entry) + "\n" for entry in entries)


async def test_dashboard_missing_root_shows_a_notice_until_it_appears(
    tmp_path: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """A notice naming the root instead of an empty table; gone once the root (and a job) is
    there. With a token: the page passes it to /healthz."""
    root = tmp_path / "not-yet"
    sidecar = await start_sidecar(root=root, token="s3cret")
    watched = await open_page(browser, sidecar.url("/?token=s3cret"))
    page = watched.page
    notice = page.locator("#jobs-root")
    await expect(notice).to_have_text(
        f"The jobs root {root} does not exist (yet): the sidecar is waiting for it.", timeout=5000
    )
    await expect(page.locator("#jobs-table")).to_be_hidden()
    await expect(page.locator("#jobs-empty")).to_be_hidden()
    await shot(page, "missing-root")
    root.mkdir()  # the next look at /healthz (every 3 s while the list is empty) sees it
    await expect(page.locator("#jobs-empty")).to_be_visible(timeout=10000)
    await expect(notice).to_be_hidden()
    await shot(page, "missing-root-then-empty")
    write_atomic(root / "j" / "progress.json", running(3))
    await expect(page.locator("tr[data-job=j] progress")).to_have_attribute(
        "value", "3", timeout=5000
    )
    await expect(page.locator("#jobs-empty")).to_be_hidden()
    await shot(page, "missing-root-then-a-job")
    assert watched.errors == []


async def test_dashboard_unknown_job_says_so_then_goes_live_when_it_appears(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """``#job=nope``: a message with a link to the list, no polling, no 404 on the console;
    the job's directory appears and the view follows it by itself."""
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=nope"))
    page = watched.page
    message = page.locator("#job-problem-text")
    await expect(message).to_have_text(
        "No job named nope under this sidecar. This page shows it as soon as it appears.",
        timeout=5000,
    )
    await expect(page.locator("#job-live")).to_be_hidden()
    await expect(page.locator("#connection")).to_have_text("waiting for the job")
    await shot(page, "unknown-job")
    # The link leads to the list; back again, the list already knows there is no such job.
    await page.locator("#job-problem a", has_text="list of jobs").click()
    await expect(page.locator("#jobs-view")).to_be_visible()
    await page.go_back()
    await expect(message).to_have_text(re.compile("^No job named nope "), timeout=5000)
    (jobs_root / "nope").mkdir()  # a pending job first, then its progress file
    await expect(page.locator("[data-field=status] dd")).to_have_text("pending", timeout=5000)
    write_atomic(jobs_root / "nope" / "progress.json", running(4))
    await expect(page.locator("[data-field=step] dd")).to_have_text("4 / 100", timeout=5000)
    await expect(page.locator("#job-problem")).to_be_hidden()
    await expect(page.locator("#connection")).to_have_text("live")
    await shot(page, "unknown-job-then-live")
    assert watched.errors == []


async def test_dashboard_removed_job_says_so_without_polling(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """A followed job whose directory goes (4404 ``job removed``) is shown as gone, not polled."""
    write_atomic(jobs_root / "gone" / "progress.json", running(2))
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=gone"))
    page = watched.page
    await expect(page.locator("[data-field=step] dd")).to_have_text("2 / 100", timeout=5000)
    (jobs_root / "gone" / "progress.json").unlink()
    (jobs_root / "gone").rmdir()
    await expect(page.locator("#job-problem-text")).to_have_text(
        re.compile("^No job named gone under this sidecar"), timeout=5000
    )
    await expect(page.locator("#connection")).to_have_text("waiting for the job")
    assert watched.errors == []


async def test_dashboard_invalid_job_id_says_so(
    start_sidecar: StartSidecar, browser: Browser
) -> None:
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=..%2Fetc"))
    page = watched.page
    await expect(page.locator("#job-problem-text")).to_have_text(
        re.compile("^“../etc” is not a valid job id"), timeout=5000
    )
    await expect(page.locator("#job-live")).to_be_hidden()
    await expect(page.locator("#job-problem a[href='#']")).to_be_visible()
    await shot(page, "invalid-job-id")
    assert watched.errors == []


async def test_dashboard_finished_jobs_show_their_outcome(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """The header badge names the final status, in its colour, and the bar takes that colour:
    failed red, cancelled grey, completed green (it read "finished" in green, bar blue)."""
    write_atomic(
        jobs_root / "f" / "progress.json", {"status": "failed", "progress": 40, "error": "OOM"}
    )
    write_atomic(jobs_root / "c" / "progress.json", {"status": "cancelled", "progress": 70})
    write_atomic(jobs_root / "ok" / "progress.json", {"status": "completed", "progress": 100})
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/"))
    page = watched.page
    badge, bar = page.locator("#connection"), page.locator("#job-progress")
    for job, status, kind, colour in (
        ("f", "failed", "bad", RED),
        ("c", "cancelled", "ended", GREY),
        ("ok", "completed", "ok", GREEN),
    ):
        row_bar = page.locator(f"tr[data-job={job}] progress")
        await expect(row_bar).to_have_class(kind, timeout=5000)
        await expect(row_bar).to_have_css("accent-color", colour)
        await page.evaluate("job => { location.hash = 'job=' + job; }", job)
        await expect(badge).to_have_text(status, timeout=5000)
        await expect(badge).to_have_class(kind)
        await expect(badge).to_have_css("color", colour)
        await expect(bar).to_have_class(kind)
        await expect(bar).to_have_css("accent-color", colour)
        await shot(page, f"{status}-job")
        await page.click("#back")
    await shot(page, "finished-jobs-list")
    assert watched.errors == []


async def test_dashboard_stalled_job_shows_no_eta(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """A stalled job's ETA is stale: "stalled" stands in its place, in the list and the view."""
    write_atomic(jobs_root / "s" / "progress.json", running(5, eta_seconds=90))
    sidecar = await start_sidecar(stall_after=1.0)
    watched = await open_page(browser, sidecar.url("/"))
    page = watched.page
    eta_cell = page.locator("tr[data-job=s] td").nth(
        7
    )  # a tick box, Job, Node, Status, Progress, Step, Loss
    await expect(page.locator("tr[data-job=s]")).to_have_class(re.compile("stalled"), timeout=5000)
    await expect(eta_cell).to_have_text("stalled")
    await page.click("a[href='#job=s']")
    await expect(page.locator("#job-alert")).to_have_text(re.compile("^stalled"), timeout=5000)
    await expect(page.locator("[data-field=eta] dd")).to_have_text("stalled")
    await shot(page, "stalled-job")
    # Moving again: the ETA is back.
    write_atomic(jobs_root / "s" / "progress.json", running(6, eta_seconds=80))
    await expect(page.locator("[data-field=eta] dd")).to_have_text("0:01:20", timeout=5000)
    assert watched.errors == []


async def test_dashboard_legend_shows_the_latest_values_or_those_under_the_cursor(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    job = jobs_root / "run"
    write_atomic(job / "progress.json", running(40, loss=0.5))
    append_metrics(
        job,
        {"step": 10, "loss": 2.0},
        {"step": 20, "loss": 1.0, "eval_loss": 1.2},
        {"step": 30, "loss": 0.75},
        {"step": 40, "loss": 0.5},
    )
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=run"))
    page = watched.page
    values = page.locator("#chart .u-legend .u-value")
    # The latest value of each series: eval loss was last measured at step 20.
    await expect(values).to_have_text(["40", "0.5", "1.2"], timeout=5000)
    await shot(page, "legend-latest")
    # Under the cursor: the values at the step below it (steps 10..40 span the plot's width).
    over = await page.locator("#chart .u-over").bounding_box()
    assert over is not None
    await page.mouse.move(over["x"] + over["width"] / 3, over["y"] + over["height"] / 2)
    await expect(values).to_have_text(["20", "1", "1.2"])
    await shot(page, "legend-under-cursor")
    await page.mouse.move(5, 5)  # off the chart: the latest again
    await expect(values).to_have_text(["40", "0.5", "1.2"])
    append_metrics(job, {"step": 50, "loss": 0.4, "eval_loss": 0.45})
    await expect(values).to_have_text(["50", "0.4", "0.45"], timeout=5000)
    assert watched.errors == []


async def test_dashboard_chart_with_one_point_has_axes_around_it(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """One logged step: whole steps around it on x (not 0 to twice the step), and a loss range
    around the one value on y."""
    job = jobs_root / "first"
    write_atomic(job / "progress.json", running(10, loss=2.5))
    append_metrics(job, {"step": 10, "loss": 2.5})
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=first"))
    page = watched.page
    chart = page.locator("#chart")
    await expect(chart).to_have_attribute("data-points", "1", timeout=5000)
    await expect(chart).to_have_attribute("data-x-ticks", re.compile(r"\b10\b"))
    x_ticks = (await chart.get_attribute("data-x-ticks") or "").split()
    y_ticks = (await chart.get_attribute("data-y-ticks") or "").split()
    assert all(re.fullmatch(r"\d+", tick) for tick in x_ticks), x_ticks
    assert all(9 <= int(tick) <= 11 for tick in x_ticks), x_ticks
    assert y_ticks and all(re.fullmatch(r"-?\d+(\.\d+)?", tick) for tick in y_ticks), y_ticks
    low, high = float(y_ticks[0]), float(y_ticks[-1])
    assert low < 2.5 < high and high - low <= 1, y_ticks
    await expect(page.locator("#chart .u-legend .u-value")).to_have_text(["10", "2.5", "\u2013"])
    await shot(page, "one-point-chart")
    assert watched.errors == []


async def test_dashboard_of_a_gateway_whose_bus_is_down_says_why(
    redis_server: RedisServer, browser: Browser
) -> None:
    """An empty list on a gateway that cannot read Redis says so, with /healthz's reason; once
    Redis answers, the list is empty because no node has a job."""
    redis_server.kill()
    process, host, port = await spawn_sidecar(None, "--redis", redis_server.url)
    try:
        watched = await open_page(browser, f"http://{host}:{port}/")
        empty = watched.page.locator("#jobs-empty")
        await expect(empty).to_contain_text(
            "No jobs yet: this gateway's bus is down, and it retries. reading:", timeout=5000
        )
        await shot(watched.page, "gateway-bus-down")
        redis_server.start()
        await expect(empty).to_have_text("No jobs on any node of the cluster yet.", timeout=15000)
        assert watched.errors == []
    finally:
        log = await stop_sidecar(process)
    assert "Traceback" not in log


async def test_dashboard_draws_the_whole_curve_of_a_finished_job(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Completed, failed and cancelled alike, opened by URL or from the list: the chart holds
    the job's history (the browser client ended on the final state, before the history that
    follows it came: the chart was empty)."""
    for job, status in (("ok", "completed"), ("f", "failed"), ("c", "cancelled")):
        write_atomic(jobs_root / job / "progress.json", {"status": status, "progress": 30})
        append_metrics(jobs_root / job, *({"step": s, "loss": 3.0 / s} for s in (10, 20, 30)))
    sidecar = await start_sidecar()
    values = "#chart .u-legend .u-value"
    for job in ("ok", "f", "c"):
        watched = await open_page(browser, sidecar.url(f"/#job={job}"))
        await expect(watched.page.locator(values)).to_have_text(
            ["30", "0.1", "\N{EN DASH}"], timeout=5000
        )
        assert watched.errors == []
    watched = await open_page(browser, sidecar.url("/"))
    page = watched.page
    for job in ("ok", "f", "c"):
        await page.click(f"tr[data-job={job}] a")
        await expect(page.locator(values)).to_have_text(["30", "0.1", "\N{EN DASH}"], timeout=5000)
        await page.click("#back")
    assert watched.errors == []
