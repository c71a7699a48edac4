"""`make run`'s demo is credible: its pack ages with a physical model at the stated
acceleration, and the forecast the dashboard shows for it stays within what fleet data shows
for LFP (about 1-3 %/yr) while the demo runs, with usage inferred in simulated time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.demo import Runner
from support.processes import free_port

pytestmark = pytest.mark.slow

# make run's demo, paced faster: a demo day (two UDDS passes, parked to 24 h) takes ~4 s, so
# the run covers more than the week after which the forecast takes the distance per day.
PACE = ("--speedup", "2000", "--park-speedup", "36000")
RUN_S = 50.0
POLL_S = 5.0


def forecast(url: str) -> dict[str, Any]:
    body = {"vehicle_id": "ev-1", "years": 10, "compare_models": True}
    response = httpx.post(f"{url}/forecast", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_the_demo_forecast_stays_in_the_published_range(tmp_path: Path) -> None:
    runner = Runner(free_port(), tmp_path / "run.log", *PACE)
    try:
        runner.wait_for(lambda: runner.rev() >= 3, "the bridge's steps", timeout_s=90)
        log = runner.log()
        assert "aging      the preset's physical model at 10x" in log
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + RUN_S
        while time.monotonic() < deadline:
            seen.append(forecast(runner.url))
            time.sleep(POLL_S)
        telemetry = httpx.get(f"{runner.url}/vehicles/ev-1", timeout=5).json()["telemetry"]
    finally:
        runner.kill()

    assert telemetry["aging_model"] == "naumann" and telemetry["time_multiplier"] == 10
    assert telemetry["simulated_days"] > 70  # more than a week, aged 10x
    assert 0.9 < telemetry["soh"] / 100 < 1.0
    print("fade %/yr:", [round(fc["fade_pct_per_year"], 2) for fc in seen])
    print("band:", seen[-1]["band"], "usage:", seen[-1]["usage"])
    for fc in seen:
        assert fc["aging_model"] == "naumann"
        assert 1.0 <= fc["fade_pct_per_year"] <= 3.0, fc["usage"]
        assert fc["years_to_80"] is not None and 5 <= fc["years_to_80"] <= 30
        low, high = fc["band"]["fade_pct_per_year"]
        assert low <= fc["fade_pct_per_year"] <= high
        assert 0 < fc["usage"]["daily_km"] <= 100
    # After a simulated week the distance per day comes from the history: two UDDS passes
    # (about 24 km) a day.
    assert seen[0]["usage"]["source"]["daily_km"] == "default"
    last = seen[-1]["usage"]
    assert last["source"]["daily_km"] == "history"
    assert 18 <= last["daily_km"] <= 30
