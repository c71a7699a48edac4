"""Demo days (``cycle --daily-passes N``): N passes, then parked (and charged overnight) for
the rest of the 24 h; parked hours paced faster; positions inside a park resume exactly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.pack import FakePack
from support.processes import ServiceProcess

import bridge.__main__ as bridge_main
from bridge.poster import load_state_file
from bridge.roadload import RoadLoadParams
from bridge.samples import Sample
from bridge.sources.cycle import DAY_S, PARK_SAMPLE_S, ChargeStop, cycle_samples

REPO = Path(__file__).resolve().parents[1]
UDDS_S = 1369.0
UDDS_KM = 11.990


# -- the source, against a pack model that reads back its own SOC ---------------------------


def fake_pack(soc: float) -> FakePack:
    """A 1 kWh pack driven at 0.5 kW: charge stops and parks come within a pass or two."""
    return FakePack(soc, kwh=1.0, drive_kw=0.5)


PARAMS = RoadLoadParams(1752.0, 0.23, 2.22, 0.007, 0.33435, 7.94)
STOP = ChargeStop(to=0.5, below=0.42, power_kw=2.0, step_s=10.0, check_s=300.0)


def _days(pack: FakePack, start: dict[str, Any] | None = None) -> Iterator[Sample]:
    return cycle_samples(
        "udds",
        PARAMS,
        repeat=3,
        charge=STOP,
        soc_feedback=lambda: pack.soc,
        start=start,
        daily_passes=2,
        park_speedup=5000.0,
    )


def _wire(samples: list[Sample]) -> list[tuple[Any, ...]]:
    return [(s.to_wire(), s.position, s.speedup, s.extras.get("phase")) for s in samples]


def test_a_day_is_its_passes_then_parked_to_24_h() -> None:
    pack = fake_pack(0.45)
    whole = pack.consume(_days(pack))
    days: dict[int, list[Sample]] = {}
    for sample in whole:
        days.setdefault(sample.extras["day"], []).append(sample)
    assert sorted(days) == [1, 2]  # 3 passes, 2 a day: the last pass ends day 2
    for day, samples in days.items():
        assert sum(s.dt_s for s in samples) == pytest.approx(DAY_S, abs=1e-6), day
        phases = [s.extras["phase"] for s in samples]
        drive = [s for s in samples if s.extras["phase"] == "drive"]
        assert sum(s.dt_s for s in drive) == pytest.approx(UDDS_S * (2 if day == 1 else 1))
        # The day ends parked: charging first (SOC was below 0.42), then idle to midnight.
        tail = phases[len(phases) - phases[::-1].index("drive") :]
        assert tail[0] == "charge" and tail[-1] == "park"
        assert tail == sorted(tail)  # "charge" … then "park" only
    charging = [s for s in whole if s.extras["phase"] == "charge"]
    # Day 1 also stops to charge between its passes (paced like driving: no speedup).
    assert {s.speedup for s in charging} == {None, 5000.0}
    idle = [s for s in whole if s.extras["phase"] == "park"]
    assert idle and all(s.dt_s <= PARK_SAMPLE_S for s in idle)
    assert all(s.power_kw == 0.0 and s.wheel_speed_m_s is None for s in idle)
    assert all(s.speedup == 5000.0 for s in idle)
    assert all(s.speedup is None for s in whole if s.extras["phase"] == "drive")
    assert all("position" not in s.to_wire() and "speedup" not in s.to_wire() for s in whole)


def test_positions_inside_demo_days_resume_exactly() -> None:
    pack = fake_pack(0.45)
    whole = pack.consume(_days(pack))
    phase = [s.extras["phase"] for s in whole]
    day = [s.extras["day"] for s in whole]
    first_park = phase.index("park")
    park_charge = next(
        i for i, s in enumerate(whole) if s.speedup is not None and phase[i] == "charge"
    )
    cuts = {
        "mid pass 0": 700,
        "inside the stop between passes": phase.index("charge") + 3,
        "end of pass 1": first_park - 1 - phase[:first_park][::-1].index("drive") + 1,
        "overnight charging": park_charge + 2,
        "first idle sample": first_park + 1,
        "mid idle": first_park + 40,
        "end of day 1": day.index(2),
        "mid day 2": day.index(2) + 500,
    }
    for name, cut in cuts.items():
        part = fake_pack(0.45)
        head = part.consume(_days(part), limit=cut)
        tail = part.consume(_days(part, start=json.loads(json.dumps(head[-1].position))))
        assert _wire(head + tail) == _wire(whole), name
    assert whole[-1].position is not None and "park" in whole[-1].position
    assert list(_days(fake_pack(0.9), start=whole[-1].position)) == []


def test_parked_samples_are_paced_at_their_own_speedup(monkeypatch: pytest.MonkeyPatch) -> None:
    class Clock:
        now = 0.0

        def monotonic(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(bridge_main, "time", clock)
    drive = [Sample(dt_s=1.0, power_kw=10.0) for _ in range(10)]
    parked = [Sample(dt_s=600.0, power_kw=0.0, speedup=3600.0) for _ in range(6)]
    released = []
    for _ in bridge_main.paced(iter(drive + parked), 10.0):
        released.append(clock.now)
    assert released[9] == pytest.approx(1.0)  # 10 s of driving at 10x
    assert released[-1] == pytest.approx(1.0 + 3600.0 / 3600.0)  # an hour parked at 3600x


# -- against the service -------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "BRIDGE_"))}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _command(twin: ServiceProcess, vehicle_id: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "bridge", "cycle", "--cycle", "udds", "--vehicle", "Model3_2024",
        "--twin-url", twin.url, "--vehicle-id", vehicle_id,
        "--daily-passes", "1", "--repeat", "2", "--initial-soc", "0.25",
        "--state-file", str(tmp_path / f"{vehicle_id}.state.json"),
        "--sample-log", str(tmp_path / f"{vehicle_id}.jsonl"),
        "--batch-interval-s", "0.2", "--no-progress", *extra,
    ]  # fmt: skip


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _state(tmp_path: Path, vehicle_id: str) -> dict[str, Any]:
    record = load_state_file(tmp_path / f"{vehicle_id}.state.json")
    assert record is not None
    return record


def test_two_demo_days_fast(twin: ServiceProcess, tmp_path: Path) -> None:
    done = subprocess.run(
        _command(twin, "days", tmp_path, "--fast"),
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert re.search(r"done: [\d,]+ samples delivered in \d+ requests?, 0 buffered samples "
                     r"left undelivered, 0 dropped;", lines[-1]), lines[-1]  # fmt: skip
    # Day 1 parks charging from ~23 % (the pass used ~2 % of 25 %) to 90 %; day 2 starts high.
    parked = [line.split("INFO bridge.sources.cycle: ")[1] for line in lines if ": parked " in line]
    assert len(parked) == 2
    assert re.fullmatch(r"day 1: parked 23\.6 h, charged 2\d→9\d %", parked[0]), parked
    assert parked[1] == "day 2: parked 23.6 h"
    record = _state(tmp_path, "days")
    state = record["state"]
    assert state["elapsed_s"] == pytest.approx(2 * DAY_S, abs=1e-6)
    assert state["total_distance_km"] == pytest.approx(2 * UDDS_KM, rel=0.005)
    rows = _rows(tmp_path / "days.jsonl")
    wheel_km = sum((r.get("wheel_speed_m_s") or 0.0) * r["dt_s"] for r in rows) / 1000.0
    assert state["total_distance_km"] == pytest.approx(wheel_km, rel=1e-9)
    assert sum(r["dt_s"] for r in rows if r["phase"] == "drive") == pytest.approx(2 * UDDS_S)
    charge = [r for r in rows if r["phase"] == "charge"]
    assert charge and all(r["day"] == 1 and r["charging"] is True for r in charge)
    assert charge[-1]["twin_soc_pct"] >= 90.0
    assert all(r["power_kw"] == 0.0 and r["dt_s"] <= 600.0 for r in rows if r["phase"] == "park")
    history = httpx.get(f"{twin.url}/vehicles/days/history", params={"limit": 1000}).json()
    assert any(t["is_charging"] for t in history)
    assert record["finished"] is True


def test_a_demo_day_interrupted_while_parked_resumes_exactly(
    twin: ServiceProcess, tmp_path: Path
) -> None:
    straight = subprocess.run(
        _command(twin, "straight", tmp_path, "--fast"),
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert straight.returncode == 0, straight.stderr
    # Paced: 1369 s of UDDS in ~0.7 s, each parked day (~23.6 h) in ~4 s at 20000x.
    paced = ("--speedup", "2000", "--park-speedup", "20000")
    state_file = tmp_path / "cut.state.json"
    process = subprocess.Popen(
        _command(twin, "cut", tmp_path, *paced),
        cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    cut_at: dict[str, Any] | None = None
    deadline = time.monotonic() + 120.0
    while process.poll() is None and time.monotonic() < deadline:
        try:
            position = json.loads(state_file.read_text()).get("position")
        except (OSError, ValueError):
            position = None
        if position and "park" in position:
            cut_at = position
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    _, stderr = process.communicate(timeout=60)
    assert cut_at is not None, f"the run never parked before it ended:\n{stderr}"
    assert process.returncode == 130, stderr
    resumed = subprocess.run(
        _command(twin, "cut", tmp_path, "--fast"),
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "the source continues after position" in resumed.stderr

    def trace(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(r["dt_s"], r.get("power_kw"), r.get("charging"), r["phase"], r["day"])
                for r in rows]  # fmt: skip

    rows, reference = _rows(tmp_path / "cut.jsonl"), _rows(tmp_path / "straight.jsonl")
    assert trace(rows) == trace(reference)  # nothing twice, nothing skipped
    after, clean = _state(tmp_path, "cut")["state"], _state(tmp_path, "straight")["state"]
    assert after["elapsed_s"] == pytest.approx(2 * DAY_S, abs=1e-6)
    assert after["total_distance_km"] == pytest.approx(clean["total_distance_km"], rel=1e-12)
    assert after["soc"] == pytest.approx(clean["soc"], abs=1e-9)
    assert after["soh"] == pytest.approx(clean["soh"], abs=1e-12)
