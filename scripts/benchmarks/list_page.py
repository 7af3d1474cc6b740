"""The page of the jobs-list benchmark (list_in_browser): the probe injected into it, and the
baseline's list (a commit's jobs-list.js, styles and section of the page) served in place of
the current one."""

from __future__ import annotations

import re
import subprocess

from benchmarks.common import REPO

STATIC = REPO / "sidecar" / "server" / "static"
CHROMIUM = "/usr/bin/chromium"
SECTION = re.compile(r'      <section id="jobs-view".*?</section>\n', re.S)
LIST_SCRIPTS = ("jobs-table.js", "list-filter.js", "jobs-window.js", "jobs-picks.js")

# Injected before the page's own scripts: the long tasks, and each row's Step as it changes.
PROBE = """
window.bench = { longtasks: [], seen: [] };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) bench.longtasks.push([performance.timeOrigin + e.startTime, e.duration]);
}).observe({ type: "longtask", buffered: true });
document.addEventListener("DOMContentLoaded", () => {
  const body = document.querySelector("#jobs tbody");
  const column = [...document.querySelectorAll("#jobs thead th")].findIndex((th) => th.textContent.trim() === "Step");
  const last = new Map();
  new MutationObserver((records) => {
    const at = performance.timeOrigin + performance.now();
    const rows = new Set();
    for (const record of records) {
      if (record.target === body) record.addedNodes.forEach((row) => rows.add(row));
      else {
        const element = record.target.nodeType === 1 ? record.target : record.target.parentElement;
        const row = element && element.closest("tr");
        if (row) rows.add(row);
      }
    }
    for (const row of rows) {
      const job = row.dataset && row.dataset.job;
      const cell = row.children[column];
      if (!job || !cell) continue;
      const value = parseInt(cell.textContent, 10);
      if (Number.isFinite(value) && last.get(job) !== value) {
        last.set(job, value);
        bench.seen.push([at, job, value]);
      }
    }
  }).observe(body, { childList: true, subtree: true, characterData: true });
});
"""


BASELINE = "46b7f00"
"""The last commit of the jobs list that rebuilt every row on every message."""


def baseline_files(revision: str) -> dict[str, bytes]:
    """The page as now with ``revision``'s jobs list: its section, script and styles."""

    def committed(name: str) -> str:
        path = f"sidecar/server/static/{name}"
        done = subprocess.run(
            ["git", "show", f"{revision}:{path}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    page = (STATIC / "index.html").read_text()
    section = SECTION.search(committed("index.html"))
    assert section is not None, "no jobs-view section in the committed index.html"
    page = SECTION.sub(lambda _: section.group(0), page, count=1)
    for script in LIST_SCRIPTS:
        page = page.replace(f'    <script src="/static/{script}"></script>\n', "")
    return {
        "/": page.encode(),
        "/static/jobs-list.js": committed("jobs-list.js").encode(),
        "/static/jobs-list.css": committed("jobs-list.css").encode(),
    }
