"""Headless Debian Chromium driven by Playwright (never a downloaded browser), with every
request outside the service under test blocked, as on a machine without a network; and
DashboardPage, the dashboard open in such a browser."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT_MS = 15_000


def chromium_path() -> str | None:
    candidates = [
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def missing(reason: str) -> None:
    """Skip locally; fail in CI (CI is set), where the browser tests are required."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; browser tests are required in CI")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        missing("Chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Offline:
    """A browser context that lets through only requests to `allowed_url`'s host and port and
    records every other one it aborted."""

    def __init__(self, browser: Any, allowed_url: str, **context_args: Any) -> None:
        allowed = urlsplit(allowed_url)
        self.allowed = (allowed.hostname, allowed.port)
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(**context_args)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _route(self, route: Any) -> None:
        url = urlsplit(route.request.url)
        outside = (url.hostname, url.port) != self.allowed
        if url.scheme in ("http", "https", "ws", "wss") and outside:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    def close(self) -> None:
        self.context.close()


class DashboardPage:
    """A page on the dashboard, offline but for the service, that records console errors and
    uncaught exceptions. `options` become window.TWIN_DASHBOARD_OPTIONS."""

    def __init__(
        self,
        browser: Any,
        url: str,
        viewport: dict[str, int],
        before_load: Any = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.offline = Offline(
            browser, url, viewport=viewport, color_scheme="dark", accept_downloads=True
        )
        self.context = self.offline.context
        self.page = self.offline.page
        if options:
            self.page.add_init_script(f"window.TWIN_DASHBOARD_OPTIONS = {json.dumps(options)};")
        if before_load is not None:
            before_load(self.page)
        self.errors = self.offline.errors
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error"
                else None
            ),
        )
        self.page.goto(url)
        self.wait_for("document.querySelector('#status-connection').dataset.state === 'live'")

    def wait_for(self, expression: str, arg: Any = None) -> None:
        self.page.wait_for_function(f"(arg) => {expression}", arg=arg, timeout=WAIT_MS)

    def attr(self, selector: str, name: str) -> str | None:
        return self.page.get_attribute(selector, name)

    def chart(self, name: str) -> dict[str, Any]:
        """The uPlot chart's data, x range and series (labels, scales)."""
        return self.page.evaluate(
            """(name) => {
                const u = window.twinDashboard.chart(name);
                return u && {
                    data: u.data,
                    min: u.scales.x.min,
                    max: u.scales.x.max,
                    labels: u.series.map((s) => s.label),
                    scales: u.series.map((s) => s.scale),
                    axes: u.axes.length,
                    idx: u.cursor.idx,
                    time: u.scales.x.time,
                };
            }""",
            name,
        )

    def points(self, name: str = "soc") -> int:
        return int(self.attr(f"#chart-{name}", "data-points") or 0)

    def selected(self) -> str:
        return self.page.evaluate("document.querySelector('#vehicle-select').value")

    def options(self) -> list[str]:
        return self.page.eval_on_selector_all(
            "#vehicle-select option", "els => els.map(e => e.value)"
        )

    def close(self) -> None:
        self.context.close()
