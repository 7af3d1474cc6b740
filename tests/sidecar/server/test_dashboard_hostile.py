"""The dashboard renders anything (issue 20, point 4): every field of progress.json and of
metrics.jsonl is the attacker's, so odd types in each of them show as they can, and one odd job
never hides another. In a real Chromium against a real sidecar, with real files."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.conftest import StartSidecar
from tests.helpers import write_atomic
from tests.sidecar.server.dashboard import Watched, running

HTML = "<img src=x onerror=alert(1)>"
RTL = "\u202eRTL \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627"
ODD: dict[str, Any] = {
    "to-string": {"toString": 1},
    "value-of": {"valueOf": {}, "toString": {}, "constructor": 1},
    "object": {"a": {"b": [1, {"c": "d"}]}},
    "empty-object": {},
    "array": [1, "two", [3]],
    "empty-array": [],
    "numeric-text": "12.5",
    "text": "abc",
    "empty-text": "",
    "true": True,
    "false": False,
    "huge": 1e308,
    "minus-huge": -1e308,
    "big-int": 123456789012345678901234567890,
    "beyond-double": 10**400,  # JSON.parse makes it Infinity
    "negative": -42,
    "zero": 0,
    "tiny": 5e-324,
    "long": "x" * 10_000,
    "replacement": "\ufffd\ufffd",
    "rtl": RTL,
    "html": HTML,
    "proto-name": "__proto__",
}
"""Each odd value, and the job that has it in every field the dashboard reads."""

FIELDS = (
    "status", "progress", "current_step", "total_steps", "current_epoch", "total_epochs",
    "loss", "eval_loss", "final_loss", "learning_rate", "samples_per_second", "eta_seconds",
    "gpu_memory_allocated_gb", "gpu_memory_used_gb", "gpu_memory_total_gb",
    "gpu_utilization_percent", "started_at", "timestamp", "hostname", "pid", "error",
)  # fmt: skip
"""What the dashboard reads from a progress file."""
NONE = "\u2013"  # what the dashboard shows for a missing or unusable value
VIEW_FIELDS = 16  # the facts of a job's view (job-view.js, FIELDS)
SHOWN: dict[str, dict[str, str | re.Pattern[str]]] = {
    "odd-huge": {
        "status": "1e+308", "progress": "1e+308 %", "epoch": "1e+308 / 1e+308",
        "step": "1e+308 / 1e+308", "loss": "1e+308", "eta": "> 99999:59:59",
        "gpu_memory": "1e+308 / 1e+308 / 1e+308", "gpu_util": "1e+308 %", "started": NONE,
        "host": NONE,
    },
    "odd-negative": {"status": "-42", "progress": "-42.0 %", "step": "-42 / -42", "eta": "0:00:00"},
    "odd-to-string": {
        "status": NONE, "progress": NONE, "epoch": NONE, "step": NONE, "loss": NONE, "eta": NONE,
        "gpu_memory": f"{NONE} / {NONE} / {NONE}", "gpu_util": NONE, "started": NONE,
        "updated": NONE, "host": NONE,
    },
    "odd-text": {"status": "abc", "loss": NONE, "started": "abc", "host": "abc / ?"},
    "odd-long": {"status": re.compile("^x{199}…$"), "started": re.compile("^x{31}…$")},
    "odd-html": {"status": HTML, "updated": HTML, "node": re.compile("^<img src=x")},
    "odd-rtl": {"status": RTL, "host": f"{RTL} / ?"},
    "proto": {"status": NONE},  # not the "failed" of the object that became its prototype
}  # fmt: skip
"""What some facts of a job's view show."""
NODE = f"{HTML}{RTL}" + "n" * 300  # the sidecar's node name, in every summary and state

FIXED_METRICS: list[Any] = [
    {"step": 3, "loss": 1.0},
    {"step": 1, "loss": 2.0},  # steps out of order
    {"step": 2, "eval_loss": 1.5},
    {"step": -5, "loss": 0.5},  # a negative step
    {"step": 7, "loss": -3.0},  # a negative loss
    {"step": 8},  # nothing to plot
    {"loss": 1.0},  # no step
    {"step": 1e308, "loss": 1.0},  # a step past what a chart can scale
    {"step": 9, "loss": 1e308},  # a loss past it
    {"step": 10, "loss": -1e308, "eval_loss": 0.25},
    [1, 2],
    5,
    "text",
    True,
]
FIXED_POINTS = 6  # steps 1, 2, 3, -5, 7 and 10
STEP_LIMIT = 2**53 - 1  # metric-history.js: the steps and values a chart can scale
VALUE_LIMIT = 1e100


def as_double(value: Any) -> float | None:
    """``value`` as JSON.parse gives it, when it is a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def plottable(value: Any, limit: float) -> bool:
    double = as_double(value)
    return double is not None and math.isfinite(double) and abs(double) <= limit


def odd_metrics(value: Any) -> tuple[list[Any], int]:
    """metrics.jsonl's entries for a job with ``value`` everywhere, and the points they make."""
    entries = [
        *FIXED_METRICS,
        {"step": value, "loss": value, "eval_loss": value},
        {"step": 11, "loss": value},
        {"step": value, "loss": 0.75},
    ]
    points = FIXED_POINTS + plottable(value, VALUE_LIMIT) + plottable(value, STEP_LIMIT)
    return entries, points


def write_metrics(job: Path, entries: list[Any]) -> None:
    lines = [json.dumps(entry) for entry in entries] + ["{not json", "", "null"]
    (job / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def write_jobs(root: Path) -> dict[str, int]:
    """Every odd job, normal jobs in each state, and a few more; their chart points by id."""
    points = {}
    for name, value in ODD.items():
        job = root / f"odd-{name}"
        write_atomic(job / "progress.json", dict.fromkeys(FIELDS, value))
        entries, points[job.name] = odd_metrics(value)
        write_metrics(job, entries)
    for name in ("to-string", "array", "long", "rtl", "html", "huge"):
        write_atomic(
            root / f"failed-{name}" / "progress.json", {"status": "failed", "error": ODD[name]}
        )
    write_atomic(root / "n-running" / "progress.json", running(40, loss=0.5, eta_seconds=90))
    write_metrics(root / "n-running", [{"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.0}])
    write_atomic(root / "n-completed" / "progress.json", {"status": "completed", "progress": 100})
    write_atomic(root / "n-failed" / "progress.json", {"status": "failed", "error": "OOM"})
    write_atomic(root / "n-cancelled" / "progress.json", {"status": "cancelled", "progress": 70})
    # Keys named like what every object inherits.
    write_atomic(
        root / "proto" / "progress.json",
        {"__proto__": {"toString": 1, "status": "failed"}, "constructor": {}, "hasOwnProperty": 1},
    )
    write_atomic(root / "unreadable" / "progress.json", b"{not json \xff")
    write_atomic(root / ("long-id-" + "W" * 120) / "progress.json", running(1))  # 128 characters
    return points


async def open_job(page: Page, job: str) -> None:
    """Open ``job``'s view from the one open now, and wait for its state to show."""
    await page.evaluate("job => { location.hash = 'job=' + encodeURIComponent(job); }", job)
    await expect(page.locator("#job-title")).to_have_text(job)
    await expect(page.locator("#job-fields > div")).to_have_count(VIEW_FIELDS, timeout=5000)


async def longest_text(page: Page, selector: str) -> int:
    return int(
        await page.evaluate(
            "s => Math.max(0, ...[...document.querySelectorAll(s)].map(e => e.textContent.length))",
            selector,
        )
    )


async def page_width(page: Page) -> int:
    return int(await page.evaluate("() => document.documentElement.scrollWidth"))


async def check_page_is_safe(page: Page, origin: str, requested: list[str]) -> None:
    """No element made from the data, no script run from it, no request elsewhere."""
    assert await page.locator("img").count() == 0
    assert await page.evaluate("() => window.alerted") is None
    assert all(url.startswith(origin) for url in requested), requested


async def test_dashboard_shows_every_job_whatever_its_fields(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Odd types in every field: every row in the list, every job's view with all its facts,
    the chart with the points it can draw, no page error; a normal job still updates live."""
    points = write_jobs(jobs_root)
    sidecar = await start_sidecar(node=NODE)
    page = await browser.new_page(viewport={"width": 1100, "height": 820})
    await page.add_init_script("window.alert = () => { window.alerted = true; };")
    watched = Watched(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(sidecar.url("/"))
    ids = sorted(p.name for p in jobs_root.iterdir())
    rows = page.locator("#jobs tbody tr")
    await expect(rows).to_have_count(len(ids), timeout=10000)
    assert sorted(await rows.evaluate_all("rows => rows.map(row => row.dataset.job)")) == ids
    assert await page.locator("#jobs tbody tr.unrenderable").count() == 0
    assert await page.locator("#jobs tbody td").count() == 11 * len(ids)
    assert await longest_text(page, "#jobs tbody td:nth-child(n+3)") <= 100
    assert await page_width(page) <= 1100  # the table scrolls in its box, the page does not
    await expect(page.locator("tr[data-job=odd-html] .badge")).to_have_text(HTML)
    await expect(page.locator("tr[data-job=odd-long] .badge")).to_have_text(re.compile("^x+…$"))
    await expect(page.locator("tr[data-job=odd-to-string] .badge")).to_have_text("?")
    await expect(page.locator("tr[data-job=unreadable] .flag")).to_have_text("unreadable")
    await expect(page.locator("tr[data-job=n-running] progress")).to_have_attribute("value", "40")
    for state in ("completed", "failed", "cancelled"):
        await expect(page.locator(f"tr[data-job=n-{state}]")).to_have_class(f"status-{state}")
    for job in ("odd-huge", "odd-big-int"):
        await expect(page.locator(f"tr[data-job={job}] progress")).to_have_attribute("value", "100")
    await expect(page.locator("tr[data-job=odd-negative] progress")).to_have_attribute("value", "0")

    for job in ids:
        await open_job(page, job)
        assert await page.locator("#job-fields .unrenderable").count() == 0, job
        assert await longest_text(page, "#job-fields dd") <= 300, job
        assert await page_width(page) <= 1100, job  # nothing runs off the page
        if job in points:
            chart = page.locator("#chart")
            await expect(chart).to_have_attribute("data-points", str(points[job]), timeout=5000)
        for key, text in SHOWN.get(job, {}).items():
            await expect(page.locator(f"[data-field={key}] dd")).to_have_text(text)
    await open_job(page, "failed-html")
    await expect(page.locator("#job-alert")).to_have_text(f"failed: {HTML}")
    await expect(page.locator("#connection")).to_have_text("failed")
    await open_job(page, "failed-to-string")
    await expect(page.locator("#job-alert")).to_have_text("failed")
    await open_job(page, "unreadable")
    await expect(page.locator("#job-alert")).to_have_text(re.compile("progress file unreadable"))

    # A normal job after all of them: live as ever.
    await open_job(page, "n-running")
    await expect(page.locator("[data-field=step] dd")).to_have_text("40 / 100")
    await expect(page.locator("#chart")).to_have_attribute("data-points", "2")
    write_atomic(jobs_root / "n-running" / "progress.json", running(41, loss=0.4))
    with open(jobs_root / "n-running" / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "loss": 0.4}\n')
    await expect(page.locator("[data-field=step] dd")).to_have_text("41 / 100", timeout=5000)
    await expect(page.locator("#chart")).to_have_attribute("data-points", "3", timeout=5000)
    await expect(page.locator("#connection")).to_have_text("live")
    await check_page_is_safe(page, sidecar.url("/").rstrip("/"), requested)
    assert watched.errors == []


ODD_LIST = list(ODD.values())
DERIVED = ("node", "complete", "stalled", "stall_reason", "read_error", "updated_at", "timestamp")
"""What the sidecar adds to a job's fields: a gateway passes on what its nodes put in Redis."""


def tamper(message: dict[str, Any], n: int) -> dict[str, Any]:
    """A message from the sidecar with odd values in what the sidecar derives."""
    if message.get("type") == "log":
        return {**message, "entries": [None, 1, "x", [2], {"step": {"toString": 1}}, *ODD_LIST]}
    if isinstance(message.get("jobs"), dict):  # /ws/jobs
        jobs = message["jobs"]
        return {
            **message,
            "jobs": {k: v and tamper(v, n + i) for i, (k, v) in enumerate(jobs.items())},
        }
    return {**message, **{key: ODD_LIST[(n + i) % len(ODD_LIST)] for i, key in enumerate(DERIVED)}}


async def test_dashboard_shows_every_job_whatever_the_sidecar_adds(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """In cluster mode a node's summaries and states come through Redis: odd values in what
    the sidecar derives (node, complete, stalled, stall_reason, read_error, the times) and log
    entries that are not objects still leave every row and every view standing."""
    ids = [f"j{n:02}" for n in range(len(ODD_LIST))]
    for job in ids:
        write_atomic(jobs_root / job / "progress.json", running(5))
    sidecar = await start_sidecar()
    page = await browser.new_page()
    watched = Watched(page)

    async def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        counter = iter(range(10**6))
        server.on_message(lambda m: ws.send(json.dumps(tamper(json.loads(m), next(counter)))))

    await page.route_web_socket(re.compile(r"/ws/"), route)
    await page.goto(sidecar.url("/"))
    await expect(page.locator("#jobs tbody tr")).to_have_count(len(ids), timeout=10000)
    assert await page.locator("#jobs tbody tr.unrenderable").count() == 0
    assert await page.locator("#jobs tbody td").count() == 11 * len(ids)
    nodes = await page.locator("#jobs tbody .node").all_text_contents()
    assert HTML in nodes and RTL in nodes  # the odd values did reach the page
    for job in ids:
        await open_job(page, job)
        assert await page.locator("#job-fields .unrenderable").count() == 0, job
    assert watched.errors == []


async def test_dashboard_isolates_a_row_and_a_field_that_fail_to_render(
    jobs_root: Path, start_sidecar: StartSidecar, browser: Browser
) -> None:
    """Should a formatter throw all the same (here the browser's own time formatting, for one
    date), only that row and that field show a placeholder, and the page says why once."""
    write_atomic(jobs_root / "a" / "progress.json", running(1))
    started: dict[str, Any] = {
        "started_at": "2001-02-03T04:05:06Z",
        "timestamp": "2024-05-06T07:08:09Z",
    }
    write_atomic(jobs_root / "b" / "progress.json", running(2, **started))
    write_atomic(jobs_root / "c" / "progress.json", running(3))
    os.utime(jobs_root / "b" / "progress.json", (981173106, 981173106))  # 2001-02-03
    sidecar = await start_sidecar()
    page = await browser.new_page()
    await page.add_init_script("""{
      const show = Date.prototype.toLocaleTimeString;
      Date.prototype.toLocaleTimeString = function (...args) {
        if (this.getUTCFullYear() === 2001) throw new Error("a broken formatter");
        return show.apply(this, args);
      };
    }""")
    watched = Watched(page)
    await page.goto(sidecar.url("/"))
    await expect(page.locator("tr[data-job=c] progress")).to_have_attribute("value", "3")
    await expect(page.locator("tr[data-job=a] progress")).to_have_attribute("value", "1")
    await expect(page.locator("tr[data-job=b]")).to_have_class(re.compile("unrenderable"))
    await expect(page.locator("tr[data-job=b] a")).to_have_text("b")
    await open_job(page, "b")
    await expect(page.locator("[data-field=started] dd")).to_have_class("unrenderable")
    await expect(page.locator("[data-field=step] dd")).to_have_text("2 / 100")
    write_atomic(jobs_root / "b" / "progress.json", running(4, **started))
    await expect(page.locator("[data-field=step] dd")).to_have_text("4 / 100", timeout=5000)
    assert len(watched.errors) == 2, watched.errors  # once for the row, once for the field
    assert all("a broken formatter" in error for error in watched.errors), watched.errors
