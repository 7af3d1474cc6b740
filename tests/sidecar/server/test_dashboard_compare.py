"""The compare view (``#compare=ID1,ID2,...``): one metric of several jobs on one chart, one
colour each, live; invalid and unknown ids named and skipped; at most ten jobs; a phone's width.
In a real Chromium against a real sidecar, with real progress and metrics files.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.conftest import StartSidecar
from tests.helpers import write_atomic
from tests.sidecar.server.dashboard import Watched, open_page, running
from tests.sidecar.server.test_dashboard_states import append_metrics, shot

LEGEND = "#compare-legend li"


def a_job(jobs_root: Path, job: str, scale: float, steps: int = 10, **state: object) -> None:
    """A job whose loss is ``scale / step`` and learning rate ``scale * 1e-3``, for ``steps`` steps."""
    write_atomic(jobs_root / job / "progress.json", state or running(steps))
    append_metrics(
        jobs_root / job,
        *(
            {"step": s, "loss": scale / s, "learning_rate": scale * 1e-3}
            for s in range(1, steps + 1)
        ),
    )


async def latest(page: Page) -> dict[str, float | None]:
    """Each job's latest drawn value, as the chart element keeps it."""
    return dict(
        json.loads(await page.locator("#compare-chart").get_attribute("data-latest") or "[]")
    )


async def swatches(page: Page) -> list[str]:
    return await page.locator(f"{LEGEND} .swatch").evaluate_all(
        "spans => spans.map(s => getComputedStyle(s).backgroundColor)"
    )


async def test_compare_two_jobs_live(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Each job in the legend, in its colour, linked to its view; a running job's new point
    arrives; another metric, and a log scale, for all of them."""
    a_job(jobs_root, "a", 2.0)
    a_job(jobs_root, "b", 4.0, status="completed", progress=100)
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#compare=a,b"))
    page = watched.page
    await expect(page.locator(f"{LEGEND} a")).to_have_text(["a", "b"], timeout=5000)
    await expect(page.locator(f"{LEGEND} a").first).to_have_attribute("href", "#job=a")
    await expect(page.locator(f"{LEGEND} .badge")).to_have_text(["running", "completed"])
    await expect(page.locator("#compare-chart")).to_have_attribute("data-points", "10")
    colours = await swatches(page)
    assert len(set(colours)) == 2, colours
    await expect(page.locator(f"{LEGEND} .value")).to_have_text(["0.2", "0.4"])
    assert await latest(page) == {"a": 0.2, "b": 0.4}
    await expect(page.locator("#compare-notice")).to_be_hidden()
    await shot(page, "compare-two")
    append_metrics(jobs_root / "a", {"step": 11, "loss": 0.15})
    await expect(page.locator("#compare-chart")).to_have_attribute(
        "data-points", "11", timeout=5000
    )
    assert await latest(page) == {"a": 0.15, "b": 0.4}
    await page.select_option("#compare-metric", "learning_rate")
    assert await latest(page) == {"a": 2.0e-3, "b": 4.0e-3}
    assert re.search(r"#compare=a,b&metric=learning_rate&log=0&smooth=0$", page.url), page.url
    await page.check("#compare-log")
    ticks = (await page.locator("#compare-chart").get_attribute("data-y-ticks") or "").split()
    assert ticks and all(math.log10(float(t)).is_integer() for t in ticks), ticks
    await page.locator(f"{LEGEND} a", has_text="b").click()
    await expect(page.locator("#job-title")).to_have_text("b")
    await expect(page.locator("#compare-view")).to_be_hidden()
    assert watched.errors == []


async def test_compare_shows_the_first_ten_jobs(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Twelve named: the first ten shown, each its own colour, and a notice for the rest."""
    ids = [f"job-{n:02}" for n in range(12)]
    for n, job in enumerate(ids):
        a_job(jobs_root, job, 1.0 + n)
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#compare=" + ",".join(ids)))
    page = watched.page
    await expect(page.locator(f"{LEGEND} a")).to_have_text(ids[:10], timeout=5000)
    await expect(page.locator("#compare-notice")).to_have_text(
        "Only the first 10 jobs are shown: 2 more are named."
    )
    assert len(set(await swatches(page))) == 10
    await expect(page.locator(f"{LEGEND} .value")).to_have_text(
        [f"{(1 + n) / 10:g}" for n in range(10)], timeout=5000
    )
    await shot(page, "compare-ten")
    assert watched.errors == []


async def test_compare_names_invalid_and_unknown_ids_and_shows_the_others(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """An invalid id and an unknown one are named and skipped; the unknown one joins the chart
    once its job appears."""
    a_job(jobs_root, "a", 2.0)
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#compare=a,..%2Fx,nope"))
    page = watched.page
    notice = page.locator("#compare-notice p")
    await expect(notice).to_have_text(
        [
            "“../x” is not a valid job id: skipped.",
            "No job named nope under this sidecar: it joins the chart as soon as it appears.",
        ],
        timeout=5000,
    )
    await expect(page.locator(f"{LEGEND} a")).to_have_text(["a"])
    await expect(page.locator("#compare-chart")).to_have_attribute("data-points", "10")
    await shot(page, "compare-invalid-unknown")
    a_job(jobs_root, "nope", 3.0, steps=12)
    await expect(page.locator(f"{LEGEND} a")).to_have_text(["a", "nope"], timeout=5000)
    await expect(notice).to_have_text(["“../x” is not a valid job id: skipped."])
    await expect(page.locator("#compare-chart")).to_have_attribute(
        "data-points", "12", timeout=5000
    )
    assert await latest(page) == {"a": 0.2, "nope": 0.25}
    assert watched.errors == []


async def test_compare_view_fits_a_phone(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """At 390 px, ten jobs with the longest ids, one with a metric of a long name (the metric's
    list is as wide as its longest option): no sideways scroll."""
    ids = [f"{n}{'w' * 127}" for n in range(10)]
    for n, job in enumerate(ids):
        a_job(jobs_root, job, 1.0 + n, steps=3)
    append_metrics(jobs_root / ids[0], {"step": 4, "W" * 40: 2.0})
    sidecar = await start_sidecar()
    page = await browser.new_page(viewport={"width": 390, "height": 800})
    watched = Watched(page)
    await page.goto(sidecar.url("/#compare=" + ",".join(ids)))
    await expect(page.locator(LEGEND)).to_have_count(10, timeout=5000)
    await expect(page.locator("#compare-chart")).to_have_attribute("data-points", "3", timeout=5000)
    await shot(page, "compare-390")
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert watched.errors == []
