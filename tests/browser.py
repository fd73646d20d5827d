"""Open a page in Debian's chromium, headless, driven by playwright (its own browser builds
cannot be downloaded here): console errors, plots and a screenshot, for the report tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "results" / "screenshots"


@dataclass
class Page:
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    network: list[str] = field(default_factory=list)  # requests that left the file (http, https)
    plots: list[dict] = field(default_factory=list)  # per plotly div: its SVG's size and marks
    title: str = ""
    text: str = ""
    screenshot: Path | None = None


PLOTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(div => {
    const svg = div.querySelector('svg.main-svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {width: box.width, height: box.height,
            marks: div.querySelectorAll('g.trace, g.point, path.point, image, g.hm').length,
            title: (div.querySelector('.gtitle') || {}).textContent || ''};
})"""


def open_page(path: Path, screenshot_name: str) -> Page:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: scripts/install.sh installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    page_info = Page()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: m.type == "error" and page_info.errors.append(m.text))
            page.on("pageerror", lambda exc: page_info.errors.append(str(exc)))
            page.on("request", lambda r: r.url.startswith("http") and page_info.network.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot svg.main-svg').length > 0", timeout=30_000
            )
            page.wait_for_timeout(500)  # let plotly finish its last draws
            page_info.plots = page.evaluate(PLOTS)
            page_info.title, page_info.text = page.title(), page.inner_text("body")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page_info.screenshot = SCREENSHOTS / f"{screenshot_name}.png"
            page.screenshot(path=str(page_info.screenshot), full_page=True)
        finally:
            browser.close()
    return page_info
