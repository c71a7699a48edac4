"""The dashboard's history views (1 day, 7 days, 30 days) in headless Chromium, against a
service on an SQLite store that holds a month of history written before the service started.

A history view draws buckets of GET /vehicles/{id}/history?since=&every= (x: the bucket's
start, wall-clock time) instead of the live points; the live ranges (10 min, 1 h, all) stay as
they were. The month is one record every 10 minutes, made in-process through the store
(`Live.commit`, its timestamps in the past); the service then reads it from the same file.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import re
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from support.browser import WAIT_MS, DashboardPage, chromium
from support.live import post_step
from support.processes import ServiceProcess

from twin_service.live import create_live
from twin_service.settings import Settings
from twin_service.step.service import run_step_body

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO_ROOT / "test-output" / "dashboard"
DESKTOP = {"width": 1280, "height": 800}
DAY_S = 86400
MONTH_S = 30 * DAY_S
RECORD_EVERY_S = 600
MONTH_ID = "ev-month"  # a record every 10 min from 30 days - 1 h ago until 10 min ago
OLD_ID = "ev-old"  # a day of records, 4 to 3 days ago
COMMIT_CHUNK = 500  # commits in flight together: the store writes them in few transactions
HISTORY_CHARTS = ("soc", "power", "temperature", "soh")
SOC_GAUGE_IS = (
    "Math.abs(parseFloat(document.querySelector('#gauge-soc').dataset.value) - arg) < 0.051"
)
LAYOUT_IS = "document.querySelector('#chart-soc').dataset.layout === arg"
POINTS_ARE = "Number(document.querySelector('#chart-soc').dataset.points) === arg"
OVERLAY = "#chart-soc .chart-empty"


@dataclass
class Seeded:
    url: str
    times: list[float]  # MONTH_ID's record times (epoch s)
    state: dict[str, Any]  # MONTH_ID's last state (rev set), for the next step
    telemetry: dict[str, Any]  # ... and its telemetry


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def records(
    vehicle_id: str, times: list[float], state: dict[str, Any], telemetry: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(state, telemetry) of a step at each time: SOC and temperature follow the day, power
    swings between discharge and regen every two hours; simulated time runs 10 min a step."""
    out = []
    for i, ts in enumerate(times):
        elapsed = (i + 1) * RECORD_EVERY_S
        soc = 60 + 25 * math.sin(2 * math.pi * ts / DAY_S)
        temperature = 24 + 8 * math.sin(2 * math.pi * ts / DAY_S + 1)
        power = 45 * math.sin(2 * math.pi * ts / 7200)
        t = {
            **telemetry,
            "vehicle_id": vehicle_id,
            "timestamp": iso(ts),
            "elapsed_seconds": elapsed,
            "simulated_days": elapsed / DAY_S,
            "simulated_years": elapsed / (365 * DAY_S),
            "soc": soc,
            "temperature": temperature,
            "power_kw": power,
            "is_regen": power < 0,
        }
        s = {**state, "elapsed_s": elapsed, "aged_s": elapsed, "soc": soc / 100}
        out.append((s | {"temperature_c": temperature}, t))
    return out


async def seed(db: Path, now_s: float) -> Seeded:
    """Write OLD_ID's day, then MONTH_ID's month, into the SQLite store at `db`."""
    body = {"vehicle_id": MONTH_ID, "state": None, "samples": [{"dt_s": 60, "power_kw": 30}]}
    step = run_step_body(orjson.dumps(body), "sv1ev3", 10)
    first = now_s - MONTH_S + 3600
    month = [first + i * RECORD_EVERY_S for i in range(int((now_s - 600 - first) // 600) + 1)]
    old = [now_s - 4 * DAY_S + i * RECORD_EVERY_S for i in range(DAY_S // RECORD_EVERY_S)]
    live = create_live(Settings(store_url=f"sqlite:///{db}"))
    await live.start()
    try:
        for vehicle_id, times in ((OLD_ID, old), (MONTH_ID, month)):
            rows = records(vehicle_id, times, step.state, step.telemetry)
            for i in range(0, len(rows), COMMIT_CHUNK):
                chunk = rows[i : i + COMMIT_CHUNK]
                await asyncio.gather(*(live.commit(vehicle_id, s, t) for s, t in chunk))
    finally:
        await live.close()
    state, telemetry = rows[-1]
    return Seeded("", month, state, telemetry)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("history")
    db = folder / "twin.db"
    started = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:  # its own event loop, away from Playwright's
        data = pool.submit(asyncio.run, seed(db, time.time())).result()
    print(f"\nseeded {len(data.times)} records of a month in {time.perf_counter() - started:.1f} s")
    service = ServiceProcess(env={"TWIN_STORE_URL": f"sqlite:///{db}"}, log_dir=folder)
    data.url = service.start()
    yield data
    service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[DashboardPage] = []

    def open_(url: str, before_load: Any = None, options: Any = None) -> DashboardPage:
        pages.append(DashboardPage(browser, url, DESKTOP, before_load, options))
        return pages[-1]

    yield open_
    for page in pages:
        page.close()


def history_requests(urls: list[str], vehicle_id: str) -> list[dict[str, str]]:
    """The query of every GET /vehicles/{vehicle_id}/history the page made."""
    path = f"/vehicles/{vehicle_id}/history"
    return [
        {k: v[0] for k, v in parse_qs(urlsplit(u).query).items()}
        for u in urls
        if urlsplit(u).path == path
    ]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# Click a range button; resolves, with the time it took, once the charts drew its buckets.
CLICK_UNTIL_DRAWN = """async (span) => {
    const soc = document.querySelector('#chart-soc');
    const t0 = performance.now();
    document.querySelector(`#range-buttons button[data-history='${span}']`).click();
    await new Promise((resolve) => {
        const check = () =>
            soc.dataset.layout === 'history' && Number(soc.dataset.points) > 0
                ? resolve()
                : requestAnimationFrame(check);
        check();
    });
    const drawn = performance.now() - t0;
    await new Promise(requestAnimationFrame); // the frame that shows them
    return { drawn, painted: performance.now() - t0 };
}"""

# Redraw the four history charts from their data (uPlot draws in a microtask after setData):
# the time of each full redraw, and the frame intervals with one redraw a frame.
REDRAW_TIMES = """async (names) => {
    const charts = names.map((n) => window.twinDashboard.chart(n));
    let draws = 0;
    for (const u of charts) u.hooks.draw = [...(u.hooks.draw || []), () => draws++];
    const redraws = [];
    let inTime = true; // each chart drew before the time was taken
    for (let i = 0; i < 20; i++) {
        const before = draws;
        const t0 = performance.now();
        for (const u of charts) u.setData(u.data);
        await Promise.resolve();
        redraws.push(performance.now() - t0);
        inTime = inTime && draws - before === charts.length;
    }
    const frameTimes = async (redraw) => {
        const frames = [];
        let last = performance.now();
        for (let i = 0; i < 30; i++) {
            if (redraw) for (const u of charts) u.setData(u.data);
            await new Promise(requestAnimationFrame);
            const now = performance.now();
            frames.push(now - last);
            last = now;
        }
        return frames;
    };
    const idle = await frameTimes(false);
    const frames = await frameTimes(true);
    return { redraws, inTime, idle, frames, draws };
}"""


def test_thirty_days_draw_hourly_buckets_and_all_goes_back_to_live(
    seeded: Seeded, open_page: Any
) -> None:
    urls: list[str] = []
    dashboard = open_page(
        f"{seeded.url}/?vehicle={MONTH_ID}",
        before_load=lambda page: page.on("request", lambda r: urls.append(r.url)),
        options={"historyRefreshMs": 1000},
    )
    page = dashboard.page
    dashboard.wait_for(SOC_GAUGE_IS, seeded.telemetry["soc"])
    dashboard.wait_for(POINTS_ARE, 600)  # live: the newest 600 records (?limit=600)
    assert dashboard.chart("soc")["time"] is False

    timing = page.evaluate(CLICK_UNTIL_DRAWN, MONTH_S)
    assert page.get_attribute("#range-buttons button[data-history='2592000']", "aria-pressed") == (
        "true"
    )
    assert page.get_attribute("#range-buttons button[data-range='all']", "aria-pressed") == "false"
    queries = [q for q in history_requests(urls, MONTH_ID) if "every" in q]
    assert queries and {q["every"] for q in queries} == {"3600"}, queries
    query = queries[0]
    since = epoch(query["since"])
    assert since % 3600 == 0 and query["limit"] == "1000" and "until" not in query
    assert time.time() - MONTH_S - 3600 <= since <= time.time() - MONTH_S
    # the month's records were never asked for: raw reads are the live view's ?limit=600
    raw = [q for q in history_requests(urls, MONTH_ID) if "every" not in q]
    assert raw and all("since" not in q and int(q["limit"]) <= 600 for q in raw), raw

    chart = dashboard.chart("soc")
    xs = chart["data"][0]
    count = dashboard.points()
    assert 715 <= count <= 721 and len(xs) == count  # no hour without records: no gap rows
    assert chart["time"] is True and chart["labels"] == ["time", "SOC min", "SOC max", "SOC"]
    assert all(x % 3600 == 0 for x in xs) and xs == sorted(xs)
    assert xs[0] <= seeded.times[0] < xs[0] + 3600 and xs[-1] <= seeded.times[-1] < xs[-1] + 3600
    assert xs[-1] - xs[0] >= MONTH_S - 2 * 3600
    for name in HISTORY_CHARTS:
        assert page.get_attribute(f"#chart-{name}", "data-layout") == "history"
        assert dashboard.points(name) == count
        assert dashboard.chart(name)["data"][0] == xs
    assert page.is_visible("#chart-temperature") and page.is_hidden("#voltage-block")
    assert page.inner_text("#drive-hint").startswith("wall-clock time · 1 h buckets")
    # min <= mean <= max in every bucket, and the band is drawn (power swings through 0 kW)
    for name in ("soc", "power", "temperature"):
        _, lo, hi, mean = dashboard.chart(name)["data"]
        assert all(a <= m <= b for a, m, b in zip(lo, mean, hi, strict=True)), name
        assert sum(b - a for a, b in zip(lo, hi, strict=True)) > 0, name
    _, power_lo, power_hi, _ = dashboard.chart("power")["data"]
    assert min(power_lo) < 0 < max(power_hi)
    # the means are the service's buckets
    history_url = f"{seeded.url}/vehicles/{MONTH_ID}/history"
    started = time.perf_counter()
    served = httpx.get(
        history_url, params={"since": query["since"], "every": 3600, "limit": 1000}, timeout=10
    ).json()
    bucket_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    month = httpx.get(history_url, params={"since": query["since"], "limit": 100_000}, timeout=30)
    raw_ms = (time.perf_counter() - started) * 1000
    assert [epoch(b["timestamp"]) for b in served] == xs
    assert chart["data"][3] == pytest.approx([b["soc"] for b in served])

    frames = page.evaluate(REDRAW_TIMES, list(HISTORY_CHARTS))
    assert frames["inTime"] and frames["draws"] >= 50 * len(HISTORY_CHARTS)  # every setData drew
    median = statistics.median
    print(
        f"\n30-day view, {count} buckets x 4 charts: click -> drawn {timing['drawn']:.1f} ms "
        f"(painted {timing['painted']:.1f} ms, fetch included); redraw of the 4 charts: median "
        f"{median(frames['redraws']):.2f} ms, max {max(frames['redraws']):.2f} ms; frame "
        f"interval idle {median(frames['idle']):.1f} ms, with a redraw every frame "
        f"{median(frames['frames']):.1f} ms (max {max(frames['frames']):.1f} ms)\n"
        f"GET history every=3600 (month): {bucket_ms:.1f} ms, {len(served)} buckets; the month's "
        f"raw records instead: {raw_ms:.1f} ms, {len(month.json())} records, "
        f"{len(month.content) / 1e6:.1f} MB"
    )
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT_DIR / "dashboard-history-30d.png"))

    # a step meanwhile: the header follows it, the history series stay buckets
    reply = post_step(seeded.url, MONTH_ID, [{"dt_s": 60.0, "power_kw": 35.0}], seeded.state)
    assert reply["rev"] == seeded.state["rev"] + 1
    dashboard.wait_for(SOC_GAUGE_IS, reply["telemetry"]["soc"])
    dashboard.wait_for(
        "document.querySelector('#footer-rev').textContent.endsWith(arg)", f"rev {reply['rev']}"
    )
    after = dashboard.chart("soc")
    assert page.get_attribute("#chart-soc", "data-layout") == "history"
    assert after["time"] is True and all(x % 3600 == 0 for x in after["data"][0])
    assert after["data"][0][: len(xs) - 1] == xs[:-1]
    # ... and the next refresh counts it in its hour's bucket
    hour = epoch(reply["telemetry"]["timestamp"]) // 3600 * 3600
    in_hour = sum(1 for t in seeded.times if hour <= t < hour + 3600) + 1
    dashboard.wait_for(
        """(() => {
            const last = window.twinDashboard.csv().trim().split('\\n').pop().split(',');
            return Date.parse(last[0]) / 1000 === arg[0] && Number(last[1]) === arg[1];
        })()""",
        [hour, in_hour],
    )

    # the CSV of a history view: the buckets shown
    with page.expect_download(timeout=WAIT_MS) as info:
        page.click("#csv-export")
    assert info.value.suggested_filename == f"{MONTH_ID}-history-30d.csv"
    rows = list(csv.reader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert rows[0][:5] == ["bucket start (UTC)", "records", "SOC [%]", "SOC min [%]", "SOC max [%]"]
    shown = dashboard.chart("soc")["data"]
    assert [epoch(r[0]) for r in rows[1:]] == shown[0]
    assert [float(r[2]) for r in rows[1:]] == pytest.approx(shown[3], abs=1e-4)
    assert sum(int(r[1]) for r in rows[1:]) == len(seeded.times) + 1

    # "all": the live charts again, with the step that came during the history view
    page.click("#range-buttons button[data-range='all']")
    dashboard.wait_for(LAYOUT_IS, "line")
    dashboard.wait_for(POINTS_ARE, 601)
    live = dashboard.chart("soc")
    assert live["time"] is False and live["max"] == pytest.approx(
        reply["telemetry"]["elapsed_seconds"]
    )
    assert live["labels"] == ["time", "SOC"]
    assert page.is_hidden("#temperature-block")
    assert page.inner_text("#drive-hint") == "simulated time · drag to zoom, double-click resets"
    assert page.evaluate("localStorage.getItem('twin.rangeS')") == "all"

    # the choice is kept: a reload opens the 30-day view again
    page.click("#range-buttons button[data-history='2592000']")
    assert page.evaluate("localStorage.getItem('twin.rangeS')") == f"history:{MONTH_S}"
    page.reload()
    dashboard.wait_for(LAYOUT_IS, "history")
    dashboard.wait_for("Number(document.querySelector('#chart-soc').dataset.points) > 700")
    assert page.get_attribute("#range-buttons button[data-history='2592000']", "aria-pressed") == (
        "true"
    )
    assert dashboard.errors == []


def test_empty_failing_and_another_vehicle_in_history_views(seeded: Seeded, open_page: Any) -> None:
    urls: list[str] = []
    dashboard = open_page(
        f"{seeded.url}/?vehicle={OLD_ID}",
        before_load=lambda page: page.on("request", lambda r: urls.append(r.url)),
        options={"historyRefreshMs": 300},
    )
    page = dashboard.page
    dashboard.wait_for(POINTS_ARE, DAY_S // RECORD_EVERY_S)

    # nothing in the last day: said so over the charts, the rest of the page as it was
    page.click("#range-buttons button[data-history='86400']")
    page.wait_for_selector(f"{OVERLAY}:text-is('no history in this range')", timeout=WAIT_MS)
    assert dashboard.points() == 0 and page.is_hidden("#notice")
    assert page.get_attribute("#gauge-soc", "data-value")
    day = history_requests(urls, OLD_ID)[-1]
    assert day["every"] == "120" and epoch(day["since"]) % 120 == 0

    # 7 days: 15-minute buckets (one or two records each) of that day
    page.click("#range-buttons button[data-history='604800']")
    dashboard.wait_for("Number(document.querySelector('#chart-soc').dataset.points) >= 96")
    week = history_requests(urls, OLD_ID)[-1]
    assert week["every"] == "900" and epoch(week["since"]) % 900 == 0
    assert page.locator(OVERLAY).count() == 0
    buckets = dashboard.points()

    # the service fails: a notice, the buckets stay; it answers again: the notice goes
    failing = re.compile(r".*/history\?.*every=.*")
    page.route(failing, lambda route: route.fulfill(status=503, body='{"detail": "down"}'))
    page.wait_for_selector("#notice:not([hidden])", timeout=WAIT_MS)
    assert page.inner_text("#notice").startswith("history unavailable (HTTP 503)")
    assert dashboard.points() == buckets and page.locator(OVERLAY).count() == 0
    # a view without buckets yet says it over the charts
    page.click("#range-buttons button[data-history='2592000']")
    page.wait_for_selector(f"{OVERLAY}:text-matches('^history unavailable')", timeout=WAIT_MS)
    page.unroute(failing)
    page.wait_for_selector("#notice", state="hidden", timeout=WAIT_MS)
    dashboard.wait_for("Number(document.querySelector('#chart-soc').dataset.points) > 0")
    assert 24 <= dashboard.points() <= 25  # that day in hourly buckets
    assert page.locator(OVERLAY).count() == 0

    # another vehicle: its buckets, not the last one's
    page.select_option("#vehicle-select", MONTH_ID)
    dashboard.wait_for("Number(document.querySelector('#chart-soc').dataset.points) > 700")
    assert history_requests(urls, MONTH_ID)[-1]["every"] == "3600"
    assert all(x % 3600 == 0 for x in dashboard.chart("soc")["data"][0])
    unexpected = [e for e in dashboard.errors if "status of 503" not in e]
    assert unexpected == []
