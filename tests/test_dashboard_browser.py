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


FORECAST_DRAWN = "Number(document.querySelector('#chart-forecast').dataset.points) > 1"


def steady_drive(url: str, vehicle_id: str, ambient_c: float, steps: int = 3) -> dict[str, Any]:
    """Constant discharge (no half-cycle ends, so no depth-of-discharge flag) with the
    preset's physical aging model (not demo mode's seed)."""
    reply: dict[str, Any] = {"state": None}
    for _ in range(steps):
        samples = [{"dt_s": 20.0, "power_kw": 25.0, "ambient_c": ambient_c} for _ in range(5)]
        reply = post_step(url, vehicle_id, samples, reply["state"])
    return reply


def record_forecast_requests(bodies: list[dict[str, Any]]) -> Any:
    def before_load(page: Any) -> None:
        page.on(
            "request",
            lambda request: (
                bodies.append(json.loads(request.post_data or "{}"))
                if request.method == "POST" and request.url.split("?")[0].endswith("/forecast")
                else None
            ),
        )

    return before_load


def test_forecast_card_draws_the_model_spread_and_names_the_model(
    service: str, open_page: Any
) -> None:
    reply = steady_drive(service, "ev-compare", ambient_c=25.0)
    telemetry = reply["telemetry"]
    assert telemetry["aging_model"] == "naumann"
    assert telemetry.get("aging_out_of_range") is False
    expected = httpx.post(
        f"{service}/forecast",
        json={"vehicle_id": "ev-compare", "years": 10, "compare_models": True},
        timeout=30,
    ).json()
    models = {m["name"]: m for m in httpx.get(f"{service}/models", timeout=10).json()}
    name = expected["aging_model"]
    by_model = expected["by_model"]
    assert name == "naumann" and len(by_model) >= 2

    bodies: list[dict[str, Any]] = []
    dashboard = open_page(
        f"{service}/?vehicle=ev-compare", before_load=record_forecast_requests(bodies)
    )
    page = dashboard.page
    page.wait_for_selector("#chart-forecast path.forecast-band", state="attached", timeout=WAIT_MS)
    dashboard.wait_for(
        "document.querySelector('#forecast-model').textContent.includes(arg)", models[name]["title"]
    )
    assert bodies and all(b.get("compare_models") is True for b in bodies), bodies

    # the band: min..max over by_model at every point of the main line, under the main line
    band = page.get_attribute("#chart-forecast path.forecast-band", "d") or ""
    assert band.startswith("M") and band.endswith("Z")
    assert band.count("L") + band.count("M") == 2 * len(expected["points"])
    assert page.locator("#chart-forecast path.line-soh").count() == 1
    assert page.get_attribute("#chart-forecast path.line-soh", "d")
    assert int(dashboard.attr("#chart-forecast", "data-points") or 0) == len(expected["points"])
    assert dashboard.attr("#chart-forecast", "data-band-models") == str(len(by_model))
    band_title = page.text_content("#chart-forecast path.forecast-band title") or ""
    assert all(m["aging_model"] in band_title for m in by_model), band_title

    # the model in use, with its title from GET /models, and what the band is
    model_text = page.text_content("#forecast-model") or ""
    assert f"({name})" in model_text and models[name]["title"] in model_text, model_text
    assert page.is_visible("#forecast-model")
    assert page.inner_text("#forecast-band-text") == (
        f"band: spread of {len(by_model)} physical models"
    )
    assert page.is_visible("#forecast-band-legend")
    assert page.is_hidden("#aging-range")  # in range: no notice
    # the numbers are the forecast of the model in use
    assert page.inner_text("#stat-fade") == f"{expected['fade_pct_per_year']:.2f} %/yr"
    assert dashboard.errors == []


@pytest.mark.parametrize("older", ["refuses compare_models", "ignores compare_models"])
def test_forecast_card_without_by_model_draws_the_line_alone(
    service: str, open_page: Any, older: str
) -> None:
    """An older service: without by_model there is no band, the line and the name stay."""
    vehicle_id = f"ev-older-{older.split()[0]}"
    steady_drive(service, vehicle_id, ambient_c=25.0, steps=1)
    bodies: list[dict[str, Any]] = []

    def older_service(page: Any) -> None:
        record_forecast_requests(bodies)(page)

        def route(route: Any) -> None:
            body = json.loads(route.request.post_data or "{}")
            if older == "refuses compare_models" and "compare_models" in body:
                detail = [{"loc": ["body", "compare_models"], "msg": "Extra inputs are not "
                           "permitted", "type": "extra_forbidden"}]  # fmt: skip
                route.fulfill(status=422, json={"detail": detail})
                return
            response = route.fetch()
            answer = response.json()
            answer.pop("by_model", None)
            route.fulfill(response=response, json=answer)

        page.route(re.compile(r".*/forecast(\?.*)?$"), route)

    dashboard = open_page(f"{service}/?vehicle={vehicle_id}", before_load=older_service)
    dashboard.wait_for(FORECAST_DRAWN)
    dashboard.wait_for("!document.querySelector('#forecast-legend').hidden")
    page = dashboard.page
    assert page.get_attribute("#chart-forecast path.line-soh", "d")
    assert page.locator("#chart-forecast path.forecast-band").count() == 0
    assert dashboard.attr("#chart-forecast", "data-band-models") == "0"
    assert page.is_hidden("#forecast-band-legend")
    assert "(naumann)" in (page.text_content("#forecast-model") or "")
    assert page.inner_text("#stat-fade").endswith("%/yr")
    if older == "refuses compare_models":
        # asked once with the field, then without it
        assert [b.get("compare_models") for b in bodies[:2]] == [True, None], bodies
        expected = [e for e in dashboard.errors if "status of 422" not in e]
        assert expected == []
    else:
        assert dashboard.errors == []


def test_notice_when_the_aging_model_leaves_its_fitted_range(service: str, open_page: Any) -> None:
    cold = steady_drive(service, "ev-cold", ambient_c=0.0, steps=1)
    stressors = cold["telemetry"]["aging_out_of_range_stressors"]
    assert cold["telemetry"]["aging_out_of_range"] is True and "temperature" in stressors
    dashboard = open_page(f"{service}/?vehicle=ev-cold")
    page = dashboard.page
    page.wait_for_selector("#aging-range:not([hidden])", timeout=WAIT_MS)
    assert page.inner_text("#aging-range").endswith(
        f"aging model outside its fitted range: {', '.join(stressors)}"
    )
    # it stays small: one line of the forecast card, not the page-wide notice
    assert page.is_hidden("#notice")
    box = page.locator("#aging-range").bounding_box()
    assert box is not None and box["height"] < 24

    # at rest nothing is out of range: the notice follows the latest telemetry
    rest = post_step(
        service, "ev-cold", [{"dt_s": 10.0, "power_kw": 0.0, "ambient_c": 0.0}], cold["state"]
    )
    assert rest["telemetry"]["aging_out_of_range"] is False
    page.wait_for_selector("#aging-range", state="hidden", timeout=WAIT_MS)
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
        # the memory store forgot the vehicle and a new pack starts it again at rev 1 (a saved
        # state would continue above its own rev): the page must follow the lower rev
        fresh = post_step(url, "ev-r", [{"dt_s": 5.0, "power_kw": 40.0}], None)
        assert fresh["rev"] == 1
        dashboard.wait_for("document.querySelector('#status-connection').dataset.state === 'live'")
        dashboard.wait_for(SOC_GAUGE_IS, fresh["telemetry"]["soc"])
        dashboard.wait_for("document.querySelector('#footer-rev').textContent.endsWith('rev 1')")
        later = post_step(url, "ev-r", [{"dt_s": 5.0, "power_kw": 40.0}], fresh["state"])
        dashboard.wait_for(SOC_GAUGE_IS, later["telemetry"]["soc"])
        # the browser logs the refused attempts while the service was down (a request in
        # flight when it stopped is reset), and a 404 for the vehicle while the restarted
        # service did not know it yet; nothing else may fail
        expected = (
            "WebSocket connection",
            "ERR_CONNECTION_REFUSED",
            "ERR_CONNECTION_RESET",
            "status of 404",
        )
        unexpected = [e for e in dashboard.errors if not any(x in e for x in expected)]
        assert unexpected == []
    finally:
        process.stop()


def test_read_key_is_taken_from_the_page_url(browser: Any, open_page: Any) -> None:
    key = "letmein"
    sockets: list[Any] = []
    requests: list[str] = []

    def watch(page: Any) -> None:
        page.on("websocket", lambda ws: sockets.append(ws))
        page.on("request", lambda request: requests.append(request.url))

    def keyed_step(url: str, vehicle_id: str, state: Any = None) -> dict[str, Any]:
        # with only a read key set, POST /step needs it too (in the header)
        body = {"vehicle_id": vehicle_id, "state": state, "samples": [{"dt_s": 5, "power_kw": 30}]}
        reply = httpx.post(f"{url}/step", json=body, headers={"Authorization": f"Bearer {key}"})
        reply.raise_for_status()
        return reply.json()

    with start_service(env={"TWIN_READ_KEY": key}) as url:
        reply = keyed_step(url, "ev-key")
        dashboard = open_page(f"{url}/?token={key}&vehicle=ev-key", before_load=watch)
        dashboard.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
        assert dashboard.page.is_hidden("#notice")
        # the key left the address bar at once; no WebSocket or fetch after the page carries it
        assert key not in dashboard.page.url and "vehicle=ev-key" in dashboard.page.url
        urls = [s.url for s in sockets]
        assert f"{url}/ws/fleet".replace("http", "ws", 1) in urls, urls
        assert f"{url}/ws/vehicles/ev-key".replace("http", "ws", 1) in urls, urls
        assert [r for r in requests[1:] if key in r] == []  # [0]: the page itself, as opened
        # live data arrives over those sockets
        later = keyed_step(url, "ev-key", reply["state"])
        dashboard.wait_for(SOC_GAUGE_IS, later["telemetry"]["soc"])
        # a reload keeps the key (sessionStorage of this tab) without putting it back in the URL
        count = len(sockets)
        dashboard.page.reload()
        dashboard.wait_for("document.querySelector('#status-connection').dataset.state === 'live'")
        dashboard.wait_for(SOC_GAUGE_IS, later["telemetry"]["soc"])
        assert len(sockets) > count and [s.url for s in sockets if key in s.url] == []
        assert dashboard.errors == []
        # #token= works the same, and a fragment never reaches the server or its logs
        by_fragment = open_page(f"{url}/#token={key}")
        by_fragment.wait_for(SOC_GAUGE_IS, later["telemetry"]["soc"])
        assert key not in by_fragment.page.url and by_fragment.errors == []

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
    if int(desktop.attr("#chart-forecast", "data-points") or 0) > 1:
        assert page.get_attribute("#chart-forecast path.forecast-band", "d")
        assert page.is_visible("#forecast-model") and page.is_visible("#forecast-band-legend")
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
