"""The browser dashboard in headless Chromium (Playwright) against a real service process.

Needs Debian's ``chromium`` (or CHROMIUM_PATH) and the ``playwright`` package; no browser is
downloaded. Locally the tests skip with the reason when either is missing; in CI (CI is set)
that is a failure. Every page runs offline: requests to anything but the service are aborted
(and recorded). Screenshots go to test-output/dashboard/ (docs/img/dashboard.png is made by
scripts/screenshot.py).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.browser import WAIT_MS, DashboardPage, chromium
from support.live import post_step
from support.processes import ServiceProcess, free_port, start_service

from twin_service.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO_ROOT / "test-output" / "dashboard"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LIVE_CHARTS = ("soc", "power", "soh")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with start_service() as url:
        yield url


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[DashboardPage] = []

    def open_(
        url: str,
        viewport: dict[str, int] = DESKTOP,
        before_load: Any = None,
        options: dict[str, Any] | None = None,
    ) -> DashboardPage:
        page = DashboardPage(browser, url, viewport, before_load, options)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def city_drive(
    url: str, vehicle_id: str, steps: int, dt_s: float = 1.0, reply: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Accelerate, cruise, brake with regeneration, stop: ten samples of `dt_s` a step."""
    reply = reply or {"state": None}
    for i in range(steps):
        phase = (i % 12) / 12
        base_kw = 55 * math.sin(2 * math.pi * phase) + 18 + 8 * math.sin(i * 1.3)
        samples = [
            {
                "dt_s": dt_s,
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


def clock(seconds: float) -> str:
    """The legend's h:mm:ss (days past 24 h)."""
    s = round(seconds)
    days, rest = divmod(s, 86400)
    text = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days} d {text}" if days else text


SOC_GAUGE_IS = (
    "Math.abs(parseFloat(document.querySelector('#gauge-soc').dataset.value) - arg) < 0.051"
)
POINTS_ARE = "Number(document.querySelector('#chart-soc').dataset.points) === arg"


# ---------------------------------------------------------------------------- tests


def test_page_loads_offline_with_charts_and_no_console_errors(service: str, open_page: Any) -> None:
    reply = city_drive(service, "ev-load", 3)
    dashboard = open_page(f"{service}/?vehicle=ev-load")
    page = dashboard.page
    assert page.title() == "EV battery twin"
    for selector in (
        "#gauge-soc svg",
        "#gauge-soh svg",
        "#gauge-power svg",
        "#gauge-temperature svg",
    ):
        assert page.locator(selector).count() == 1
    dashboard.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
    dashboard.wait_for(POINTS_ARE, 3)
    # uPlot (the vendored copy) draws every chart on a canvas
    for name in (*LIVE_CHARTS, "forecast"):
        page.wait_for_selector(f"#chart-{name} .uplot canvas", state="attached", timeout=WAIT_MS)
    assert page.evaluate("typeof window.uPlot") == "function"
    assert dashboard.chart("soc")["data"][1][-1] == pytest.approx(reply["telemetry"]["soc"])
    page.wait_for_timeout(1500)  # let the first refresh, timers and sockets run
    assert dashboard.errors == []
    assert dashboard.offline.blocked == []  # nothing asked for outside the service

    # and the blocking is real: a request elsewhere fails
    failed = page.evaluate(
        "fetch('https://cdn.jsdelivr.net/npm/uplot/dist/uPlot.iife.min.js')"
        ".then(() => false, () => true)"
    )
    assert failed and dashboard.offline.blocked


def test_posted_step_updates_soc_gauge_and_charts(service: str, open_page: Any) -> None:
    dashboard = open_page(f"{service}/?vehicle=ev-1")
    first = post_step(service, "ev-1", [{"dt_s": 1.0, "power_kw": 20.0}])
    dashboard.wait_for(SOC_GAUGE_IS, first["telemetry"]["soc"])
    second = post_step(service, "ev-1", [{"dt_s": 30.0, "power_kw": 60.0}], first["state"])
    dashboard.wait_for(SOC_GAUGE_IS, second["telemetry"]["soc"])
    assert second["telemetry"]["soc"] < first["telemetry"]["soc"]

    dashboard.wait_for("Number(document.querySelector('#chart-soc').dataset.points) >= 2")
    points = dashboard.points()
    third = post_step(service, "ev-1", [{"dt_s": 10.0, "power_kw": -30.0}], second["state"])
    dashboard.wait_for(POINTS_ARE, points + 1)  # one sample: one point, no trace
    for name in LIVE_CHARTS:
        dashboard.wait_for(
            f"Number(document.querySelector('#chart-{name}').dataset.points) === arg", points + 1
        )
    t = third["telemetry"]
    assert dashboard.chart("soc")["data"][1][-1] == pytest.approx(t["soc"])
    assert dashboard.chart("soh")["data"][1][-1] == pytest.approx(t["soh"])
    assert dashboard.chart("power")["data"][1][-1] == pytest.approx(t["power_kw"])
    assert dashboard.chart("soc")["data"][0][-1] == pytest.approx(t["elapsed_seconds"])
    # the last step regenerated: negative power on the gauge, the REGEN flag shown
    dashboard.wait_for(
        "Math.abs(parseFloat(document.querySelector('#gauge-power').dataset.value) - arg) < 0.051",
        t["power_kw"],
    )
    assert t["power_kw"] < 0
    page = dashboard.page
    assert page.is_visible("#flag-regen")
    assert page.inner_text("#status-model .status-value") == t["vehicle_model"]
    assert dashboard.errors == []


def test_a_batch_draws_its_trace_not_one_point(service: str, open_page: Any) -> None:
    """A step of many samples arrives with its downsampled course (`trace`): the charts get
    every point of it, spread over the batch's simulated time."""
    batch = [{"dt_s": 1.0, "power_kw": 40.0 + 30 * math.sin(k / 50)} for k in range(1000)]
    first = post_step(service, "ev-trace", batch)
    dashboard = open_page(f"{service}/?vehicle=ev-trace")
    dashboard.wait_for(SOC_GAUGE_IS, first["telemetry"]["soc"])
    dashboard.wait_for(POINTS_ARE, 1)  # history: one record per request
    second = post_step(service, "ev-trace", batch, first["state"])
    third = post_step(service, "ev-trace", batch, second["state"])
    per_batch = Settings().live_trace_points
    assert per_batch >= 100
    dashboard.wait_for(POINTS_ARE, 1 + 2 * per_batch)
    assert dashboard.points() > 3  # more points than requests
    x, soc = dashboard.chart("soc")["data"][:2]
    assert all(b > a for a, b in zip(x, x[1:], strict=False))
    # the trace spans the batch and ends on the telemetry
    t2, t3 = second["telemetry"], third["telemetry"]
    assert x[-1] == pytest.approx(t3["elapsed_seconds"])
    assert soc[-1] == pytest.approx(t3["soc"], abs=1e-3)
    last_batch = [v for v in x if v > t2["elapsed_seconds"]]
    assert len(last_batch) == per_batch
    assert last_batch[0] - t2["elapsed_seconds"] < 1000 / per_batch + 1
    power = dashboard.chart("power")["data"][1]
    assert max(power) - min(power) > 40  # the course inside a batch, not its last value
    assert dashboard.errors == []


def test_soc_and_soh_are_on_separate_charts(service: str, open_page: Any) -> None:
    reply = city_drive(service, "ev-split", 4)
    dashboard = open_page(f"{service}/?vehicle=ev-split")
    dashboard.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
    soc, power, soh = (dashboard.chart(n) for n in LIVE_CHARTS)
    assert soc["labels"] == ["time", "SOC"] and soh["labels"] == ["time", "SOH"]
    assert power["labels"] == ["time", "power"]
    assert soc["axes"] == soh["axes"] == 2  # one x and one y axis each: no twin axes
    assert soc["scales"][1] != soh["scales"][1]
    boxes = [dashboard.page.locator(f"#chart-{n} canvas").bounding_box() for n in ("soc", "soh")]
    a, b = boxes
    assert a and b
    apart = a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"]
    apart = apart or a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
    assert apart, boxes
    assert dashboard.errors == []


def over_box(dashboard: DashboardPage, name: str) -> dict[str, float]:
    box = dashboard.page.locator(f"#chart-{name} .u-over").bounding_box()
    assert box is not None
    return box


def legend_values(dashboard: DashboardPage, name: str) -> list[str]:
    return dashboard.page.eval_on_selector_all(
        f"#legend-{name} .u-series .u-value", "els => els.map(e => e.textContent)"
    )


def test_hover_range_buttons_csv_and_zoom(service: str, open_page: Any) -> None:
    # 40 steps of 10 x 30 s: 3 h 20 min of simulated time, 10 trace points a step
    reply = city_drive(service, "ev-hover", 40, dt_s=30.0)
    end = reply["telemetry"]["elapsed_seconds"]
    assert end == pytest.approx(12_000)
    dashboard = open_page(f"{service}/?vehicle=ev-hover")
    page = dashboard.page
    dashboard.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
    dashboard.wait_for(POINTS_ARE, 40)  # history
    page.wait_for_selector("#chart-soc .u-over", timeout=WAIT_MS)

    # hover read-out: not hovering, the legend has the latest values; over the chart, those
    # at the cursor
    dashboard.wait_for(
        "document.querySelector('#legend-soc .u-value') !== null"
        " && document.querySelector('#legend-soc .u-value').textContent === arg",
        clock(end),
    )
    box = over_box(dashboard, "soc")
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    dashboard.wait_for(
        "document.querySelector('#legend-soc .u-value').textContent !== arg", clock(end)
    )
    chart = dashboard.chart("soc")
    idx = chart["idx"]
    assert idx is not None and 0 < idx < len(chart["data"][0]) - 1
    time_text, soc_text = legend_values(dashboard, "soc")
    assert time_text == clock(chart["data"][0][idx])
    assert soc_text == f"{chart['data'][1][idx]:.1f} %"
    # the cursor is shared: the power chart reads out the same moment
    assert legend_values(dashboard, "power")[0] == time_text
    page.mouse.move(5, 5)

    # time ranges of simulated time
    full = dashboard.chart("soc")
    assert full["min"] == pytest.approx(full["data"][0][0])
    assert full["max"] == pytest.approx(end)
    for label, span in (("1 h", 3600), ("10 min", 600)):
        page.click(f"#range-buttons button:text-is('{label}')")
        dashboard.wait_for(
            "Number(document.querySelector('#chart-soc').dataset.xMin) >= arg",
            end - span - 1e-6,
        )
        ranged = dashboard.chart("soc")
        assert ranged["max"] == pytest.approx(end)
        assert ranged["max"] - ranged["min"] <= span
        assert min(ranged["data"][0]) >= end - span
        assert page.get_attribute(f"#range-buttons button:text-is('{label}')", "aria-pressed") == (
            "true"
        )
        for name in ("power", "soh"):
            assert dashboard.chart(name)["min"] == pytest.approx(ranged["min"])

    # CSV of exactly the points shown, header with units
    page.click("#range-buttons button:text-is('1 h')")
    dashboard.wait_for(
        "Number(document.querySelector('#chart-soc').dataset.xMin) >= arg[0]"
        " && Number(document.querySelector('#chart-soc').dataset.xMin) < arg[1]",
        [end - 3600 - 1e-6, end - 600],
    )
    shown = dashboard.chart("soc")
    rows = download_csv(dashboard)
    assert rows[0] == [
        "elapsed [s]",
        "SOC [%]",
        "SOH [%]",
        "voltage [V]",
        "current [A]",
        "power [kW]",
        "temperature [°C]",
    ]
    body = rows[1:]
    assert len(body) == len(shown["data"][0]) > 10
    assert [float(r[0]) for r in body] == pytest.approx(shown["data"][0], abs=1e-3)
    assert [float(r[1]) for r in body] == pytest.approx(shown["data"][1], abs=1e-4)
    assert float(body[-1][5]) == pytest.approx(reply["telemetry"]["power_kw"], abs=1e-3)

    # drag to zoom on x (all three charts follow), CSV of the zoomed view, double-click back
    box = over_box(dashboard, "soc")
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=8)
    page.mouse.up()
    for name in LIVE_CHARTS:
        dashboard.wait_for(f"document.querySelector('#chart-{name}').dataset.zoomed === 'true'")
    zoomed = dashboard.chart("soc")
    assert shown["min"] < zoomed["min"] < zoomed["max"] < shown["max"]
    assert dashboard.chart("soh")["min"] == pytest.approx(zoomed["min"])
    inside = [v for v in zoomed["data"][0] if zoomed["min"] <= v <= zoomed["max"]]
    rows = download_csv(dashboard)
    assert [float(r[0]) for r in rows[1:]] == pytest.approx(inside, abs=1e-3)
    assert 0 < len(inside) < len(body)
    page.mouse.dblclick(box["x"] + box["width"] / 2, y)
    dashboard.wait_for("document.querySelector('#chart-soc').dataset.zoomed === 'false'")
    back = dashboard.chart("soc")
    assert back["min"] == pytest.approx(shown["min"]) and back["max"] == pytest.approx(end)
    assert dashboard.errors == []


def download_csv(dashboard: DashboardPage) -> list[list[str]]:
    with dashboard.page.expect_download(timeout=WAIT_MS) as info:
        dashboard.page.click("#csv-export")
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text(encoding="utf-8")
    return list(csv.reader(io.StringIO(text)))


def test_vehicle_selector_lists_two_vehicles(open_page: Any) -> None:
    with start_service() as fresh:
        dashboard = open_page(fresh)
        dashboard.wait_for(
            "document.querySelector('#vehicle-select').textContent === 'no vehicles yet'"
        )  # the service listed no vehicle
        assert "No vehicle has reported yet" in dashboard.page.inner_text("#chart-soc")
        post_step(fresh, "ev-1", [{"dt_s": 1.0, "power_kw": 20.0}])
        post_step(fresh, "ev-2", [{"dt_s": 1.0, "power_kw": -5.0}])
        dashboard.wait_for("document.querySelector('#vehicle-select').options.length === 2")
        page = dashboard.page
        assert dashboard.options() == ["ev-1", "ev-2"]
        # the first vehicle to report (the most recent then) is selected by itself; choosing
        # the other switches
        dashboard.wait_for("document.querySelector('#vehicle-select').value === 'ev-1'")
        page.select_option("#vehicle-select", "ev-2")
        dashboard.wait_for("document.querySelector('#footer-rev').textContent.startsWith('ev-2')")
        dashboard.wait_for(
            "parseFloat(document.querySelector('#gauge-power').dataset.value) < 0", None
        )
        assert "vehicle=ev-2" in page.url
        assert dashboard.errors == []


def test_opens_on_the_most_recently_updated_vehicle(open_page: Any) -> None:
    with start_service() as fresh:
        post_step(fresh, "a-idle", [{"dt_s": 1.0, "power_kw": 20.0}])
        live = post_step(fresh, "z-live", [{"dt_s": 1.0, "power_kw": 35.0}])
        latest = open_page(fresh)
        latest.wait_for("document.querySelector('#vehicle-select').value === 'z-live'")
        latest.wait_for(SOC_GAUGE_IS, live["telemetry"]["soc"])
        assert latest.options() == ["a-idle", "z-live"]
        assert "vehicle=z-live" in latest.page.url

        asked = open_page(f"{fresh}/?vehicle=a-idle")
        asked.wait_for("document.querySelector('#footer-rev').textContent.startsWith('a-idle')")
        assert asked.selected() == "a-idle"

        unknown = open_page(f"{fresh}/?vehicle=nobody")
        unknown.wait_for("document.querySelector('#vehicle-select').value === 'z-live'")
        assert latest.errors == [] and asked.errors == [] and unknown.errors == []


def test_vehicles_the_service_dropped_leave_the_selector(open_page: Any) -> None:
    """A store of two vehicles drops the least recently updated one for a third: the pages
    re-list (here every 300 ms) and lose it; the page that showed it shows the newest."""
    options = {"fleetRelistMs": 300}
    with start_service(env={"TWIN_MAX_VEHICLES": "2"}) as small:
        post_step(small, "v-1", [{"dt_s": 1.0, "power_kw": 20.0}])
        post_step(small, "v-2", [{"dt_s": 1.0, "power_kw": 20.0}])
        keeps = open_page(f"{small}/?vehicle=v-2", options=options)
        loses = open_page(f"{small}/?vehicle=v-1", options=options)
        for page in (keeps, loses):
            page.wait_for("document.querySelector('#vehicle-select').options.length === 2")
        assert keeps.selected() == "v-2" and loses.selected() == "v-1"

        newest = post_step(small, "v-3", [{"dt_s": 1.0, "power_kw": 50.0}])
        assert httpx.get(f"{small}/vehicles/v-1").status_code == 404
        for page in (keeps, loses):
            page.wait_for(
                "[...document.querySelector('#vehicle-select').options].map(o => o.value)"
                ".join() === 'v-2,v-3'"
            )
        assert keeps.selected() == "v-2"
        loses.wait_for("document.querySelector('#vehicle-select').value === 'v-3'")
        loses.wait_for(SOC_GAUGE_IS, newest["telemetry"]["soc"])
        assert "vehicle=v-3" in loses.page.url
        assert keeps.errors == []
        # the page that showed v-1 asked for it once more and got 404
        assert [e for e in loses.errors if "status of 404" not in e] == []


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


def soh_at(points: list[dict[str, float]], years: float) -> float | None:
    """A model's SOH (%) at `years`, linear between its points, None outside them."""
    for a, b in zip(points, points[1:], strict=False):
        if a["years"] - 1e-9 <= years <= b["years"] + 1e-9:
            f = (years - a["years"]) / ((b["years"] - a["years"]) or 1)
            return 100 * (a["soh"] + f * (b["soh"] - a["soh"]))
    return None


def test_forecast_card_shows_model_usage_band_and_threshold(service: str, open_page: Any) -> None:
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
    presets = httpx.get(f"{service}/vehicles/presets", timeout=10).json()
    name = expected["aging_model"]
    by_model = expected["by_model"]
    band = expected["band"]
    usage = expected["usage"]
    assert name == "naumann" and len(by_model) >= 2

    bodies: list[dict[str, Any]] = []
    dashboard = open_page(
        f"{service}/?vehicle=ev-compare", before_load=record_forecast_requests(bodies)
    )
    page = dashboard.page
    dashboard.wait_for(FORECAST_DRAWN)
    dashboard.wait_for(
        "document.querySelector('#forecast-model').textContent.includes(arg)", models[name]["title"]
    )
    assert bodies and all(b.get("compare_models") is True for b in bodies), bodies

    # the chart: the band is min..max over by_model at every point of the main line
    chart = dashboard.chart("forecast")
    years, lo, hi, main = chart["data"]
    assert chart["labels"] == ["years", "models min", "max", name]
    assert years == pytest.approx([p["years"] for p in expected["points"]])
    assert main == pytest.approx([100 * p["soh"] for p in expected["points"]])
    for x, low, high in zip(years, lo, hi, strict=True):
        values = [soh_at(m["points"], x) for m in by_model]
        assert low == pytest.approx(min(values)) and high == pytest.approx(max(values))
    assert dashboard.attr("#chart-forecast", "data-band-models") == str(len(by_model))
    title = dashboard.attr("#chart-forecast", "title") or ""
    assert all(m["aging_model"] in title for m in by_model), title
    # the 80 % line is named on the chart, at its height
    label = page.locator("#forecast-threshold")
    assert label.is_visible() and label.inner_text() == "80 % (end of first life)"
    label_box = label.bounding_box()
    over = over_box(dashboard, "forecast")
    assert label_box is not None
    line_y = page.evaluate("window.twinDashboard.chart('forecast').valToPos(80, '%')")
    assert label_box["y"] + label_box["height"] == pytest.approx(over["y"] + line_y, abs=1.5)

    # the model in use, with its title from GET /models, and what the band is
    model_text = page.text_content("#forecast-model") or ""
    assert model_text.startswith(name) and models[name]["title"] in model_text, model_text
    assert page.inner_text("#forecast-band-text") == (
        f"band: spread of {len(by_model)} physical models"
    )
    assert page.is_visible("#forecast-band-legend")
    assert page.is_hidden("#aging-range")  # in range: no notice

    # the numbers are the forecast of the model in use, the band those of all models
    assert page.inner_text("#stat-fade") == f"{expected['fade_pct_per_year']:.2f} %/yr"
    fade_lo, fade_hi = band["fade_pct_per_year"]
    assert page.inner_text("#band-fade") == f"models {fade_lo:.1f}–{fade_hi:.1f} %/yr"
    soh_lo, soh_hi = band["soh_in_2_years"]
    assert page.inner_text("#band-soh2") == f"models {100 * soh_lo:.1f}–{100 * soh_hi:.1f} %"
    y_lo, y_hi = band["years_to_80"]
    years_text = page.inner_text("#band-years80")
    if y_hi is None:
        assert years_text == f"models {y_lo:.1f} y – beyond"
    else:
        assert years_text == f"models {y_lo:.1f}–{y_hi:.1f} y"

    # the usage it assumed, each with its source
    source = usage["source"]
    driving = page.inner_text("#usage-driving")
    assert f"{usage['daily_km']:.0f} km/day" in driving and source["daily_km"] in driving.lower()
    window = page.inner_text("#usage-window")
    assert f"{100 * usage['soc_min']:.0f}–{100 * usage['soc_max']:.0f} %" in window
    assert source["soc_min"] in window.lower()
    climate = page.inner_text("#usage-climate")
    assert f"{usage['ambient_c']:.0f} °C" in climate and source["ambient_c"] in climate.lower()
    kwh = presets[telemetry["vehicle_model"]]["pack"]["nominal_energy_kwh"]
    charging = page.inner_text("#usage-charging")
    assert f"{usage['charge_c_rate']:.2f} C ≈ {usage['charge_c_rate'] * kwh:.0f} kW" in charging
    assert f"DC fast {100 * usage['dc_fast_share']:.0f} %" in charging
    assert source["charge_c_rate"] in charging.lower()
    # how the live twin ages
    assert page.inner_text("#twin-aging") == "live twin: naumann · ages in real time"
    assert dashboard.errors == []


@pytest.mark.parametrize("older", ["refuses compare_models", "ignores compare_models"])
def test_forecast_card_without_by_model_draws_the_line_alone(
    service: str, open_page: Any, older: str
) -> None:
    """An older service: without by_model (and band) there is no band, the line and the
    name stay."""
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
            answer.pop("band", None)
            route.fulfill(response=response, json=answer)

        page.route(re.compile(r".*/forecast(\?.*)?$"), route)

    dashboard = open_page(f"{service}/?vehicle={vehicle_id}", before_load=older_service)
    dashboard.wait_for(FORECAST_DRAWN)
    dashboard.wait_for("!document.querySelector('#forecast-legend').hidden")
    page = dashboard.page
    chart = dashboard.chart("forecast")
    assert chart["labels"] == ["years", "naumann"] and len(chart["data"]) == 2
    assert dashboard.attr("#chart-forecast", "data-band-models") == "0"
    assert page.is_hidden("#forecast-band-legend")
    assert page.inner_text("#band-fade") == ""
    assert "naumann" in (page.text_content("#forecast-model") or "")
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
    dashboard.wait_for(POINTS_ARE, 1)
    fetched: list[str] = []
    dashboard.page.on("request", lambda request: fetched.append(request.url))

    second = post_step(service, "ev-gap", [{"dt_s": 30.0, "power_kw": 60.0}], first["state"])
    third = post_step(service, "ev-gap", [{"dt_s": 30.0, "power_kw": 60.0}], second["state"])
    assert (second["rev"], third["rev"]) == (2, 3)
    dashboard.wait_for(SOC_GAUGE_IS, third["telemetry"]["soc"])
    # rev 2 never arrived: the page re-fetched the vehicle and its history, which has it
    dashboard.wait_for(POINTS_ARE, 3)
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


# Corners of each gauge's value text, as distances from the arc's centre (SVG units).
GAUGE_TEXT_REACH = """() => [...document.querySelectorAll('.gauge')].map((g) => {
    const text = g.querySelector('.gauge-value');
    const b = text.getBBox();
    const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height],
                     [b.x + b.width, b.y + b.height]];
    return {id: g.id, text: text.textContent,
            reach: Math.max(...corners.map(([x, y]) => Math.hypot(x - 100, y - 84)))};
})"""
ARC_INNER_RADIUS = 70 - 14 / 2  # the arc's radius less half its stroke


def test_layout_at_desktop_and_phone_width(service: str, open_page: Any) -> None:
    reply = city_drive(service, "ev-demo", 48)
    city_drive(service, "ev-city-2", 4)
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)

    desktop = open_page(f"{service}/?vehicle=ev-demo", DESKTOP)
    desktop.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
    desktop.wait_for("Number(document.querySelector('#chart-soc').dataset.points) >= 48")
    desktop.wait_for(
        f"{FORECAST_DRAWN} || document.querySelector('#stats-note').textContent"
        ".includes('unavailable')"
    )
    page = desktop.page
    if int(desktop.attr("#chart-forecast", "data-points") or 0) > 1:
        assert page.is_visible("#forecast-model") and page.is_visible("#forecast-band-legend")
    # demo mode ages with the seed's toy model: said so, with its acceleration
    assert page.inner_text("#twin-aging") == (
        "live twin: seed — original toy demo model (not physical) · ages ×2,000 (aging only)"
    )
    # everything that matters is above the fold at 1280x800, nothing scrolls sideways
    assert page.evaluate("document.scrollingElement.scrollWidth") <= DESKTOP["width"]
    for selector in ("#panel-drive", "#panel-soh", "#panel-stats", "#panel-details"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] + box["height"] <= DESKTOP["height"], selector
    shot = OUTPUT_DIR / "dashboard-1280x800.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000

    # a new pack: SOH shows as 100.00, the widest value text
    new = post_step(service, "ev-new", [{"dt_s": 1.0, "power_kw": 10.0}])
    phone = open_page(f"{service}/?vehicle=ev-new", PHONE)
    phone.wait_for(SOC_GAUGE_IS, new["telemetry"]["soc"])
    assert phone.attr("#gauge-soh", "data-value") == "100.00"
    for dashboard in (phone, desktop):
        for gauge in dashboard.page.evaluate(GAUGE_TEXT_REACH):
            assert gauge["reach"] < ARC_INNER_RADIUS, gauge  # the text stays inside the arc
    phone.page.select_option("#vehicle-select", "ev-demo")
    phone.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
    phone.wait_for("Number(document.querySelector('#chart-soc').dataset.points) >= 48")
    phone.wait_for(FORECAST_DRAWN)
    ppage = phone.page
    assert ppage.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    for name in (*LIVE_CHARTS, "forecast"):
        box = ppage.locator(f"#chart-{name} canvas").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    gauge = ppage.locator("#gauge-soc").bounding_box()
    assert gauge is not None and gauge["width"] >= 150  # two gauges per row, still legible
    for g in ppage.evaluate(GAUGE_TEXT_REACH):
        assert g["reach"] < ARC_INNER_RADIUS, g
    ppage.screenshot(path=str(OUTPUT_DIR / "dashboard-390.png"), full_page=True)
    assert desktop.errors == [] and phone.errors == []
