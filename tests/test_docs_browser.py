"""Swagger UI (/docs) and ReDoc (/redoc) in a real browser with the outside network blocked:
both list the API's operations from the service's own assets and ask nothing of a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.browser import Offline, chromium
from support.processes import start_service

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 30_000
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with start_service() as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def offline(browser: Any, service: str) -> Iterator[Offline]:
    context = Offline(browser, service)
    yield context
    context.close()


def operations(service: str) -> set[str]:
    doc = httpx.get(f"{service}/openapi.json", timeout=10).json()
    return set(doc["paths"])


def test_swagger_ui_lists_every_operation_offline(offline: Offline, service: str) -> None:
    page = offline.page
    page.goto(f"{service}/docs")
    page.wait_for_selector(".opblock", timeout=WAIT_MS)
    shown = set(page.eval_on_selector_all(
        ".opblock-summary-path", "els => els.map(e => e.getAttribute('data-path'))"
    ))  # fmt: skip
    assert shown == operations(service)
    assert offline.blocked == [] and offline.errors == []


def test_redoc_lists_the_operations_offline(offline: Offline, service: str) -> None:
    page = offline.page
    page.goto(f"{service}/redoc")
    page.wait_for_function(
        "() => document.body.innerText.includes('/forecast/fleet')", timeout=WAIT_MS
    )
    text = page.inner_text("body")
    assert all(path.split("{")[0] in text for path in operations(service))
    # ReDoc's sidebar asks for its vendor's logo and hides it when that fails; nothing else.
    assert set(offline.blocked) <= {REDOC_LOGO} and offline.errors == []


def test_the_pages_name_no_outside_host(service: str) -> None:
    for path in ("/docs", "/redoc"):
        html = httpx.get(f"{service}{path}", timeout=10).text
        assert "http://" not in html and "https://" not in html, path
