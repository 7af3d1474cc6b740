"""Helpers of the dashboard tests: the Chromium to drive, a watched page, progress documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


class Watched:
    """A page, and every console error and failed request it had."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("requestfailed", lambda request: self.errors.append(f"failed: {request.url}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


async def open_page(browser: Browser, url: str) -> Watched:
    page = await browser.new_page(viewport={"width": 1100, "height": 820})
    watched = Watched(page)
    await page.goto(url)
    return watched


def running(step: int, total: int = 100, **extra: Any) -> dict[str, Any]:
    return {
        "status": "running",
        "progress": 100 * step / total,
        "current_step": step,
        "total_steps": total,
        **extra,
    }
