"""Headless Debian Chromium driven by Playwright (never a downloaded browser), with every
request outside the service under test blocked, as on a machine without a network."""

from __future__ import annotations

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
