"""A 1,000-vehicle fleet from the command line to the fleet page: `python -m bridge fleet`
drives it through a real twin process, Chromium shows every vehicle on /fleet with its
forecast, and the policy comparison runs over the whole fleet."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.browser import Offline, chromium
from support.processes import REPO_ROOT, ServiceProcess

pytestmark = pytest.mark.slow

VEHICLES = 1000
DAYS = 1
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    logs = tmp_path_factory.mktemp("fleet-e2e")
    service = ServiceProcess(log_dir=logs)
    service.start()
    manifest = logs / "manifest.json"
    try:
        cmd = [sys.executable, "-m", "bridge", "fleet", "--vehicles", str(VEHICLES),
               "--days", str(DAYS), "--seed", "11", "--fast", "--twin-url", service.url,
               "--manifest", str(manifest)]  # fmt: skip
        done = subprocess.run(
            cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
        assert done.returncode == 0, done.stderr[-3000:]
        print("\n" + done.stderr.strip().splitlines()[-1])
        yield service.url, manifest, done.stderr
    finally:
        service.stop()


def test_the_cli_runs_every_vehicle_and_reports_progress(fleet_run: tuple[str, Path, str]) -> None:
    url, manifest, stderr = fleet_run
    assert "vehicle-days/s" in stderr and f"{VEHICLES:,}/{VEHICLES * DAYS:,}" in stderr
    record = json.loads(manifest.read_text())
    assert record["run"]["code"] == 0 and record["run"]["vehicle_days"] == VEHICLES * DAYS
    ids = [v["vehicle_id"] for v in record["fleet"]]
    assert ids == [f"fleet-{i:04d}" for i in range(1, VEHICLES + 1)]
    listed = httpx.get(f"{url}/vehicles", params={"limit": 1000}, timeout=30).json()
    assert sorted(t["vehicle_id"] for t in listed) == ids
    assert all(t["simulated_days"] >= DAYS - 1e-6 for t in listed)
    profiles = {v["vehicle_id"]: v["profile"] for v in record["fleet"]}
    km: dict[str, list[float]] = {}
    for t in listed:
        km.setdefault(profiles[t["vehicle_id"]], []).append(t["total_distance_km"])
    mean = {p: sum(v) / len(v) for p, v in km.items()}
    assert mean["taxi"] > mean["commute"] > mean["rarely_driven"]


def test_the_fleet_page_shows_the_whole_fleet(fleet_run: tuple[str, Path, str]) -> None:
    url = fleet_run[0]
    with chromium() as browser:
        offline = Offline(browser, url, viewport={"width": 1400, "height": 900})
        page = offline.page
        try:
            page.goto(f"{url}/fleet")
            page.wait_for_function(
                "n => document.querySelector('#fleet-count').dataset.total === String(n)",
                arg=VEHICLES,
                timeout=60_000,
            )
            page.wait_for_function(
                "() => window.twinFleet.forecast().lastAt !== null", timeout=60_000
            )
            histogram: Any = page.evaluate("() => window.twinFleet.histogram()")
            assert histogram["count"] == sum(histogram["counts"]) == VEHICLES
            fades = page.eval_on_selector_all(
                "#fleet-rows tr:not([hidden]) td[data-col='fade']",
                "els => els.map(e => e.textContent)",
            )
            assert fades and all(f.strip() not in ("", "…") for f in fades)
            page.click("#policy-compare")
            page.wait_for_function(
                "() => document.querySelectorAll('#policy-results tr[data-policy]').length >= 4",
                timeout=60_000,
            )
            shares = page.eval_on_selector_all(
                "#policy-results tr[data-policy] td[data-col='share']",
                "els => els.map(e => e.textContent)",
            )
            assert len(shares) >= 4 and all("%" in s for s in shares)
            assert offline.errors == []
        finally:
            offline.close()
