"""``python -m bridge fleet``: the reproducible draw, the climates, the drive traces, a day's
samples against the twin, and whole fleets through a real twin process."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support.processes import ServiceProcess, free_port

from bridge.__main__ import main
from bridge.fleet import (
    CLIMATES,
    PROFILES,
    DayBuilder,
    FleetClient,
    FleetError,
    FleetVehicle,
    PresetInfo,
    SampleBlock,
    TraceLibrary,
    VehicleRun,
    draw_fleet,
    hourly_ambient,
    profile_shares,
    run_fleet,
)
from bridge.fleet.day import DAY_S, plan_day
from bridge.fleet.profiles import DEFAULT_PRESETS, quota
from bridge.fleet.traces import make_trace
from bridge.presets import local_preset
from clients.python import TwinClient

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def library() -> TraceLibrary:
    return TraceLibrary({p: PresetInfo.from_preset(local_preset(p)) for p in DEFAULT_PRESETS})


# -- the draw ---------------------------------------------------------------------------------


def test_the_same_seed_draws_the_same_fleet() -> None:
    assert draw_fleet(200, seed=7) == draw_fleet(200, seed=7)
    other = draw_fleet(200, seed=8)
    assert other != draw_fleet(200, seed=7)
    # Not a relabelling: the per-vehicle parameters differ too.
    assert [v.daily_km for v in other] != [v.daily_km for v in draw_fleet(200, seed=7)]


def test_vehicle_ids_and_parameters() -> None:
    fleet = draw_fleet(300, seed=1)
    assert [v.vehicle_id for v in fleet[:3]] == ["fleet-0001", "fleet-0002", "fleet-0003"]
    assert fleet[-1].vehicle_id == "fleet-0300"
    for v in fleet:
        assert v.preset in DEFAULT_PRESETS and v.climate in CLIMATES
        low, high = PROFILES[v.profile].km_range
        assert low <= v.daily_km <= high
        assert 0.8 <= v.home_charge_limit <= 1.0
        assert 0.0 < v.plug_in_soc < v.home_charge_limit
        assert 0.0 <= v.dc_fast_share <= 1.0
        assert v.home_ac_kw in (3.7, 7.4, 11.0)
        assert v.annual_mean_ambient_c == CLIMATES[v.climate].annual_mean_c
        assert 0.5 <= v.initial_soc <= v.home_charge_limit
    # The draw jitters every vehicle: no two commuters alike.
    commuters = [(v.daily_km, v.plug_in_soc) for v in fleet if v.profile == "commute"]
    assert len(set(commuters)) == len(commuters)
    # DC fast charging: taxis and long-distance drivers more than commuters.
    share = {p: np.mean([v.dc_fast_share for v in fleet if v.profile == p]) for p in PROFILES}
    assert share["taxi"] > share["commute"] and share["long_distance"] > share["commute"]


def test_profiles_come_in_their_stated_shares() -> None:
    assert profile_shares(draw_fleet(1000, seed=3)) == {
        "commute": 0.55,
        "taxi": 0.15,
        "long_distance": 0.15,
        "rarely_driven": 0.15,
    }
    assert sum(p.share for p in PROFILES.values()) == pytest.approx(1.0)
    small = draw_fleet(7, seed=3)
    counts = {p: sum(v.profile == p for v in small) for p in PROFILES}
    assert counts == {"commute": 4, "taxi": 1, "long_distance": 1, "rarely_driven": 1}
    assert quota(0, {"a": 1.0}) == []
    # Presets: equal shares of the ones asked for.
    kinds = [v.preset for v in draw_fleet(10, seed=0, presets=["Model3_2024"])]
    assert kinds == ["Model3_2024"] * 10
    both = [v.preset for v in draw_fleet(10, seed=0)]
    assert both.count("sv1ev3") == both.count("Model3_2024") == 5


# -- climates ---------------------------------------------------------------------------------


def _year(name: str) -> np.ndarray:
    return hourly_ambient(name, np.arange(365 * 24) + 0.5)


@pytest.mark.parametrize("name", list(CLIMATES))
def test_climate_annual_mean_amplitude_and_hottest_month(name: str) -> None:
    c = CLIMATES[name]
    year = _year(name)
    assert year.mean() == pytest.approx(c.annual_mean_c, abs=0.01)
    days = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    months = [year[days[m] * 24 : days[m + 1] * 24].mean() for m in range(12)]
    assert int(np.argmax(months)) == 6  # July
    assert int(np.argmin(months)) in (0, 11)  # January (or December, by a hair)
    # Monthly means of the sinusoid: its amplitude times sinc(π·31/365) ≈ 0.988.
    half_difference = (months[6] - months[0]) / 2.0
    assert half_difference == pytest.approx(c.annual_amplitude_k, rel=0.03)
    assert c.source and c.station


@pytest.mark.parametrize("name", ["phoenix", "oslo"])
def test_climate_diurnal_cycle(name: str) -> None:
    c = CLIMATES[name]
    # 15 January: the annual sinusoid is at its minimum, flat over the day.
    hours = 14 * 24 + np.arange(0.0, 24.0, 0.25)
    day = hourly_ambient(name, hours)
    assert hours[np.argmin(day)] % 24 == pytest.approx(5.0)
    assert hours[np.argmax(day)] % 24 == pytest.approx(15.0)
    assert day.max() - day.min() == pytest.approx(c.daily_range_k, rel=0.01)
    # The sinusoid's minimum (within a degree of the January normal it is built from).
    assert day.mean() == pytest.approx(c.annual_mean_c - c.annual_amplitude_k, abs=0.01)
    assert day.mean() == pytest.approx(c.january_mean_c, abs=1.0)
    # Continuous across midnight and across the year's end.
    assert hourly_ambient(name, np.array([8760.0]))[0] == pytest.approx(
        hourly_ambient(name, np.array([0.0]))[0]
    )
    with pytest.raises(LookupError):
        hourly_ambient("atlantis", np.array([0.0]))


# -- drive traces -----------------------------------------------------------------------------


def test_terminal_power_is_the_twins_drivetrain_law(library: TraceLibrary) -> None:
    from bridge.cycles import load_cycle
    from bridge.roadload import road_load
    from twin_service.models.drivetrain import drive_columns
    from twin_service.presets import PRESETS, drivetrain_params

    for preset_id, info in library.presets.items():
        cycle = load_cycle("wltc")
        result = road_load(cycle.time_s, cycle.speed_m_s, info.roadload, cycle.grade)
        ours = info.terminal_power_kw(result.motor_power_w)
        n, omega = len(result.dt_s), result.motor_speed_rad_s
        torque = np.where(omega > 0, result.motor_power_w / np.where(omega > 0, omega, 1.0), 0.0)
        nan = np.full(n, np.nan)
        twin_w = drive_columns(
            result.dt_s, nan, nan, nan, result.speed_m_s, nan, 20.0, np.arange(n),
            torque, omega, np.ones(n, dtype=bool), drivetrain_params(PRESETS[preset_id]),
        )[0]  # fmt: skip
        np.testing.assert_allclose(ours * 1000.0, twin_w, rtol=1e-12, atol=1e-6)


@pytest.mark.parametrize("cycle", ["wltc", "udds", "hwfet"])
def test_traces_keep_time_distance_and_energy(cycle: str, library: TraceLibrary) -> None:
    info = library.presets["Model3_2024"]
    exact = make_trace(cycle, info)
    from bridge.cycles import load_cycle

    raw = load_cycle(cycle)
    assert exact.duration_s == pytest.approx(raw.duration_s)
    assert exact.km == pytest.approx(raw.distance_km, rel=1e-9)
    assert exact.stops[-1] == len(exact.dt_s)  # every cycle ends standing
    for window_s in (10.0, 60.0):
        coarse = make_trace(cycle, info, window_s)
        assert len(coarse.dt_s) < len(exact.dt_s) / 2
        assert coarse.duration_s == pytest.approx(exact.duration_s)
        assert coarse.km == pytest.approx(exact.km)
        for sign in (1.0, -1.0):  # energy out and regeneration in, separately
            e_exact = np.sum(np.maximum(sign * exact.power_kw, 0.0) * exact.dt_s)
            e_coarse = np.sum(np.maximum(sign * coarse.power_kw, 0.0) * coarse.dt_s)
            assert e_coarse == pytest.approx(e_exact, rel=1e-9)


@pytest.mark.parametrize("route,km", [("wltc", 40.0), ("udds", 5.0), ("motorway", 150.0)])
def test_trips_reach_their_distance_and_end_standing(
    route: str, km: float, library: TraceLibrary
) -> None:
    pieces = library.trip("sv1ev3", route, km)
    total = sum(p.km for p in pieces)
    longest = max(library.trace("sv1ev3", c).km for c in ("wltc", "udds", "hwfet"))
    assert abs(total - km) < longest / 2
    for piece in pieces:
        assert piece.n in piece.trace.stops  # cut where the car stands still


# -- a day against the twin --------------------------------------------------------------------


def _vehicle(profile: str, climate: str = "munich", **changes: Any) -> FleetVehicle:
    fleet = draw_fleet(200, seed=0)
    found = next(v for v in fleet if v.profile == profile and v.climate == climate)
    return FleetVehicle(**{**found.as_dict(), **changes})


def _days(
    client: TwinClient, v: FleetVehicle, library: TraceLibrary, days: int
) -> Iterator[tuple[DayBuilder, list[SampleBlock], dict[str, Any]]]:
    """Days of ``v`` through ``client`` (what-if runs: nothing stored), one request per
    read-back."""
    run = VehicleRun(v, seed=0)
    state: dict[str, Any] = {"soc": v.initial_soc, "temperature_c": 5.0}
    for day in range(days):
        pending: list[SampleBlock] = []
        blocks: list[SampleBlock] = []

        def feedback() -> dict[str, Any]:
            nonlocal state, pending
            if pending:
                rows = [b.to_wire() for b in pending]
                reply = client.step(rows, vehicle_id=v.vehicle_id, vehicle=v.preset,
                                    state=state, options={"store": False})  # fmt: skip
                state, pending = dict(reply["state"]), []
            return state

        builder = DayBuilder(run, day, library, feedback, initial_state=state)
        for block in builder.blocks():
            pending.append(block)
            blocks.append(block)
        before = run.state
        feedback()
        run.learn(before, state, builder.active_s)
        run.state = state
        run.days += 1
        yield builder, blocks, state


@pytest.mark.parametrize("profile", list(PROFILES))
def test_a_week_of_every_profile_is_valid_for_the_twin(
    profile: str, twin: ServiceProcess, library: TraceLibrary
) -> None:
    v = _vehicle(profile, drive_probability=0.9 if profile == "rarely_driven" else 1.0)
    phases: set[str] = set()
    with FleetClient(twin.url) as client:
        for day, (_, blocks, state) in enumerate(_days(client, v, library, 7)):
            assert sum(b.dt_s for b in blocks) == pytest.approx(DAY_S)
            assert state["elapsed_s"] == pytest.approx((day + 1) * DAY_S)
            assert 0.03 < state["soc"] <= 0.98
            phases |= {b.extras["phase"] for b in blocks}
            for b in blocks:
                if b.extras["phase"] in ("ac", "dc"):
                    assert b.columns["charging"].all() and (b.columns["power_kw"] < 0).all()
                else:
                    assert "charging" not in b.columns
                amb = b.columns["ambient_c"]
                assert -20.0 < amb.min() and amb.max() < 35.0  # Munich in January
    assert {"drive", "park"} <= phases
    if profile == "taxi":
        assert "wait" in phases
    km = state["total_distance_km"]
    assert km == pytest.approx(v.daily_km * 7, rel=0.6)


def test_dc_fast_charging_preconditions_and_stops_near_its_target(
    twin: ServiceProcess, library: TraceLibrary
) -> None:
    # A long-distance driver who wants all charging energy from DC chargers, in the cold.
    v = _vehicle("long_distance", "oslo", dc_fast_share=1.0, daily_km=300.0)
    with FleetClient(twin.url) as client:
        days = list(_days(client, v, library, 3))
    sessions = [
        (i, blocks[i - 1], b)
        for _, blocks, _ in days
        for i, b in enumerate(blocks)
        if b.extras["phase"] == "dc" and blocks[i - 1].extras["phase"] == "drive"
    ]
    assert sessions
    for _, drive, _ in sessions:
        flags = drive.columns.get("precondition")
        assert flags is not None and flags[-1] and not flags[0] or drive.dt_s <= 15 * 60
    run_dc = sum(b.dt_s for _, blocks, _ in days for b in blocks if b.extras["phase"] == "dc")
    assert run_dc > 0
    last = days[-1][2]
    assert 0.05 < last["soc"] < 0.98


def test_the_batch_formats_give_the_same_twin(twin: ServiceProcess, library: TraceLibrary) -> None:
    v = _vehicle("commute")
    states = []
    for batch_format in ("msgpack", "columns", "rows"):
        with FleetClient(twin.url, batch_format=batch_format) as client:
            states.append(next(_days(client, v, library, 1))[2])
    for other in states[1:]:
        for key in ("soc", "temperature_c", "total_distance_km", "soh", "throughput_ah"):
            assert other[key] == pytest.approx(states[0][key], rel=1e-12), key


def test_a_plain_client_sends_a_block_as_its_summary(twin: ServiceProcess) -> None:
    dt = np.ones(600)
    power = np.where(np.arange(600) % 60 < 45, 20.0, -5.0)
    block = SampleBlock(dt, power, np.full(600, 15.0), np.full(600, 10.0))
    assert block.n == 600 and block.dt_s == 600.0
    assert block.power_kw == pytest.approx(float(power.mean()))
    assert block.distance_m == pytest.approx(9000.0)
    with TwinClient(twin.url) as plain, FleetClient(twin.url) as fleet:
        one = plain.step([block.to_wire()], vehicle_id="x", options={"store": False})
        many = fleet.step([block.to_wire()], vehicle_id="x", options={"store": False})
    assert one["state"]["elapsed_s"] == many["state"]["elapsed_s"] == 600.0
    assert one["state"]["total_distance_km"] == pytest.approx(9.0)
    assert many["state"]["total_distance_km"] == pytest.approx(9.0)
    # Same energy; regeneration only in the full columns.
    assert many["state"]["energy_charged_kwh"] > 0.0 == one["state"]["energy_charged_kwh"]


def test_plans_keep_the_weekly_distance() -> None:
    for profile in PROFILES:
        v = _vehicle(profile)
        rng = np.random.default_rng(0)
        weeks = 200
        km = sum(
            t.km for d in range(7 * weeks) for t in plan_day(v, d % 7, rng)
        )  # fmt: skip
        assert km / (7 * weeks) == pytest.approx(v.daily_km, rel=0.1), profile


# -- whole fleets through a twin process --------------------------------------------------------


def _vehicles(url: str) -> dict[str, dict[str, Any]]:
    rows = httpx.get(f"{url}/vehicles", timeout=10.0).json()
    return {r["vehicle_id"]: r for r in rows if r["vehicle_id"].startswith("fleet-")}


@pytest.fixture(scope="module")
def fleet_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A twin of its own: the fleet ids are the same in every run."""
    process = ServiceProcess(log_dir=tmp_path_factory.mktemp("fleet-twin"))
    process.start()
    yield process
    process.stop()


def test_fleet_command_end_to_end(fleet_twin: ServiceProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.json"
    args = ["fleet", "--vehicles", "20", "--days", "2", "--seed", "5", "--fast",
            "--twin-url", fleet_twin.url, "--manifest", str(manifest), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    known = _vehicles(fleet_twin.url)
    assert sorted(known) == [f"fleet-{i:04d}" for i in range(1, 21)]
    record = json.loads(manifest.read_text())
    fleet = {v["vehicle_id"]: v for v in record["fleet"]}
    assert record["seed"] == 5 and record["days"] == 2 and len(fleet) == 20
    assert set(fleet["fleet-0001"]) >= {
        "vehicle_id", "preset", "profile", "climate", "daily_km", "home_charge_limit",
        "plug_in_soc", "dc_fast_share", "home_ac_kw", "annual_mean_ambient_c",
    }  # fmt: skip
    assert [FleetVehicle(**v) for v in record["fleet"]] == draw_fleet(20, seed=5)
    results = {r["vehicle_id"]: r for r in record["results"]}
    assert record["run"]["vehicle_days"] == 40
    km: dict[str, list[float]] = {}
    for vid, telemetry in known.items():
        v = fleet[vid]
        assert telemetry["vehicle_model"] == v["preset"]
        assert 3.0 < telemetry["soc"] <= 98.0
        assert 99.0 < telemetry["soh"] <= 100.0
        assert telemetry["simulated_days"] == pytest.approx(2.0, abs=0.01)
        assert results[vid]["total_distance_km"] == pytest.approx(telemetry["total_distance_km"])
        km.setdefault(v["profile"], []).append(telemetry["total_distance_km"])
    assert min(km["taxi"]) > max(km["rarely_driven"])
    assert np.mean(km["taxi"]) > np.mean(km["commute"]) > np.mean(km["rarely_driven"])


def test_a_second_run_needs_replace(
    fleet_twin: ServiceProcess, caplog: pytest.LogCaptureFixture
) -> None:
    args = ["fleet", "--vehicles", "3", "--days", "1", "--seed", "5", "--fast",
            "--twin-url", fleet_twin.url, "--no-progress"]  # fmt: skip
    main(args)  # the fleet exists (whatever ran before)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(args) == 4
    assert "--replace" in caplog.text
    assert main([*args, "--replace"]) == 0
    assert _vehicles(fleet_twin.url)["fleet-0001"]["simulated_days"] == pytest.approx(1.0)


def test_unreachable_twin_and_unknown_preset(
    fleet_twin: ServiceProcess, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        assert main(["fleet", "--vehicles", "2", "--days", "1", "--twin-url", url]) == 1
    assert time.monotonic() - started < 10.0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unreachable" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()
    with pytest.raises(FleetError) as info:
        run_fleet(draw_fleet(2, 0, presets=["nope"]), 1, twin_url=fleet_twin.url)
    assert info.value.code == 2 and "nope" in str(info.value)


def test_a_stopped_run_ends_after_the_days_in_flight(fleet_twin: ServiceProcess) -> None:
    # Paced: the second day is due 20 s after the first; stop while waiting for it.
    stop = threading.Event()
    timer = threading.Timer(3.0, stop.set)
    timer.start()
    try:
        fleet = draw_fleet(4, seed=11)
        started = time.monotonic()
        result = run_fleet(fleet, 3, seed=11, twin_url=fleet_twin.url, speedup=DAY_S / 20.0,
                           replace=True, progress=False, stop=stop)  # fmt: skip
    finally:
        timer.cancel()
    assert result.code == 130
    assert result.vehicle_days == 4  # all of day 1, none of day 2
    assert time.monotonic() - started < 10.0
    assert "stopped" in result.summary_line()


def test_ctrl_c_stops_the_command_cleanly(fleet_twin: ServiceProcess) -> None:
    # Day 2 is due 30 s after the start: Ctrl-C once day 1 is in (the last five ids are new
    # to this twin, so seeing them means their day 1 landed).
    cmd = [sys.executable, "-m", "bridge", "fleet", "--vehicles", "25", "--days", "5",
           "--speedup", str(DAY_S / 30.0), "--replace", "--seed", "12",
           "--twin-url", fleet_twin.url]  # fmt: skip
    process = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60.0
        new = {f"fleet-{i:04d}" for i in range(21, 26)}
        while time.monotonic() < deadline and not new <= set(_vehicles(fleet_twin.url)):
            assert process.poll() is None
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "fleet stopped: 25 vehicles × 5 days, 25/125 vehicle-days" in err
    known = _vehicles(fleet_twin.url)
    days = [known[f"fleet-{i:04d}"]["simulated_days"] for i in range(1, 26)]
    assert days == pytest.approx([1.0] * 25)


def test_rounds_of_several_days_and_coarse_drives(fleet_twin: ServiceProcess) -> None:
    fleet = draw_fleet(6, seed=21)
    with TwinClient(fleet_twin.url) as client:
        result = run_fleet(fleet, 3, seed=21, client=client, round_days=3, drive_window_s=10.0,
                           replace=True, progress=False)  # fmt: skip
        assert client.health()  # the borrowed connection pool is still open
    assert result.code == 0 and result.vehicle_days == 18
    # One request per vehicle for all three days, plus the read-backs of DC stops.
    assert result.requests <= 6 + 4 * sum(run.dc_sessions for run in result.runs)
    known = _vehicles(fleet_twin.url)
    for v in fleet:
        assert known[v.vehicle_id]["simulated_days"] == pytest.approx(3.0)
