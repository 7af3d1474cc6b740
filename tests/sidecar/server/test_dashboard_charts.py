"""The job view's chart: any metric of the history, a log scale, smoothing, the choice kept in
localStorage and in the address; its share and export buttons; the view at a phone's width. In a
real Chromium against a real sidecar, with real progress and metrics files.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.conftest import StartSidecar
from tests.helpers import write_atomic
from tests.sidecar.server.dashboard import Watched, open_page, running
from tests.sidecar.server.test_dashboard_states import append_metrics, shot

LEGEND_LABELS = "#chart .u-legend .u-series th"
LEGEND_VALUES = "#chart .u-legend .u-value"


def history(steps: int = 20) -> list[dict[str, Any]]:
    """Entries as a trainer logs them: loss, a learning rate, a gradient norm, an epoch, a time."""
    return [
        {
            "step": 10 * n,
            "loss": 4.0 / n,
            "learning_rate": 1e-4 * (1 - n / 40),
            "grad_norm": 1.5 + (n % 3) * 0.25,
            "epoch": n / 10,
            "timestamp": "2025-01-01T00:00:00Z",
        }
        for n in range(1, steps + 1)
    ]


async def a_job(jobs_root: Path, entries: list[dict[str, Any]], job: str = "run") -> None:
    write_atomic(jobs_root / job / "progress.json", running(10 * len(entries), loss=1.0))
    append_metrics(jobs_root / job, *entries)


async def latest(page: Page) -> dict[str, float | None]:
    """Each series' latest drawn value, as the chart element keeps it."""
    return dict(json.loads(await page.locator("#chart").get_attribute("data-latest") or "[]"))


async def y_ticks(page: Page) -> list[float]:
    return [
        float(t) for t in (await page.locator("#chart").get_attribute("data-y-ticks") or "").split()
    ]


def ema(values: list[float], weight: float) -> float:
    """The last value of TensorBoard's debiased exponential moving average."""
    last, out = 0.0, math.nan
    for count, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        out = last / (1 - weight**count)
    return out


async def set_smoothing(page: Page, value: float) -> None:
    await page.evaluate(
        """v => { const s = document.getElementById('chart-smooth');
                  s.value = String(v); s.dispatchEvent(new Event('input', {bubbles: true})); }""",
        value,
    )


async def test_chart_draws_any_numeric_metric_picked(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """The picker lists the numeric keys as they appear (not step, not a string's key); loss and
    eval_loss are drawn by default; a metric checked is drawn, one unchecked goes; the choice
    is kept for the next page and written in the address."""
    await a_job(jobs_root, history())
    sidecar = await start_sidecar()
    context = await browser.new_context()
    watched = Watched(await context.new_page())
    page = watched.page
    await page.goto(sidecar.url("/#job=run"))
    boxes = page.locator("#chart-metrics input[type=checkbox]")
    await expect(boxes).to_have_count(5, timeout=5000)
    keys = await boxes.evaluate_all("boxes => boxes.map(box => box.value)")
    assert keys == ["loss", "eval_loss", "learning_rate", "grad_norm", "epoch"]  # chosen ones first
    await expect(page.locator(LEGEND_LABELS)).to_have_text(["step", "loss", "eval_loss"])
    await expect(page.locator("#chart")).to_have_attribute("data-points", "20")
    await page.check("#chart-metrics input[value=learning_rate]")
    await page.check("#chart-metrics input[value=grad_norm]")
    await page.uncheck("#chart-metrics input[value=eval_loss]")
    await expect(page.locator(LEGEND_LABELS)).to_have_text(
        ["step", "loss", "learning_rate", "grad_norm"]
    )
    await expect(page.locator(LEGEND_VALUES)).to_have_text(["200", "0.2", "0.00005", "2"])
    assert await latest(page) == {"loss": 0.2, "learning_rate": 1e-4 * 0.5, "grad_norm": 2.0}
    await page.uncheck("#chart-metrics input[value=loss]")
    await expect(page.locator(LEGEND_LABELS)).to_have_text(["step", "learning_rate", "grad_norm"])
    assert re.search(r"&metrics=learning_rate,grad_norm&log=0&smooth=0$", page.url), page.url
    await shot(page, "chart-metrics-picked")
    # A new metric in the history joins the picker as it comes.
    append_metrics(jobs_root / "run", {"step": 210, "loss": 0.19, "perplexity": 1.2})
    await expect(page.locator("#chart-metrics input[value=perplexity]")).to_be_attached(
        timeout=5000
    )
    # Another page of the same browser (no hash): the same choice, from localStorage.
    again = Watched(await context.new_page())
    await again.page.goto(sidecar.url("/#job=run"))
    await expect(again.page.locator(LEGEND_LABELS)).to_have_text(
        ["step", "learning_rate", "grad_norm"], timeout=5000
    )
    assert watched.errors == [] and again.errors == []
    await context.close()


async def test_chart_log_scale_labels_powers_of_ten(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Linear: ticks 1, 2 or 5 times a power of ten apart; log: powers of ten, and the values
    that are not positive left out; back to linear as it was."""
    entries = [{"step": s, "loss": 6.3 / s} for s in range(1, 41)]
    await a_job(jobs_root, [*entries, {"step": 41, "loss": 0.0}, {"step": 42, "loss": -1.0}])
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=run"))
    page = watched.page
    chart = page.locator("#chart")
    await expect(chart).to_have_attribute("data-points", "42", timeout=5000)
    linear = await y_ticks(page)
    gaps = {round(b - a, 12) for a, b in itertools.pairwise(linear)}
    assert len(gaps) == 1, linear
    mantissa = f"{gaps.pop():e}".split("e")[0]
    assert float(mantissa) in (1.0, 2.0, 5.0), linear
    await page.check("#chart-log")
    await expect(chart).to_have_attribute("data-points", "40")
    ticks = await y_ticks(page)
    assert len(ticks) >= 2 and all(math.log10(t).is_integer() for t in ticks), ticks
    assert ticks[0] <= 6.3 / 40 and ticks[-1] >= 6.3, ticks
    await shot(page, "chart-log-scale")
    await page.uncheck("#chart-log")
    await expect(chart).to_have_attribute("data-points", "42")
    assert await y_ticks(page) == linear
    assert watched.errors == []


async def test_chart_smoothing_draws_the_debiased_moving_average(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Smoothing 0.6: the drawn values are TensorBoard's EMA of the raw ones; 0: the raw again."""
    losses = [2.0 + (1.0 if n % 2 else -1.0) / n for n in range(1, 31)]
    await a_job(jobs_root, [{"step": n, "loss": v} for n, v in enumerate(losses, start=1)])
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=run"))
    page = watched.page
    await expect(page.locator("#chart")).to_have_attribute("data-points", "30", timeout=5000)
    assert (await latest(page))["loss"] == losses[-1]
    await set_smoothing(page, 0.6)
    await expect(page.locator("#chart-smooth-value")).to_have_text("0.60")
    smoothed = (await latest(page))["loss"]
    assert smoothed is not None and math.isclose(smoothed, ema(losses, 0.6), rel_tol=1e-12)
    assert not math.isclose(smoothed, losses[-1])
    await shot(page, "chart-smoothed")
    await set_smoothing(page, 0)
    assert (await latest(page))["loss"] == losses[-1]
    assert watched.errors == []


async def test_chart_choice_rides_in_the_address(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """``#job=ID&metrics=...&log=1&smooth=0.5`` shows that chart; the id stops at the ``&``,
    and an escaped id still reads as it is."""
    await a_job(jobs_root, history())
    sidecar = await start_sidecar()
    watched = await open_page(
        browser, sidecar.url("/#job=run&metrics=grad_norm,epoch&log=1&smooth=0.5")
    )
    page = watched.page
    await expect(page.locator("#job-title")).to_have_text("run")
    await expect(page.locator(LEGEND_LABELS)).to_have_text(
        ["step", "grad_norm", "epoch"], timeout=5000
    )
    await expect(page.locator("#chart-log")).to_be_checked()
    await expect(page.locator("#chart-smooth-value")).to_have_text("0.50")
    await expect(page.locator("#chart-metrics input[value=loss]")).not_to_be_checked()
    await page.evaluate("() => { location.hash = 'job=..%2Fetc&metrics=loss'; }")
    await expect(page.locator("#job-problem-text")).to_have_text(
        re.compile("^“../etc” is not a valid job id"), timeout=5000
    )
    assert watched.errors == []


async def test_job_view_focuses_its_heading_without_a_ring(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    await a_job(jobs_root, history(2))
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=run"))
    page = watched.page
    await expect(page.locator("#job-title")).to_be_focused(timeout=5000)
    await expect(page.locator("#job-title")).to_have_css("outline-style", "none")
    assert watched.errors == []


async def test_copy_link_puts_the_views_address_on_the_clipboard(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """With the clipboard: the address, chart choice included, token left out, and "Link
    copied"; refused: the link shown selected in a box instead."""
    await a_job(jobs_root, history(3))
    sidecar = await start_sidecar(token="s3cret")
    context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    watched = Watched(page)
    await page.goto(sidecar.url("/?token=s3cret#job=run"))
    await page.check("#chart-log", timeout=5000)
    await page.click("#copy-link")
    await expect(page.locator("#share-status")).to_have_text("Link copied")
    copied = await page.evaluate("() => navigator.clipboard.readText()")
    assert copied == sidecar.url("/#job=run&metrics=loss,eval_loss&log=1&smooth=0")
    await expect(page.locator("#share-link")).to_be_hidden()
    assert watched.errors == []
    await context.close()

    watched = await open_page(browser, "about:blank")
    page = watched.page
    await page.add_init_script(
        "Object.defineProperty(navigator, 'clipboard', {value: {writeText: () => "
        "Promise.reject(new DOMException('denied', 'NotAllowedError'))}});"
    )
    await page.goto(sidecar.url("/?token=s3cret#job=run"))
    await expect(page.locator("#chart")).to_have_attribute("data-points", "3", timeout=5000)
    await page.click("#copy-link")
    box = page.locator("#share-link")
    await expect(box).to_be_visible()
    await expect(box).to_have_value(page.url.replace("?token=s3cret", ""))
    await expect(box).to_be_focused()
    await expect(page.locator("#share-status")).to_contain_text("copy the link from the box")
    assert watched.errors == []


async def test_downloads_save_the_history_with_and_without_a_token(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """ "Download CSV" and "Download JSONL" save the job's history as files, the token sent as a
    header when the page has one."""
    entries = history(3)
    await a_job(jobs_root, entries, job="run-1.a")
    for token in ("", "s3cret"):
        sidecar = await start_sidecar(**({"token": token} if token else {}))
        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        watched = Watched(page)
        query = f"?token={token}" if token else ""
        await page.goto(sidecar.url(f"/{query}#job=run-1.a"))
        await expect(page.locator("#chart")).to_have_attribute("data-points", "3", timeout=5000)
        async with page.expect_download() as csv_download:
            await page.click("#download-csv")
        download = await csv_download.value
        assert download.suggested_filename == "run-1.a-history.csv"
        rows = Path(await download.path()).read_text().splitlines()
        assert rows[0] == "step,loss,learning_rate,grad_norm,epoch,timestamp"
        assert rows[1].startswith("10,4.0,") and len(rows) == 4
        async with page.expect_download() as jsonl_download:
            await page.click("#download-jsonl")
        download = await jsonl_download.value
        assert download.suggested_filename == "run-1.a-history.jsonl"
        lines = Path(await download.path()).read_text().splitlines()
        assert [json.loads(line) for line in lines] == entries
        await expect(page.locator("#share-status")).to_have_text("")
        assert watched.errors == [], token
        await context.close()


async def test_job_view_fits_a_phone(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """At 390 px: no sideways scroll, with every metric drawn, long keys among them; the GPU
    facts each on one line."""
    long_keys = {f"eval_{'very_long_metric_name_' * 4}{n}": 0.5 for n in range(3)}
    entries = [{**entry, **long_keys} for entry in history(5)]
    gpu = {
        "gpu_memory_allocated_gb": 12.35,
        "gpu_memory_used_gb": 14.2,
        "gpu_memory_total_gb": 79.65,
    }
    write_atomic(jobs_root / "run" / "progress.json", running(50, **gpu))
    append_metrics(jobs_root / "run", *entries)
    sidecar = await start_sidecar()
    for width in (390, 1100):
        page = await browser.new_page(viewport={"width": width, "height": 800})
        watched = Watched(page)
        await page.goto(sidecar.url("/#job=run"))
        await expect(page.locator("#chart")).to_have_attribute("data-points", "5", timeout=5000)
        boxes = page.locator("#chart-metrics input:not(:checked)")
        for key in await boxes.evaluate_all("boxes => boxes.map(box => box.value)"):
            await page.locator(f'#chart-metrics input[value="{key}"]').check()
        await expect(page.locator(LEGEND_LABELS)).to_have_count(1 + 8)
        await expect(page.locator("[data-field=gpu_memory] dd")).to_have_text("12.3 / 14.2 / 79.7")
        await expect(page.locator("[data-field=gpu_memory] dd")).to_have_attribute(
            "title", re.compile("allocated / used / total")
        )
        # As high as the step's label and value: one line each.
        heights = await page.evaluate(
            """() => ['gpu_memory', 'step'].flatMap(key => ['dt', 'dd'].map(tag =>
                document.querySelector(`[data-field=${key}] ${tag}`).getBoundingClientRect().height))"""
        )
        assert heights[:2] == heights[2:], (width, heights)
        await shot(page, f"job-view-{width}")
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
        assert watched.errors == []
        await page.close()


async def test_log_scale_leaves_out_values_it_cannot_draw(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Values far below what a log axis takes (1e-30, the least double) are left out as 0 and
    negatives are: the others are drawn, and the page has no error (uPlot threw)."""
    await a_job(
        jobs_root,
        [
            {"step": 1, "loss": 1e-30},
            {"step": 2, "loss": 5e-324},
            {"step": 3, "loss": 0.5},
            {"step": 4, "loss": 0.1},
        ],
    )
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=run&metrics=loss&log=1"))
    page = watched.page
    await expect(page.locator("#chart")).to_have_attribute("data-points", "2", timeout=5000)
    assert await y_ticks(page) == [0.1, 1.0]  # 0.1 and 0.5: one decade
    assert watched.errors == []


async def test_a_metric_first_logged_after_many_others_can_be_drawn(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """A history whose first lines hold 100 per-layer keys still draws an eval loss that comes
    later (the picker offers the first 64 keys, and those the address names)."""
    layers = {f"layer_{n}_norm": 1.0 + n for n in range(100)}
    await a_job(jobs_root, [{"step": 1, **layers}, {"step": 2, "eval_loss": 2.5}])
    sidecar = await start_sidecar()
    watched = await open_page(browser, sidecar.url("/#job=run"))
    page = watched.page
    await expect(page.locator("#chart")).to_have_attribute("data-points", "1", timeout=5000)
    assert (await latest(page))["eval_loss"] == 2.5
    assert await page.locator("#chart-metrics input").count() == 64 + 2  # and loss, eval_loss
    assert watched.errors == []
