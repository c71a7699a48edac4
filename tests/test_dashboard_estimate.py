"""The state estimate on the browser dashboard (headless Chromium, Playwright, offline as in
test_dashboard_browser.py): the ±2σ band around the SOC, the voltage chart (model and
measured, the residual in the read-out), the estimated SOH beside the model's, the estimator's
read-out in the pack card and the CSV's estimator columns; and none of it for a vehicle
without measurements, whose charts stay as they were before the estimator.

The first tests feed the page the estimator's fields by editing what the service sends (its
vehicle feed, snapshot and history) with known values; the end-to-end test posts /step samples
with measured voltages to a real service.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import Offline, chromium
from support.live import post_step
from support.processes import start_service

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO_ROOT / "test-output" / "dashboard"
DESKTOP = {"width": 1280, "height": 800}
WAIT_MS = 15_000
BASE_CSV = [
    "elapsed [s]",
    "SOC [%]",
    "SOH [%]",
    "voltage [V]",
    "current [A]",
    "power [kW]",
    "temperature [°C]",
]
ESTIMATE_CSV = [
    "SOC σ [%]",
    "measured voltage [V]",
    "voltage residual [V]",
    "SOH estimated [%]",
    "SOH estimated σ [%]",
]
# The estimate the edited messages carry (telemetry units: %, %-points, V).
SOC_STD = 1.3
SOH_OFFSET = -0.2
SOH_STD = 0.4
RESISTANCE_EST = 1.05
REJECTED = 1


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with start_service() as url:
        yield url


def residual_at(i: int) -> float | None:
    """The edited trace's voltage residual at row `i`: measured on even rows only."""
    return None if i % 2 else round(0.1 * (i % 5) - 0.2, 3)


def add_estimate(t: dict[str, Any]) -> None:
    """Telemetry as an estimator that measured the last sample would send it."""
    t.update(
        soc_std=SOC_STD,
        measured_voltage=t["voltage"] + 0.3,
        voltage_residual=0.3,
        soh_estimated=t["soh"] + SOH_OFFSET,
        soh_estimated_std=SOH_STD,
        resistance_factor_estimated=RESISTANCE_EST,
        measurements_rejected=REJECTED,
    )


def add_trace_estimate(trace: dict[str, list[Any]]) -> None:
    """The live trace's estimator columns; the last row is the telemetry's (residual 0.3)."""
    n = len(trace["elapsed_s"])
    residuals = [residual_at(i) for i in range(n - 1)] + [0.3]
    trace["soc_std"] = [SOC_STD] * n
    trace["voltage_residual"] = residuals
    trace["measured_voltage"] = [
        None if r is None else round(v + r, 3)
        for v, r in zip(trace["voltage"], residuals, strict=True)
    ]
    trace["soh_estimated"] = [s + SOH_OFFSET for s in trace["soh"]]


def with_estimates(body: Any) -> Any:
    """Every telemetry record in a response or message (a dict with vehicle_id and soc)
    gains the estimate."""
    if isinstance(body, list):
        for item in body:
            with_estimates(item)
    elif isinstance(body, dict):
        if "vehicle_id" in body and "soc" in body and "voltage" in body:
            add_estimate(body)
        for value in body.values():
            if isinstance(value, dict | list):
                with_estimates(value)
    return body


class Feed:
    """Edits the vehicle feed's messages on their way to the page; `heard` counts them (the
    first one, the snapshot, says that the page's socket is subscribed)."""

    def __init__(self, vehicle: str, edit: Callable[[dict[str, Any]], None]) -> None:
        self.pattern = re.compile(rf".*/ws/vehicles/{vehicle}$")
        self.edit = edit
        self.heard = 0

    def route(self, page: Any) -> None:
        def feed(ws: Any) -> None:
            server = ws.connect_to_server()
            ws.on_message(server.send)

            def forward(text: str) -> None:
                message = json.loads(text)
                self.edit(message)
                self.heard += 1
                ws.send(json.dumps(message))

            server.on_message(forward)

        page.route_web_socket(self.pattern, feed)

    def wait_subscribed(self, page: Any) -> None:
        for _ in range(WAIT_MS // 50):
            if self.heard:
                return
            page.wait_for_timeout(50)
        raise AssertionError("the vehicle feed sent nothing")


def edit_estimate(message: dict[str, Any]) -> None:
    with_estimates(message.get("telemetry"))
    if isinstance(message.get("trace"), dict):
        add_trace_estimate(message["trace"])


def estimating(vehicle_id: str, feed: Feed | None = None) -> Callable[[Any], None]:
    """Before the page loads: what the service sends about `vehicle_id` (its feed, snapshot
    and history) carries an estimate; other vehicles stay as they are."""

    def before_load(page: Any) -> None:
        (feed or Feed(vehicle_id, edit_estimate)).route(page)

        def rest(route: Any) -> None:
            response = route.fetch()
            route.fulfill(response=response, json=with_estimates(response.json()))

        page.route(re.compile(rf".*/vehicles/{vehicle_id}(/history)?(\?.*)?$"), rest)

    return before_load


class Dashboard:
    """The dashboard on one vehicle, offline but for the service; records page errors."""

    def __init__(self, browser: Any, url: str, before_load: Any = None) -> None:
        self.offline = Offline(browser, url, viewport=DESKTOP, accept_downloads=True)
        self.page = self.offline.page
        self.errors = self.offline.errors
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        if before_load is not None:
            before_load(self.page)
        self.page.goto(url)

    def wait_for(self, expression: str, arg: Any = None) -> None:
        self.page.wait_for_function(f"(arg) => {expression}", arg=arg, timeout=WAIT_MS)

    def chart(self, name: str) -> dict[str, Any] | None:
        return self.page.evaluate(
            """(name) => {
                const u = window.twinDashboard.chart(name);
                return u && {data: u.data, labels: u.series.map((s) => s.label),
                             bands: u.bands.map((b) => b.series), idx: u.cursor.idx};
            }""",
            name,
        )

    def layout(self, name: str) -> str | None:
        return self.page.evaluate("(name) => window.twinDashboard.layout(name)", name)

    def legend(self, name: str) -> list[tuple[str, str]]:
        """The (label, value) of every legend row shown."""
        rows = self.page.eval_on_selector_all(
            f"#legend-{name} .u-series",
            """rows => rows.filter((r) => getComputedStyle(r).display !== 'none')
                .map((r) => [r.querySelector('.u-label').textContent,
                             r.querySelector('.u-value').textContent])""",
        )
        return [(label, value) for label, value in rows]

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def csv(self) -> list[list[str]]:
        return list(csv.reader(io.StringIO(self.page.evaluate("window.twinDashboard.csv()"))))

    def close(self) -> None:
        self.offline.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Dashboard]]:
    pages: list[Dashboard] = []

    def open_(url: str, before_load: Any = None) -> Dashboard:
        page = Dashboard(browser, url, before_load)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def drive(url: str, vehicle_id: str, reply: dict[str, Any] | None = None) -> dict[str, Any]:
    """One batch of 60 s of varying discharge: enough samples for a live trace."""
    samples = [{"dt_s": 1.0, "power_kw": 30.0 + 20 * math.sin(k / 7)} for k in range(60)]
    return post_step(url, vehicle_id, samples, (reply or {}).get("state"))


LAYOUT_IS = "window.twinDashboard && window.twinDashboard.layout(arg[0]) === arg[1]"
NO_NAN = "!document.body.innerText.includes('NaN')"


def assert_no_estimate(dashboard: Dashboard) -> None:
    """The dashboard as without an estimator: no band, no voltage chart, no read-out."""
    page = dashboard.page
    assert dashboard.layout("soc") == "line" and dashboard.layout("soh") == "line"
    assert dashboard.layout("voltage") is None and dashboard.chart("voltage") is None
    soc, soh = dashboard.chart("soc"), dashboard.chart("soh")
    assert soc and soh
    assert soc["labels"] == ["time", "SOC"] and soc["bands"] == []
    assert soh["labels"] == ["time", "SOH"] and soh["bands"] == []
    assert page.is_hidden("#voltage-block") and page.is_hidden("#estimate")
    assert "±" not in dashboard.text("#legend-soc")
    assert dashboard.csv()[0] == BASE_CSV
    assert "NaN" not in page.inner_text("body")


# ---------------------------------------------------------------------------- tests


def test_estimate_shows_band_voltage_chart_and_read_out(service: str, open_page: Any) -> None:
    first = drive(service, "ev-est")
    feed = Feed("ev-est", edit_estimate)
    dashboard = open_page(f"{service}/?vehicle=ev-est", estimating("ev-est", feed))
    dashboard.wait_for(LAYOUT_IS, ["soc", "band"])
    feed.wait_subscribed(dashboard.page)
    second = drive(service, "ev-est", first)
    t = second["telemetry"]
    add_estimate(t)
    dashboard.wait_for(
        "document.querySelector('#footer-rev').textContent.endsWith(arg)", f"rev {second['rev']}"
    )
    dashboard.wait_for("Number(document.querySelector('#chart-soc').dataset.points) > 10")
    page = dashboard.page

    # SOC: the line over a ±2σ band (its edges two thin series off the legend), the read-out
    # with its σ
    soc = dashboard.chart("soc")
    assert soc is not None
    x, lo, hi, values = soc["data"]
    assert soc["labels"] == ["time", "SOC −2σ", "SOC +2σ", "SOC"] and soc["bands"] == [[2, 1]]
    assert values[-1] == pytest.approx(t["soc"], abs=1e-3)
    for v, low, high in zip(values, lo, hi, strict=True):
        assert low == pytest.approx(max(0.0, v - 2 * SOC_STD))
        assert high == pytest.approx(min(100.0, v + 2 * SOC_STD))
    assert dashboard.legend("soc")[1:] == [("SOC", f"{t['soc']:.1f} ± {SOC_STD:.1f} %")]

    # the voltage chart: model and measured (null where not measured), the residual read out
    assert page.is_visible("#voltage-block") and dashboard.layout("voltage") == "measured"
    voltage = dashboard.chart("voltage")
    assert voltage is not None
    vx, model, measured, residual = voltage["data"]
    assert voltage["labels"] == ["time", "model", "measured", "residual"]
    assert vx == x and model[-1] == pytest.approx(t["voltage"], abs=1e-3)
    assert measured[-1] == pytest.approx(t["measured_voltage"], abs=1e-3)
    assert None in measured and residual.count(None) == measured.count(None)
    for m, v, r in zip(measured, model, residual, strict=True):
        if m is not None:
            assert m - v == pytest.approx(r, abs=2e-3)
    assert dashboard.legend("voltage")[1:] == [
        ("model", f"{t['voltage']:.1f} V"),
        ("measured", f"{t['measured_voltage']:.1f} V"),
        ("residual", "+0.30 V"),
    ]
    # hovering on a measured point reads out its residual, the other charts the same moment
    box = page.locator("#chart-voltage .u-over").bounding_box()
    assert box is not None
    target = next(i for i in range(len(vx) - 40, len(vx)) if residual[i] not in (None, 0.3))
    px = page.evaluate("(v) => window.twinDashboard.chart('voltage').valToPos(v, 'x')", vx[target])
    page.mouse.move(box["x"] + px, box["y"] + box["height"] / 2)
    dashboard.wait_for("window.twinDashboard.chart('voltage').cursor.idx === arg", target)
    shown = dict(dashboard.legend("voltage"))
    r = residual[target]
    assert shown["residual"] == (f"+{r:.2f} V" if r > 0 else f"{r:.2f} V")
    assert shown["measured"] == f"{measured[target]:.1f} V"
    assert dict(dashboard.legend("soc"))["SOC"] == f"{values[target]:.1f} ± {SOC_STD:.1f} %"
    page.mouse.move(5, 5)

    # SOH: the estimate with its band beside the model's
    soh = dashboard.chart("soh")
    assert soh is not None
    assert soh["labels"] == ["time", "estimate −2σ", "estimate +2σ", "model", "estimate"]
    _, soh_lo, soh_hi, soh_model, soh_est = soh["data"]
    assert soh_est[-1] == pytest.approx(t["soh_estimated"], abs=1e-4)
    assert soh_model[-1] == pytest.approx(t["soh"], abs=1e-4)
    assert soh_lo[-1] == pytest.approx(t["soh_estimated"] - 2 * SOH_STD, abs=1e-4)
    assert soh_hi[-1] == pytest.approx(min(100.0, t["soh_estimated"] + 2 * SOH_STD), abs=1e-4)
    assert [label for label, _ in dashboard.legend("soh")] == ["time", "model", "estimate"]
    assert dict(dashboard.legend("soh"))["estimate"] == (
        f"{t['soh_estimated']:.2f} ± {SOH_STD:.2f} %"
    )

    # the read-out in the pack card
    assert page.is_visible("#estimate")
    assert dashboard.text("#estimate-soc") == f"{t['soc']:.1f} ± {SOC_STD:.1f} %"
    assert dashboard.text("#estimate-soh") == f"{t['soh_estimated']:.2f} ± {SOH_STD:.2f} %"
    assert dashboard.text("#estimate-soh-model") == f"model {t['soh']:.2f} %"
    assert dashboard.text("#estimate-resistance") == f"×{RESISTANCE_EST:.3f}"
    assert dashboard.text("#estimate-resistance-model") == f"model ×{t['resistance_factor']:.3f}"
    known = [r for r in residual if r is not None]
    rms = math.sqrt(sum(r * r for r in known) / len(known))
    assert dashboard.text("#estimate-residual") == f"rms {rms:.2f} V"
    assert dashboard.text("#estimate-residual-last") == "last +0.30 V"
    assert dashboard.text("#estimate-rejected") == f"{REJECTED} in the last step"
    # one rejection a step: history (the first step) and the feed's second
    assert dashboard.text("#estimate-rejected-shown") == "2 in the charts' range"

    # the CSV carries the estimator's columns
    rows = dashboard.csv()
    assert rows[0] == BASE_CSV + ESTIMATE_CSV
    last = dict(zip(rows[0], rows[-1], strict=True))
    assert float(last["SOC σ [%]"]) == pytest.approx(SOC_STD)
    assert float(last["measured voltage [V]"]) == pytest.approx(t["measured_voltage"], abs=1e-3)
    assert float(last["voltage residual [V]"]) == pytest.approx(0.3)
    assert float(last["SOH estimated σ [%]"]) == pytest.approx(SOH_STD)
    assert any(r[rows[0].index("measured voltage [V]")] == "" for r in rows[1:])
    assert "NaN" not in page.inner_text("body")
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT_DIR / "dashboard-estimate-1280.png"), full_page=True)
    # on a phone nothing scrolls sideways, the voltage chart included
    page.set_viewport_size({"width": 390, "height": 844})
    dashboard.wait_for(
        "document.querySelector('#chart-voltage canvas').getBoundingClientRect().right <= 390"
    )
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    page.screenshot(path=str(OUTPUT_DIR / "dashboard-estimate-390.png"), full_page=True)
    assert dashboard.errors == []


def test_a_vehicle_without_estimates_looks_as_before(service: str, open_page: Any) -> None:
    """Switching from an estimated vehicle to one without: band, voltage chart and read-out
    go; the charts are made again as they were."""
    plain = drive(service, "ev-plain")
    drive(service, "ev-est-2")
    dashboard = open_page(f"{service}/?vehicle=ev-est-2", estimating("ev-est-2"))
    dashboard.wait_for(LAYOUT_IS, ["soc", "band"])
    dashboard.wait_for("!document.querySelector('#voltage-block').hidden")
    dashboard.page.select_option("#vehicle-select", "ev-plain")
    dashboard.wait_for(LAYOUT_IS, ["soc", "line"])
    dashboard.wait_for(
        "Math.abs(parseFloat(document.querySelector('#gauge-soc').dataset.value) - arg) < 0.051",
        plain["telemetry"]["soc"],
    )
    assert_no_estimate(dashboard)
    later = drive(service, "ev-plain", plain)
    dashboard.wait_for(
        "document.querySelector('#footer-rev').textContent.endsWith(arg)", f"rev {later['rev']}"
    )
    assert_no_estimate(dashboard)
    assert dashboard.errors == []


def test_estimator_fields_null_change_nothing(service: str, open_page: Any) -> None:
    """A service with the estimator's fields but null (no estimator ran) and a live trace
    without its columns: the page is the page without an estimator."""
    nulls = dict.fromkeys(
        [
            "soc_std",
            "measured_voltage",
            "voltage_residual",
            "soh_estimated",
            "soh_estimated_std",
            "resistance_factor_estimated",
            "measurements_rejected",
        ]
    )

    def null_fields(message: dict[str, Any]) -> None:
        if isinstance(message.get("telemetry"), dict):
            message["telemetry"].update(nulls)

    first = drive(service, "ev-null")
    feed = Feed("ev-null", null_fields)
    dashboard = open_page(f"{service}/?vehicle=ev-null", feed.route)
    feed.wait_subscribed(dashboard.page)
    second = drive(service, "ev-null", first)
    dashboard.wait_for(
        "document.querySelector('#footer-rev').textContent.endsWith(arg)", f"rev {second['rev']}"
    )
    dashboard.wait_for("Number(document.querySelector('#chart-soc').dataset.points) > 10")
    assert_no_estimate(dashboard)
    assert dashboard.errors == []


# ---------------------------------------------------------------------------- end to end


def current_drive(
    url: str, vehicle_id: str, reply: dict[str, Any] | None, measured: bool
) -> dict[str, Any]:
    """60 s of a pack current between 20 and 120 A, as a replayed log drives the twin; with
    `measured`, every other sample carries a terminal voltage 0.2 V above the twin's own
    (asked for first without storing), so the filter has measurements it accepts."""
    state = (reply or {}).get("state")
    samples: list[dict[str, Any]] = [
        {"dt_s": 1.0, "current_a": 70.0 + 50 * math.sin(k / 6), "ambient_c": 25.0}
        for k in range(60)
    ]
    if measured:
        dry = post_step(url, vehicle_id, samples, state, {"store": False, "trace": True})
        for k, (sample, row) in enumerate(zip(samples, dry["trace"], strict=True)):
            if k % 2 == 0 or k == len(samples) - 1:
                sample["measured_voltage_v"] = round(row["voltage"] + 0.2, 3)
    return post_step(url, vehicle_id, samples, state)


def signed(v: float, digits: int, unit: str) -> str:
    return f"+{v:.{digits}f} {unit}" if v > 0 else f"{v:.{digits}f} {unit}"


def test_end_to_end_measured_voltages_show_the_estimate(service: str, open_page: Any) -> None:
    """Real /step samples with measured voltages: the page shows the service's estimate (the
    numbers of its telemetry); a vehicle driven without measurements shows none of it."""
    first = current_drive(service, "ev-meas", None, measured=True)
    assert first["telemetry"].get("soc_std") is not None, "the service has no state estimator yet"
    plain = current_drive(service, "ev-unmeasured", None, measured=False)
    dashboard = open_page(f"{service}/?vehicle=ev-meas")
    dashboard.wait_for(LAYOUT_IS, ["soc", "band"])
    dashboard.wait_for("document.querySelector('#status-connection').dataset.state === 'live'")
    second = current_drive(service, "ev-meas", first, measured=True)
    t = second["telemetry"]
    dashboard.wait_for(
        "document.querySelector('#footer-rev').textContent.endsWith(arg)", f"rev {second['rev']}"
    )
    page = dashboard.page
    assert t["measured_voltage"] is not None and t["voltage_residual"] is not None
    assert t["soh_estimated"] is not None

    soc = dashboard.chart("soc")
    assert soc is not None and soc["labels"] == ["time", "SOC −2σ", "SOC +2σ", "SOC"]
    _, lo, hi, values = soc["data"]
    assert values[-1] == pytest.approx(t["soc"], abs=1e-3)
    assert lo[-1] == pytest.approx(max(0.0, t["soc"] - 2 * t["soc_std"]), abs=2e-3)
    assert hi[-1] == pytest.approx(min(100.0, t["soc"] + 2 * t["soc_std"]), abs=2e-3)
    assert all(a <= v <= b for a, v, b in zip(lo, values, hi, strict=True) if a is not None)
    dashboard.wait_for(
        "document.querySelector('#estimate-soc').textContent === arg",
        f"{t['soc']:.1f} ± {t['soc_std']:.1f} %",
    )
    assert dict(dashboard.legend("soc"))["SOC"] == f"{t['soc']:.1f} ± {t['soc_std']:.1f} %"

    assert page.is_visible("#voltage-block")
    voltage = dashboard.chart("voltage")
    assert voltage is not None
    _, model, measured, residual = voltage["data"]
    assert model[-1] == pytest.approx(t["voltage"], abs=1e-3)
    assert measured[-1] == pytest.approx(t["measured_voltage"], abs=1e-3)
    assert residual[-1] == pytest.approx(t["voltage_residual"], abs=1e-3)
    assert dict(dashboard.legend("voltage"))["residual"] == signed(t["voltage_residual"], 2, "V")

    soh = dashboard.chart("soh")
    assert soh is not None and soh["labels"][-2:] == ["model", "estimate"]
    assert soh["data"][-1][-1] == pytest.approx(t["soh_estimated"], abs=1e-4)
    assert soh["data"][-2][-1] == pytest.approx(t["soh"], abs=1e-4)
    std = t["soh_estimated_std"]
    soh_text = f"{t['soh_estimated']:.2f}" + (f" ± {std:.2f} %" if std is not None else " %")
    assert dashboard.text("#estimate-soh") == soh_text
    assert dashboard.text("#estimate-soh-model") == f"model {t['soh']:.2f} %"
    r = t["resistance_factor_estimated"]
    assert dashboard.text("#estimate-resistance") == (f"×{r:.3f}" if r is not None else "—")
    assert dashboard.text("#estimate-rejected") == f"{t['measurements_rejected']} in the last step"
    assert dashboard.csv()[0] == BASE_CSV + ESTIMATE_CSV
    assert "NaN" not in page.inner_text("body")

    # the vehicle without measurements: none of it
    page.select_option("#vehicle-select", "ev-unmeasured")
    dashboard.wait_for(LAYOUT_IS, ["soc", "line"])
    dashboard.wait_for(
        "document.querySelector('#footer-rev').textContent.startsWith('ev-unmeasured')"
    )
    dashboard.wait_for(
        "Math.abs(parseFloat(document.querySelector('#gauge-soc').dataset.value) - arg) < 0.051",
        plain["telemetry"]["soc"],
    )
    assert_no_estimate(dashboard)
    assert dashboard.errors == []
