"""The fleet page (/fleet): served like the dashboard, and in headless Chromium (Playwright)
against a real service process holding 1,000 vehicles of differing SOH.

The browser tests need Debian's ``chromium`` (or CHROMIUM_PATH) and the ``playwright``
package (no browser is downloaded; skipped locally without them, a failure in CI). Pages run
offline: requests to anything but the service are aborted. The frame-time tests print the
measured frame intervals (p50 / p95 / max) for docs/fleet-dashboard.md.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from support.browser import WAIT_MS, Offline, chromium
from support.processes import ServiceProcess

from twin_service.app import create_app
from twin_service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = REPO_ROOT / "clients" / "web"
OUTPUT_DIR = REPO_ROOT / "test-output" / "fleet"
FLEET = 1000  # the memory store's max_vehicles: none is evicted
PRESETS = ("Model3_2024", "sv1ev3")
VIEWPORT = {"width": 1400, "height": 1000}
SEED_CONCURRENCY = 16
# Frame intervals (requestAnimationFrame) while live updates stream: the 95th percentile must
# stay below this. Intervals come in whole vsyncs (16.7, 33.3, 50.0 ms): the bound lets 95 % of
# frames be at most two vsyncs late, which a loaded 2-core machine still meets; a page that
# rebuilds its table per message measured 150-680 ms here (docs/fleet-dashboard.md).
FRAME_P95_LIMIT_MS = 55.0
DEFAULT_POLICIES = ["as usual", "80 % limit", "no DC", "OTA derate"]


def vehicle_id(i: int) -> str:
    return f"fleet-{i:04d}"


def seed_soh(i: int) -> float:
    """0.72 .. 1.00, scattered over the ids (so sorting by id does not sort by SOH)."""
    return round(0.72 + 0.28 * ((i * 37) % FLEET) / (FLEET - 1), 4)


def drive(seconds: int = 10, power_kw: float = 25.0, speed_m_s: float = 15.0) -> dict[str, Any]:
    """`seconds` one-second samples as columns."""
    return {
        "dt_s": [1.0] * seconds,
        "power_kw": [power_kw] * seconds,
        "wheel_speed_m_s": [speed_m_s] * seconds,
    }


@dataclass
class Fleet:
    """The service and what the test posted: each vehicle's preset, latest state and
    telemetry (updated by every step a test posts)."""

    url: str
    presets: dict[str, str] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    telemetry: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return sorted(self.presets)

    def _body(self, vid: str, samples: dict[str, Any] | None) -> dict[str, Any]:
        """A step continuing the vehicle's twin (a new one with its seed SOH when none)."""
        body: dict[str, Any] = {
            "vehicle_id": vid,
            "vehicle": self.presets[vid],
            "samples": samples or drive(),
        }
        state = self.states.get(vid)
        if state is None:
            body["state"] = {"soh": seed_soh(int(vid.rsplit("-", 1)[1]))}
            body["options"] = {"replace": True}
        else:
            body["state"] = state
        return body

    def _took(self, vid: str, response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        reply = response.json()
        self.states[vid] = reply["state"]
        self.telemetry[vid] = reply["telemetry"]
        return reply

    async def step(
        self, client: httpx.AsyncClient, vid: str, samples: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._took(vid, await client.post("/step", json=self._body(vid, samples)))

    def step_sync(self, vid: str, samples: dict[str, Any]) -> dict[str, Any]:
        """The same from a thread with a running event loop (Playwright's)."""
        url = f"{self.url}/step"
        return self._took(vid, httpx.post(url, json=self._body(vid, samples), timeout=30))


async def _seed(fleet: Fleet) -> None:
    limits = httpx.Limits(max_connections=SEED_CONCURRENCY)
    async with httpx.AsyncClient(base_url=fleet.url, timeout=60, limits=limits) as client:
        queue = list(fleet.ids())

        async def worker() -> None:
            while queue:
                await fleet.step(client, queue.pop())

        await asyncio.gather(*(worker() for _ in range(SEED_CONCURRENCY)))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A service with FLEET vehicles, alternately of each preset, SOH 72..100 %."""
    service = ServiceProcess(log_dir=tmp_path_factory.mktemp("fleet"))
    service.start()
    try:
        fleet = Fleet(service.url, {vehicle_id(i): PRESETS[i % 2] for i in range(FLEET)})
        started = time.monotonic()
        asyncio.run(_seed(fleet))
        print(f"\nseeded {FLEET} vehicles in {time.monotonic() - started:.1f} s")
        yield fleet
    finally:
        service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


class FleetPage:
    """/fleet open offline in its own context, console errors and uncaught exceptions kept."""

    def __init__(
        self,
        browser: Any,
        url: str,
        options: dict[str, Any] | None = None,
        path: str = "/fleet",
    ) -> None:
        self.offline = Offline(browser, url, viewport=VIEWPORT, color_scheme="dark")
        self.page = self.offline.page
        self.errors = self.offline.errors
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        if options:
            self.page.add_init_script(f"window.TWIN_FLEET_OPTIONS = {options!r};")
        self.page.goto(f"{url}{path}")

    def wait_for(self, expression: str, arg: Any = None, timeout: float = WAIT_MS) -> None:
        self.page.wait_for_function(f"(arg) => {expression}", arg=arg, timeout=timeout)

    def wait_loaded(self, total: int = FLEET) -> None:
        self.wait_for("document.querySelector('#fleet-count').dataset.total === String(arg)", total)
        self.wait_for(
            "document.querySelector('#fleet-connection').dataset.state === 'live'"
            " && window.twinFleet.forecast().lastAt !== null",
            timeout=30_000,
        )

    def matching(self) -> int:
        return int(self.page.get_attribute("#fleet-count", "data-matching") or -1)

    def column(self, name: str) -> list[str]:
        """The texts of column `name` in the rows shown."""
        return self.page.eval_on_selector_all(
            f"#fleet-rows tr:not([hidden]) td[data-col='{name}']",
            "els => els.map(e => e.textContent)",
        )

    def cell(self, vid: str, name: str) -> str:
        return (
            self.page.text_content(f"#fleet-rows tr[data-vehicle='{vid}'] td[data-col='{name}']")
            or ""
        )

    def filter(self, text: str = "", soh_below: str = "") -> None:
        self.page.fill("#fleet-filter", text)
        self.page.fill("#fleet-soh-below", soh_below)

    def sort(self, key: str) -> None:
        self.page.click(f"#fleet-table th[data-key='{key}'] button")

    def close(self) -> None:
        self.offline.close()


@pytest.fixture
def open_fleet(browser: Any) -> Iterator[Any]:
    pages: list[FleetPage] = []

    def open_(url: str, options: dict[str, Any] | None = None) -> FleetPage:
        page = FleetPage(browser, url, options)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


# ---------------------------------------------------------------------------- static


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def test_fleet_route_serves_the_page_uncached(client: TestClient) -> None:
    response = client.get("/fleet")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    html = response.text
    for element_id in (
        "fleet-table",
        "fleet-rows",
        "fleet-count",
        "fleet-filter",
        "fleet-soh-below",
        "fleet-page-size",
        "fleet-prev",
        "fleet-next",
        "fleet-page-info",
        "fleet-histogram",
        "hist-mean",
        "hist-p10",
        "hist-p90",
        "policy-rows",
        "policy-add",
        "policy-compare",
        "warranty-years",
        "warranty-soh",
        "policy-results",
        "policy-bars",
        "policy-error",
    ):
        assert f'id="{element_id}"' in html, element_id
    assert [int(v) for v in re.findall(r'<option value="(\d+)"', html)] == [50, 100, 250]
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref.startswith("/"), ref  # the service's own files only
        path = ref.split("?")[0]
        if path.startswith("/static/"):
            assert client.get(ref).status_code == 200, ref


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/static/fleet.js", "text/javascript"), ("/static/fleet.css", "text/css")],
)
def test_fleet_assets(client: TestClient, path: str, media_type: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["cache-control"] == "no-cache"
    assert response.content


def test_fleet_route_is_outside_the_api_schema_and_open_with_a_read_key() -> None:
    with TestClient(create_app(Settings(read_key="secret"))) as client:
        assert "/fleet" not in client.get("/openapi.json").json()["paths"]
        assert client.get("/fleet").status_code == 200
        assert client.get("/static/fleet.js").status_code == 200
        assert client.get("/vehicles").status_code == 401


URL = re.compile(r"https?://[^\s\"'`)]+")


def test_fleet_page_loads_nothing_from_elsewhere() -> None:
    for name in ("fleet.html", "fleet.js", "fleet.css"):
        assert URL.findall((WEB_DIR / name).read_text()) == [], name
    script = (WEB_DIR / "fleet.js").read_text()
    assert "X-Next-Cursor" in script and '"/forecast/fleet"' in script and '"/ws/fleet"' in script
    assert 'href="/fleet"' in (WEB_DIR / "index.html").read_text()  # the link from the dashboard


# ---------------------------------------------------------------------------- browser


def soh_text(t: dict[str, Any]) -> str:
    return f"{t['soh']:.2f}"


@pytest.mark.browser
def test_table_sorts_filters_pages_and_counts_the_histogram(fleet: Fleet, open_fleet: Any) -> None:
    fp = open_fleet(fleet.url)
    fp.wait_loaded()
    page = fp.page
    assert page.inner_text("#fleet-count") == f"{FLEET} vehicles, {FLEET} shown"
    assert page.inner_text("#fleet-page-info") == "page 1 of 20 · rows 1–50"
    ids = fleet.ids()
    assert fp.column("id") == ids[:50]  # by id, the default

    # sort by SOH: ascending puts the lowest first, a second click the highest
    sohs = sorted(t["soh"] for t in fleet.telemetry.values())
    fp.sort("soh")
    fp.wait_for(
        "document.querySelector('#fleet-table th[data-key=soh]').getAttribute('aria-sort')"
        " === 'ascending'"
    )
    column = [float(v) for v in fp.column("soh")]
    assert column[0] == pytest.approx(sohs[0], abs=0.006)
    assert column == sorted(column) and len(column) == 50
    fp.sort("soh")
    fp.wait_for(
        "document.querySelector('#fleet-table th[data-key=soh]').getAttribute('aria-sort')"
        " === 'descending'"
    )
    assert float(fp.column("soh")[0]) == pytest.approx(sohs[-1], abs=0.006)

    # pagination: page 2 holds the next 50 of the same order
    fp.sort("id")
    fp.wait_for("document.querySelector('#fleet-rows td[data-col=id]').textContent === arg", ids[0])
    page.click("#fleet-next")
    fp.wait_for("document.querySelector('#fleet-page-info').dataset.page === '2'")
    assert fp.column("id") == ids[50:100]
    assert page.inner_text("#fleet-page-info") == "page 2 of 20 · rows 51–100"
    page.select_option("#fleet-page-size", "250")
    fp.wait_for("document.querySelector('#fleet-page-info').dataset.pages === '4'")
    assert fp.column("id") == ids[:250]  # row 51 is on the first page of 250
    page.click("#fleet-last")
    fp.wait_for("document.querySelector('#fleet-page-info').dataset.page === '4'")
    assert fp.column("id") == ids[750:]
    page.select_option("#fleet-page-size", "50")

    # the histogram counts every vehicle; its mean and percentiles are the fleet's
    fp.wait_for("Number(document.querySelector('#fleet-histogram').dataset.count) === arg", FLEET)
    hist = page.evaluate("window.twinFleet.histogram()")
    assert hist["count"] == sum(hist["counts"]) == FLEET
    assert hist["mean"] == pytest.approx(statistics.fmean(sohs), abs=1e-6)
    assert page.inner_text("#hist-mean") == f"{statistics.fmean(sohs):.2f} %"
    assert hist["p10"] <= hist["p90"]
    page.wait_for_selector("#fleet-histogram .uplot canvas", state="attached", timeout=WAIT_MS)

    # text filter on id and preset; SOH-below filter; the histogram follows the filter
    fp.filter("fleet-09")
    fp.wait_for("document.querySelector('#fleet-count').dataset.matching === '100'")
    assert page.inner_text("#fleet-count") == f"{FLEET} vehicles, 100 shown"
    assert all(v.startswith("fleet-09") for v in fp.column("id"))
    fp.filter("sv1")
    fp.wait_for("document.querySelector('#fleet-count').dataset.matching === arg", str(FLEET // 2))
    assert set(fp.column("preset")) == {"sv1ev3"}
    below = sum(1 for s in sohs if s < 80)
    fp.filter("", "80")
    fp.wait_for("document.querySelector('#fleet-count').dataset.matching === arg", str(below))
    assert all(float(v) < 80 for v in fp.column("soh"))
    fp.wait_for("Number(document.querySelector('#fleet-histogram').dataset.count) === arg", below)
    fp.filter("model3", "80")
    both = sum(
        1
        for vid, t in fleet.telemetry.items()
        if t["soh"] < 80 and fleet.presets[vid] == "Model3_2024"
    )
    fp.wait_for("document.querySelector('#fleet-count').dataset.matching === arg", str(both))
    fp.filter("no-such-vehicle")
    fp.wait_for("document.querySelector('#fleet-count').dataset.matching === '0'")
    assert page.is_visible("#fleet-empty")
    fp.filter()
    fp.wait_for("document.querySelector('#fleet-count').dataset.matching === arg", str(FLEET))
    assert fp.errors == []
    assert fp.offline.blocked == []


@pytest.mark.browser
def test_forecast_columns_come_from_the_fleet_forecast(fleet: Fleet, open_fleet: Any) -> None:
    fp = open_fleet(fleet.url)
    fp.wait_loaded()
    shown = fp.column("id")
    answer = httpx.post(
        f"{fleet.url}/forecast/fleet",
        json={"items": [{"vehicle_id": v} for v in shown], "years": 10},
        timeout=60,
    ).json()["results"]
    for vid, result in zip(shown, answer, strict=True):
        assert fp.cell(vid, "fade") == f"{result['fade_pct_per_year']:.2f}"
        y80 = result["years_to_80"]
        assert fp.cell(vid, "y80") == ("> 10" if y80 is None else f"{y80:.1f}")
    # sorting by fade: the known values in order
    fp.sort("fade")
    fp.wait_for(
        "document.querySelector('#fleet-table th[data-key=fade]').getAttribute('aria-sort')"
        " === 'ascending'"
    )
    fades = [float(v) for v in fp.column("fade")]
    assert fades == sorted(fades)
    assert fp.errors == []


@pytest.mark.browser
def test_a_live_step_updates_its_row_without_a_reload(fleet: Fleet, open_fleet: Any) -> None:
    vid = vehicle_id(7)
    fp = open_fleet(fleet.url)
    fp.wait_loaded()
    page = fp.page
    fp.filter(vid)
    fp.wait_for("document.querySelector('#fleet-count').dataset.matching === '1'")
    page.evaluate("window.__notReloaded = true")
    before = fleet.telemetry[vid]
    assert fp.cell(vid, "odometer") == f"{before['total_distance_km']:.1f}"
    reply = fleet.step_sync(vid, drive(120, power_kw=45.0, speed_m_s=25.0))  # 3 km
    t = reply["telemetry"]
    assert t["total_distance_km"] > before["total_distance_km"] + 2
    assert t["soc"] < before["soc"]
    fp.wait_for(
        "document.querySelector(`#fleet-rows tr[data-vehicle='${arg[0]}'] td[data-col=odometer]`)"
        ".textContent === arg[1]",
        [vid, f"{t['total_distance_km']:.1f}"],
    )
    assert fp.cell(vid, "soc") == f"{t['soc']:.1f}"
    assert fp.cell(vid, "temperature") == f"{t['temperature']:.1f}"
    assert fp.cell(vid, "seen") in ("just now", "1 s ago", "2 s ago", "3 s ago")
    assert page.evaluate("window.__notReloaded") is True
    stats = page.evaluate("window.twinFleet.stats()")
    assert stats["messages"] >= FLEET + 1  # the snapshots, then the step
    assert fp.errors == []


@pytest.mark.browser
def test_the_read_key_comes_from_the_address(browser: Any, tmp_path: Path) -> None:
    """With read_key set, /fleet?token= loads the fleet (API calls and the socket carry the
    key) and drops the key from the address; without it the page says what it needs."""
    key = "fleet-read-key"
    service = ServiceProcess(env={"TWIN_READ_KEY": key}, log_dir=tmp_path)
    service.start()
    try:
        headers = {"Authorization": f"Bearer {key}"}
        for i in range(3):
            body = {"vehicle_id": f"key-{i}", "state": {"soh": 0.9}, "samples": drive()}
            httpx.post(
                f"{service.url}/step", json=body, headers=headers, timeout=30
            ).raise_for_status()
        fp = FleetPage(browser, service.url, path=f"/fleet?token={key}")
        try:
            fp.wait_loaded(3)
            assert "token" not in fp.page.url
            fp.wait_for(
                "!document.querySelector('#fleet-rows td[data-col=fade]').textContent.includes('…')"
            )
            assert fp.page.is_hidden("#notice")
            assert fp.errors == []
        finally:
            fp.close()
        bare = FleetPage(browser, service.url)
        try:
            bare.wait_for("!document.querySelector('#notice').hidden")
            assert "read key" in bare.page.inner_text("#notice")
        finally:
            bare.close()
    finally:
        service.stop()


# ---------------------------------------------------------------------------- frame times

FRAME_RECORDER = """() => {
    window.__frames = [];
    window.__recording = true;
    let last = performance.now();
    const tick = (now) => {
        window.__frames.push(now - last);
        last = now;
        if (window.__recording) requestAnimationFrame(tick);
    };
    requestAnimationFrame((now) => { last = now; requestAnimationFrame(tick); });
}"""


def frame_summary(intervals: list[float]) -> dict[str, float]:
    ordered = sorted(intervals)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"frames": len(ordered), "p50": pct(0.5), "p95": pct(0.95), "max": ordered[-1]}


def start_recording(page: Any) -> None:
    page.evaluate("window.twinFleet.resetStats()")
    page.evaluate(FRAME_RECORDER)


def stop_recording(page: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """The frame intervals since start_recording, and the page's own counters (messages,
    renders, time spent rendering)."""
    intervals = page.evaluate("window.__recording = false, window.__frames")
    return frame_summary(intervals[1:]), page.evaluate("window.twinFleet.stats()")


class Streamer(threading.Thread):
    """Posts steps for every vehicle, round robin, from `workers` concurrent clients (each
    with its own vehicles, so no two steps of one vehicle overlap) until stopped."""

    def __init__(self, fleet: Fleet, workers: int = 12) -> None:
        super().__init__(daemon=True)
        self.fleet = fleet
        self.workers = workers
        self.stopping = threading.Event()
        self.steps = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _main(self) -> None:
        ids = self.fleet.ids()
        limits = httpx.Limits(max_connections=self.workers)
        async with httpx.AsyncClient(base_url=self.fleet.url, timeout=30, limits=limits) as client:

            async def worker(mine: list[str]) -> None:
                k = 0
                while not self.stopping.is_set():
                    await self.fleet.step(client, mine[k % len(mine)], drive(5))
                    self.steps += 1
                    k += 1

            await asyncio.gather(*(worker(ids[w :: self.workers]) for w in range(self.workers)))


def _print_frames(label: str, summary: dict[str, float], stats: dict[str, Any], extra: str) -> None:
    print(
        f"\n{label}: {summary['frames']} frames, interval p50 {summary['p50']:.1f} ms, "
        f"p95 {summary['p95']:.1f} ms, max {summary['max']:.1f} ms; {extra}, "
        f"{stats['messages']} messages taken, {stats['frames']} renders "
        f"({stats['renderMs']:.0f} ms in all, the longest {stats['maxRenderMs']:.1f} ms)"
    )


@pytest.mark.browser
@pytest.mark.slow
def test_frame_times_while_the_fleet_streams(fleet: Fleet, open_fleet: Any) -> None:
    """Real steps for all 1,000 vehicles for a few seconds: the page stays smooth."""
    fp = open_fleet(fleet.url)
    fp.wait_loaded()
    page = fp.page
    page.select_option("#fleet-page-size", "250")  # the largest page: the most rows to draw
    fp.sort("soc")  # a live column: rows move between re-sorts
    page.wait_for_timeout(500)
    start_recording(page)
    streamer = Streamer(fleet)
    streamer.start()
    started = time.monotonic()
    try:
        # at least 6 s and 300 steps (fewer per second on a loaded machine), at most 20 s
        while time.monotonic() - started < 20 and streamer.is_alive():
            page.wait_for_timeout(500)
            if time.monotonic() - started >= 6 and streamer.steps >= 300:
                break
    finally:
        streamer.stopping.set()
        streamer.join(30)
    summary, stats = stop_recording(page)
    assert streamer.error is None, streamer.error
    received = stats["messages"]
    _print_frames("live steps", summary, stats, f"{streamer.steps} steps posted")
    assert received >= 150, "too few live messages for the measurement to mean anything"
    assert summary["frames"] >= 100
    assert summary["p95"] < FRAME_P95_LIMIT_MS, summary
    assert fp.errors == []


SYNTHETIC_STREAM = """async ([perSecond, seconds, ids]) => {
    // "state" messages as /ws/fleet sends them (text): every vehicle once per round, in a
    // scrambled order, with scattered SOC and temperature
    const rows = ids.map((id) => window.twinFleet.row(id));
    let rev = 1e6;
    let sent = 0;
    const started = performance.now();
    await new Promise((resolve) => {
        const timer = setInterval(() => {
            const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
            for (; sent < due; sent++) {
                const row = rows[(sent * 7919) % rows.length];
                const scatter = (sent * 2654435761) % 6007;
                rev++;
                const t = {
                    vehicle_id: row.id, rev, timestamp: new Date().toISOString(),
                    vehicle_model: row.preset, soh: row.soh, soc: 20 + scatter / 100,
                    temperature: 20 + (scatter % 150) / 10,
                    total_distance_km: row.odometer + sent / 1000,
                    elapsed_seconds: sent, power_kw: 30, voltage: 350, current: 80,
                };
                const message = {type: "state", vehicle_id: row.id, rev, telemetry: t};
                window.twinFleet.receive(JSON.stringify(message));
            }
            if (performance.now() - started >= seconds * 1000) {
                clearInterval(timer);
                resolve();
            }
        }, 4);
    });
    return sent;
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_frame_times_at_several_updates_per_vehicle_per_second(
    fleet: Fleet, open_fleet: Any
) -> None:
    """1,000 vehicles x 3 updates a second (more than this machine's service can post): the
    messages are fed to the page's socket handler in the page itself."""
    fp = open_fleet(fleet.url)
    fp.wait_loaded()
    page = fp.page
    page.select_option("#fleet-page-size", "250")
    fp.sort("soc")
    page.wait_for_timeout(500)
    rate, seconds = 3 * FLEET, 5
    start_recording(page)
    sent = page.evaluate(SYNTHETIC_STREAM, [rate, seconds, fleet.ids()])
    summary, stats = stop_recording(page)
    _print_frames(f"synthetic {rate} messages/s", summary, stats, f"{sent} messages fed")
    assert sent >= rate * seconds * 0.9  # the page kept up with the stream
    assert summary["frames"] >= 20 * seconds  # and kept drawing (60 per second when idle)
    assert summary["p95"] < FRAME_P95_LIMIT_MS, summary
    # and what it drew is what it was sent: every row shown has its vehicle's last SOC
    page.wait_for_timeout(100)
    wrong = page.evaluate(SHOWN_BUT_STALE)
    assert wrong == [], wrong[:5]
    assert fp.errors == []


SHOWN_BUT_STALE = """() => {
    const wrong = [];
    for (const tr of document.querySelectorAll("#fleet-rows tr:not([hidden])")) {
        const row = window.twinFleet.row(tr.dataset.vehicle);
        const text = tr.querySelector("td[data-col=soc]").textContent;
        if (text !== row.soc.toFixed(1)) wrong.push([row.id, text, row.soc]);
    }
    return wrong;
}"""


# ---------------------------------------------------------------------------- policies


def policies_supported(url: str) -> bool:
    response = httpx.post(
        f"{url}/forecast/fleet",
        json={
            "items": [{"vehicle_id": vehicle_id(0)}],
            "policies": [{"name": "as usual"}],
            "warranty": {"years": 8, "soh": 0.7},
        },
        timeout=30,
    )
    return response.status_code == 200 and "policies" in response.json()


@pytest.mark.browser
def test_policy_panel_compares_two_policies(fleet: Fleet, open_fleet: Any) -> None:
    if not policies_supported(fleet.url):
        pytest.xfail("policies API pending: POST /forecast/fleet answers no `policies`")
    fp = open_fleet(fleet.url)
    fp.wait_loaded()
    page = fp.page
    names = page.eval_on_selector_all(
        "#policy-rows input[data-field=name]", "els => els.map(e => e.value)"
    )
    assert names == DEFAULT_POLICIES
    # keep "as usual" and "80 % limit"
    page.click("#policy-rows tr[data-index='3'] .policy-remove")
    page.click("#policy-rows tr[data-index='2'] .policy-remove")
    assert page.locator("#policy-rows tr").count() == 2
    page.fill("#warranty-years", "8")
    page.fill("#warranty-soh", "75")
    page.click("#policy-compare")
    fp.wait_for("document.querySelectorAll('#policy-results tr').length === 3", timeout=60_000)
    rows = page.eval_on_selector_all(
        "#policy-results tr",
        "trs => trs.map(tr => Array.from(tr.children).map(td => td.textContent))",
    )
    assert [r[0] for r in rows] == ["observed usage", "as usual", "80 % limit"]
    for row in rows:
        assert re.fullmatch(r"\d+\.\d\d", row[1]), row  # mean fade %/yr
        assert re.fullmatch(r"\d+\.\d %", row[2]), row  # mean SOH at warranty age
        assert re.fullmatch(r"\d+\.\d % \(\d+ of 1000\)", row[3]), row  # share below
    assert page.inner_text("#policy-head-share") == "Below 75 % at 8 y"

    # the same numbers as the API's answer for the whole fleet
    answer = httpx.post(
        f"{fleet.url}/forecast/fleet",
        json={
            "items": [{"vehicle_id": v} for v in fleet.ids()],
            "years": 10,
            "policies": [{"name": "as usual"}, {"name": "80 % limit", "charge_limit": 0.8}],
            "warranty": {"years": 8, "soh": 0.75},
        },
        timeout=60,
    ).json()
    shares = [answer["warranty"]] + [p["warranty"] for p in answer["policies"]]
    for row, share in zip(rows, shares, strict=True):
        assert row[3] == f"{share['share_below'] * 100:.1f} % ({share['vehicles_below']} of 1000)"
    limited = answer["policies"][1]
    assert rows[2][1] == f"{limited['mean_fade_pct_per_year']:.2f}"
    assert rows[2][2] == f"{limited['mean_soh_at_warranty'] * 100:.1f} %"
    bars = page.eval_on_selector_all(
        "#policy-bars .bar-value", "els => els.map(e => e.textContent)"
    )
    assert bars == [r[3].split(" (")[0] for r in rows]

    # a refused request shows the service's message and marks the field
    page.fill("#policy-rows tr[data-index='1'] input[data-field=charge_limit]", "0.3")
    page.click("#policy-compare")
    page.wait_for_selector("#policy-error:not([hidden])", timeout=WAIT_MS)
    error = page.inner_text("#policy-error")
    assert "HTTP 422" in error and "policies.1.charge_limit" in error
    assert "greater than or equal to 0.5" in error
    invalid = "#policy-rows tr[data-index='1'] input[data-field=charge_limit]"
    assert page.get_attribute(invalid, "aria-invalid") == "true"
    # the browser logs the refused request itself; nothing else went wrong
    assert [e for e in fp.errors if "status of 422" not in e] == []
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT_DIR / "fleet.png"), full_page=True)
