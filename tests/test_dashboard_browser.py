"""The browser dashboard in headless Chromium (Playwright) against a real service process.

Needs Debian's ``chromium`` (or CHROMIUM_PATH) and the ``playwright`` package; no browser is
downloaded. Locally the tests skip with the reason when either is missing; in CI (CI is set)
that is a failure. Screenshots go to test-output/dashboard/; with UPDATE_SCREENSHOTS=1 (or when
it does not exist yet) the desktop one is also copied to docs/img/dashboard.png for the README.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.processes import ServiceProcess, free_port, start_service

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO_ROOT / "test-output" / "dashboard"
README_SCREENSHOT = REPO_ROOT / "docs" / "img" / "dashboard.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 15_000


def chromium_path() -> str | None:
    candidates = [
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; browser tests are required in CI")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        _missing("Chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with start_service() as url:
        yield url


class DashboardPage:
    """A page on the dashboard that records console errors and uncaught exceptions."""

    def __init__(
        self, browser: Any, url: str, viewport: dict[str, int], before_load: Any = None
    ) -> None:
        self.context = browser.new_context(viewport=viewport, color_scheme="dark")
        self.page = self.context.new_page()
        if before_load is not None:
            before_load(self.page)
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error"
                else None
            ),
        )
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        self.page.goto(url)
        self.wait_for("document.querySelector('#status-connection').dataset.state === 'live'")

    def wait_for(self, expression: str, arg: Any = None) -> None:
        self.page.wait_for_function(f"(arg) => {expression}", arg=arg, timeout=WAIT_MS)

    def attr(self, selector: str, name: str) -> str | None:
        return self.page.get_attribute(selector, name)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[DashboardPage] = []

    def open_(
        url: str, viewport: dict[str, int] = DESKTOP, before_load: Any = None
    ) -> DashboardPage:
        page = DashboardPage(browser, url, viewport, before_load)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def post_step(
    url: str,
    vehicle_id: str,
    samples: list[dict[str, Any]],
    state: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"vehicle_id": vehicle_id, "state": state, "samples": samples}
    if options:
        body["options"] = options
    response = httpx.post(f"{url}/step", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def city_drive(url: str, vehicle_id: str, steps: int) -> dict[str, Any]:
    """Accelerate, cruise, brake with regeneration, stop: one step per 10 s of driving."""
    reply: dict[str, Any] = {"state": None}
    for i in range(steps):
        phase = (i % 12) / 12
        base_kw = 55 * math.sin(2 * math.pi * phase) + 18 + 8 * math.sin(i * 1.3)
        samples = [
            {
                "dt_s": 1.0,
                "power_kw": base_kw + 6 * math.sin(k),
                "wheel_speed_m_s": 12.0 + 4 * math.sin(2 * math.pi * phase),
                "ambient_c": 22.0,
            }
            for k in range(10)
        ]
        reply = post_step(
            url,
            vehicle_id,
            samples,
            reply["state"],
            {"demo_mode": True, "time_multiplier": 2000},
        )
    return reply


SOC_GAUGE_IS = (
    "Math.abs(parseFloat(document.querySelector('#gauge-soc').dataset.value) - arg) < 0.051"
)


# ---------------------------------------------------------------------------- tests


def test_page_loads_without_console_errors(service: str, open_page: Any) -> None:
    known = httpx.get(f"{service}/vehicles").json()
    dashboard = open_page(service)
    page = dashboard.page
    assert page.title() == "EV battery twin"
    for selector in (
        "#gauge-soc svg",
        "#gauge-soh svg",
        "#gauge-power svg",
        "#gauge-temperature svg",
    ):
        assert page.locator(selector).count() == 1
    if not known:
        assert page.inner_text("#status-running .status-value") == "no vehicle yet"
        assert "No vehicle has reported yet" in page.inner_text("#chart-history")
    page.wait_for_timeout(1500)  # let the first refresh, timers and sockets run
    assert dashboard.errors == []


def test_posted_step_updates_soc_gauge_and_charts(service: str, open_page: Any) -> None:
    dashboard = open_page(f"{service}/?vehicle=ev-1")
    first = post_step(service, "ev-1", [{"dt_s": 1.0, "power_kw": 20.0}])
    dashboard.wait_for(SOC_GAUGE_IS, first["telemetry"]["soc"])
    second = post_step(service, "ev-1", [{"dt_s": 30.0, "power_kw": 60.0}], first["state"])
    dashboard.wait_for(SOC_GAUGE_IS, second["telemetry"]["soc"])
    assert second["telemetry"]["soc"] < first["telemetry"]["soc"]

    dashboard.wait_for("Number(document.querySelector('#chart-history').dataset.points) >= 2")
    points = int(dashboard.attr("#chart-history", "data-points") or 0)
    third = post_step(service, "ev-1", [{"dt_s": 10.0, "power_kw": -30.0}], second["state"])
    dashboard.wait_for(
        "Number(document.querySelector('#chart-history').dataset.points) === arg", points + 1
    )
    dashboard.wait_for(
        "Number(document.querySelector('#chart-power').dataset.points) === arg", points + 1
    )
    page = dashboard.page
    assert page.get_attribute("#chart-history path.line-soc", "d")
    assert page.get_attribute("#chart-history path.line-soh", "d")
    assert page.locator("#chart-power path.area-regen").count() == 1
    # the last step regenerated: negative power on the gauge, the REGEN flag shown
    dashboard.wait_for(
        "Math.abs(parseFloat(document.querySelector('#gauge-power').dataset.value) - arg) < 0.051",
        third["telemetry"]["power_kw"],
    )
    assert third["telemetry"]["power_kw"] < 0
    assert page.is_visible("#flag-regen")
    assert page.inner_text("#status-model .status-value") == third["telemetry"]["vehicle_model"]
    assert dashboard.errors == []


def test_vehicle_selector_lists_two_vehicles(open_page: Any) -> None:
    with start_service() as fresh:
        dashboard = open_page(fresh)
        post_step(fresh, "ev-1", [{"dt_s": 1.0, "power_kw": 20.0}])
        post_step(fresh, "ev-2", [{"dt_s": 1.0, "power_kw": -5.0}])
        dashboard.wait_for("document.querySelector('#vehicle-select').options.length === 2")
        page = dashboard.page
        values = page.eval_on_selector_all("#vehicle-select option", "els => els.map(e => e.value)")
        assert values == ["ev-1", "ev-2"]
        # the first vehicle is selected by itself; choosing the other switches the gauges
        dashboard.wait_for("document.querySelector('#vehicle-select').value === 'ev-1'")
        page.select_option("#vehicle-select", "ev-2")
        dashboard.wait_for("document.querySelector('#footer-rev').textContent.startsWith('ev-2')")
        dashboard.wait_for(
            "parseFloat(document.querySelector('#gauge-power').dataset.value) < 0", None
        )
        assert "vehicle=ev-2" in page.url
        assert dashboard.errors == []


def test_refresh_interval_throttles_rendering(service: str, open_page: Any) -> None:
    first = post_step(service, "ev-throttle", [{"dt_s": 1.0, "power_kw": 20.0}])
    dashboard = open_page(f"{service}/?vehicle=ev-throttle")
    dashboard.wait_for(SOC_GAUGE_IS, first["telemetry"]["soc"])
    page = dashboard.page
    page.select_option("#refresh-select", "5000")  # renders now, then at most every 5 s
    second = post_step(service, "ev-throttle", [{"dt_s": 60.0, "power_kw": 80.0}], first["state"])
    page.wait_for_timeout(1500)
    assert float(dashboard.attr("#gauge-soc", "data-value") or "nan") == pytest.approx(
        first["telemetry"]["soc"], abs=0.051
    )
    dashboard.wait_for(SOC_GAUGE_IS, second["telemetry"]["soc"])  # within the 5 s
    # the choice is remembered for the next visit
    assert page.evaluate("localStorage.getItem('twin.refreshMs')") == "5000"
    assert dashboard.errors == []


def test_statistics_panel_shows_the_forecast(service: str, open_page: Any) -> None:
    post_step(service, "ev-forecast", [{"dt_s": 600.0, "power_kw": 15.0}])
    forecast = httpx.post(
        f"{service}/forecast", json={"vehicle_id": "ev-forecast", "years": 10}, timeout=30
    )
    forecast.raise_for_status()
    expected = forecast.json()
    dashboard = open_page(f"{service}/?vehicle=ev-forecast")
    dashboard.wait_for("document.querySelector('#stat-fade').textContent !== '—'")
    page = dashboard.page
    fade = page.inner_text("#stat-fade")
    assert fade == f"{expected['fade_pct_per_year']:.2f} %/yr"
    assert page.inner_text("#stat-soh2").endswith("%")
    assert page.inner_text("#stat-years80") != "—"
    assert int(dashboard.attr("#chart-forecast", "data-points") or 0) == len(expected["points"])
    assert dashboard.errors == []


def test_a_rev_gap_refetches_the_vehicle_and_its_history(service: str, open_page: Any) -> None:
    dropped_revs = {2}

    def drop_some_messages(page: Any) -> None:
        """Between service and page, lose the vehicle feed's messages of `dropped_revs`."""

        def route(ws: Any) -> None:
            server = ws.connect_to_server()
            ws.on_message(server.send)
            server.on_message(
                lambda text: None if json.loads(text).get("rev") in dropped_revs else ws.send(text)
            )

        page.route_web_socket(re.compile(r".*/ws/vehicles/.*"), route)

    first = post_step(service, "ev-gap", [{"dt_s": 1.0, "power_kw": 20.0}])
    dashboard = open_page(f"{service}/?vehicle=ev-gap", before_load=drop_some_messages)
    dashboard.wait_for(SOC_GAUGE_IS, first["telemetry"]["soc"])
    dashboard.wait_for("Number(document.querySelector('#chart-history').dataset.points) === 1")
    fetched: list[str] = []
    dashboard.page.on("request", lambda request: fetched.append(request.url))

    second = post_step(service, "ev-gap", [{"dt_s": 30.0, "power_kw": 60.0}], first["state"])
    third = post_step(service, "ev-gap", [{"dt_s": 30.0, "power_kw": 60.0}], second["state"])
    assert (second["rev"], third["rev"]) == (2, 3)
    dashboard.wait_for(SOC_GAUGE_IS, third["telemetry"]["soc"])
    # rev 2 never arrived: the page re-fetched the vehicle and its history, which has it
    dashboard.wait_for("Number(document.querySelector('#chart-history').dataset.points) === 3")
    assert any(u.endswith("/vehicles/ev-gap") for u in fetched), fetched
    assert any("/vehicles/ev-gap/history" in u for u in fetched), fetched
    assert dashboard.errors == []


def test_reconnects_and_refetches_after_a_service_restart(open_page: Any, tmp_path: Path) -> None:
    port = free_port()
    process = ServiceProcess(port=port, log_dir=tmp_path)
    process.start()
    try:
        url = process.url
        reply = city_drive(url, "ev-r", 3)
        dashboard = open_page(f"{url}/?vehicle=ev-r")
        dashboard.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
        process.stop()
        dashboard.wait_for(
            "document.querySelector('#status-connection').dataset.state === 'reconnecting'"
        )
        process.start()
        # the memory store forgot the vehicle: revs start again at 1, the page must follow
        fresh = post_step(url, "ev-r", [{"dt_s": 5.0, "power_kw": 40.0}], reply["state"])
        assert fresh["rev"] == 1
        dashboard.wait_for("document.querySelector('#status-connection').dataset.state === 'live'")
        dashboard.wait_for(SOC_GAUGE_IS, fresh["telemetry"]["soc"])
        dashboard.wait_for("document.querySelector('#footer-rev').textContent.endsWith('rev 1')")
        later = post_step(url, "ev-r", [{"dt_s": 5.0, "power_kw": 40.0}], fresh["state"])
        dashboard.wait_for(SOC_GAUGE_IS, later["telemetry"]["soc"])
        # the browser logs the refused attempts while the service was down, and a 404 for the
        # vehicle while the restarted service did not know it yet; nothing else may fail
        expected = ("WebSocket connection", "ERR_CONNECTION_REFUSED", "status of 404")
        unexpected = [e for e in dashboard.errors if not any(x in e for x in expected)]
        assert unexpected == []
    finally:
        process.stop()


def test_read_key_is_taken_from_the_page_url(browser: Any, open_page: Any) -> None:
    with start_service(env={"TWIN_READ_KEY": "letmein"}) as url:
        reply = post_step(url, "ev-key", [{"dt_s": 1.0, "power_kw": 20.0}])
        dashboard = open_page(f"{url}/?token=letmein")
        dashboard.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
        assert dashboard.page.is_hidden("#notice")
        assert dashboard.errors == []

        # without the key the page says how to give it (the browser logs the refused reads)
        context = browser.new_context(viewport=DESKTOP)
        try:
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("#notice:not([hidden])", timeout=WAIT_MS)
            assert "?token=" in page.inner_text("#notice")
        finally:
            context.close()


def test_screenshots_at_desktop_and_phone_width(service: str, open_page: Any) -> None:
    reply = city_drive(service, "ev-demo", 48)
    city_drive(service, "ev-city-2", 4)
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)

    desktop = open_page(f"{service}/?vehicle=ev-demo", DESKTOP)
    desktop.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
    desktop.wait_for("Number(document.querySelector('#chart-history').dataset.points) >= 48")
    desktop.wait_for(
        "Number(document.querySelector('#chart-forecast').dataset.points) > 1 "
        "|| document.querySelector('#stats-note').textContent.includes('unavailable')"
    )
    page = desktop.page
    # everything that matters is above the fold at 1280x800, nothing scrolls sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    box = page.locator("#panel-details").bounding_box()
    assert box is not None and box["y"] + box["height"] <= DESKTOP["height"]
    shot = OUTPUT_DIR / "dashboard-1280x800.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000

    phone = open_page(f"{service}/?vehicle=ev-demo", PHONE)
    phone.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
    phone.wait_for("Number(document.querySelector('#chart-history').dataset.points) >= 48")
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    gauge = phone.page.locator("#gauge-soc").bounding_box()
    assert gauge is not None and gauge["width"] >= 150  # two gauges per row, still legible
    phone.page.screenshot(path=str(OUTPUT_DIR / "dashboard-390.png"), full_page=True)

    if os.environ.get("UPDATE_SCREENSHOTS") or not README_SCREENSHOT.exists():
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, README_SCREENSHOT)
    assert desktop.errors == [] and phone.errors == []
