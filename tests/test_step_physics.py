"""Physics invariants and published reference values, through POST /step."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.models.laws import arrhenius
from twin_service.presets import PRESETS
from twin_service.settings import Settings

SV1 = PRESETS["sv1ev3"]
CAPACITY_AH = SV1.pack.capacity_ah


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def step(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/step", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def drive_profile(t: np.ndarray) -> np.ndarray:
    """A smooth power demand (kW) with discharge and regeneration."""
    return 25.0 + 45.0 * np.sin(t / 37.0) + 15.0 * np.sin(t / 5.3)


def test_charge_balance(client: TestClient) -> None:
    t = np.arange(0, 1800, 1.0)
    samples = [{"dt_s": 1.0, "power_kw": float(p)} for p in drive_profile(t)]
    samples += [{"dt_s": 0.5, "current_a": -150.0}] * 600
    out = step(client, vehicle_id="charge", samples=samples, options={"trace": True})
    trace = out["trace"]
    soc = np.array([0.85] + [row["soc"] for row in trace])
    soh = np.array([1.0] + [row["soh"] for row in trace])
    dt = np.array([s["dt_s"] for s in samples])
    current = np.array([row["current"] for row in trace])
    # Coulomb counting on the aged capacity at the start of each sample.
    charge_from_soc = np.sum(-np.diff(soc) * soh[:-1]) * CAPACITY_AH * 3600.0
    charge_from_current = np.sum(current * dt)
    assert abs(charge_from_soc - charge_from_current) <= 1e-9 * np.sum(np.abs(current * dt))
    throughput_ah = np.sum(np.abs(current * dt)) / 3600
    assert out["state"]["throughput_ah"] == pytest.approx(throughput_ah, rel=1e-9)


def test_terminal_energy_matches_counters(client: TestClient) -> None:
    t = np.arange(0, 1200, 0.5)
    samples = [{"dt_s": 0.5, "power_kw": float(p)} for p in drive_profile(t)]
    samples += [{"dt_s": 1800.0, "power_kw": -11.0, "charging": True}]  # sub-stepped sample
    out = step(client, vehicle_id="energy", samples=samples, options={"trace": True})
    trace = out["trace"]
    dt = np.array([s["dt_s"] for s in samples])
    v = np.array([r["voltage"] for r in trace])
    i = np.array([r["current"] for r in trace])
    net_kwh = np.sum(v * i * dt) / 3.6e6
    st = out["state"]
    assert st["energy_discharged_kwh"] > 1.0 and st["energy_charged_kwh"] > 1.0
    counters_kwh = st["energy_discharged_kwh"] - st["energy_charged_kwh"]
    assert net_kwh == pytest.approx(counters_kwh, rel=1e-9)
    # Power demand is met where the pack allows it: P = V * I.
    p = np.array([r["power_kw"] for r in trace])
    assert np.allclose(p, v * i / 1000.0, rtol=1e-9)
    assert np.allclose(p[:-1], drive_profile(t), rtol=1e-9, atol=1e-9)
    assert out["telemetry"]["is_charging"] is True


def test_thermal_steady_state(client: TestClient) -> None:
    vehicle = SV1.model_dump(exclude_computed_fields=True)
    vehicle["id"] = "fast-thermal"
    vehicle["pack"]["heat_capacity_j_k"] = 7000.0  # tau = C/(hA) ~ 100 s
    vehicle["thermal_management"] = None  # the passive lumped model alone
    r_cell = 0.0006  # one resistance at every SOC (the map's SOC shape aside), Arrhenius in T
    vehicle["pack"]["cell_resistance"] = {
        "soc": [0.0, 1.0], "temperature_c": [25.0], "discharge_ohm": [[r_cell, r_cell]],
        "charge_ohm": [[r_cell, r_cell]],
    }  # fmt: skip
    current, ambient = 200.0, 20.0
    out = step(
        client,
        vehicle_id="thermal",
        vehicle=vehicle,
        state={"soc": 1.0},
        samples=[{"dt_s": 1.0, "current_a": current, "ambient_c": ambient}] * 2500,
    )
    pack = vehicle["pack"]
    r_25 = r_cell * pack["cells_series"]
    rf = out["state"]["resistance_factor"]
    temp = ambient
    for _ in range(100):  # T = T_amb + I^2 R(T) / (hA)
        r = r_25 * rf * float(arrhenius(temp, -pack["activation_energy_j_mol"]))
        temp = ambient + current**2 * r / pack["conductance_w_k"]
    assert temp - ambient > 3.0
    assert out["state"]["temperature_c"] == pytest.approx(temp, abs=0.1)


@pytest.mark.parametrize("slow_hz", [1.0])
def test_sample_rate_independence(client: TestClient, slow_hz: float) -> None:
    results = {}
    for hz in (10.0, slow_hz):
        dt = 1.0 / hz
        t = np.arange(0, 3600, dt)
        # The same drive: each sample holds the mean demand of its interval.
        fine = drive_profile(np.arange(0, 3600, 0.01) + 0.005).reshape(len(t), -1).mean(axis=1)
        samples = [{"dt_s": dt, "power_kw": float(p), "ambient_c": 30.0} for p in fine]
        results[hz] = step(client, vehicle_id=f"rate-{hz}", samples=samples)["state"]
    fast, slow = results[10.0], results[slow_hz]
    assert abs(fast["soc"] - slow["soc"]) * 100 < 0.1
    assert abs(fast["temperature_c"] - slow["temperature_c"]) < 0.2
    assert fast["temperature_c"] > 31.0  # the drive heats the pack measurably


def _assert_close(a: Any, b: Any, path: str = "state") -> None:
    """Same physics: every field but the stored rev."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a.keys() - {"rev"}:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_one_batch_equals_chained_single_samples(client: TestClient) -> None:
    rng = np.random.default_rng(7)
    samples: list[dict[str, Any]] = []
    for k in range(240):
        kind = k % 4
        s: dict[str, Any] = {"dt_s": float(rng.choice([0.1, 1.0, 2.5])), "ambient_c": 18.0}
        if kind == 0:
            s["motors"] = [
                {
                    "torque_nm": float(rng.uniform(-150, 250)),
                    "speed_rad_s": float(rng.uniform(0, 900)),
                }
            ]
            s["wheel_speed_m_s"] = float(rng.uniform(0, 30))
        elif kind == 1:
            s["power_kw"] = float(rng.uniform(-60, 120))
        elif kind == 2:
            s["current_a"] = float(rng.uniform(-200, 300))
        else:
            s["power_kw"] = 0.0
            s["dt_s"] = 4000.0  # long rest: sub-stepped
        samples.append(s)
    # A long charge and discharge so half-cycles reverse inside the batch.
    samples += [{"dt_s": 60.0, "current_a": -200.0}] * 40
    samples += [{"dt_s": 60.0, "current_a": 250.0}] * 30
    opts = {"aging_model": "naumann", "time_multiplier": 50}
    batch = step(client, vehicle_id="batch", samples=samples, options=opts)
    state = None
    for s in samples:
        state = step(client, vehicle_id="chain", state=state, samples=[s], options=opts)["state"]
    assert (
        batch["state"]["aging"]["naumann"]["half_cycle"]["loss_sq_start"] > 0
    )  # a reversal happened
    _assert_close(batch["state"], state)


def test_naumann_calendar_check_value(client: TestClient) -> None:
    out = step(
        client,
        vehicle_id="storage",
        state={"soc": 0.5, "temperature_c": 25},
        samples=[{"dt_s": 86400, "current_a": 0, "ambient_c": 25}] * 365,
    )
    assert out["state"]["soh"] == pytest.approx(0.9575, abs=0.002)
    assert out["state"]["resistance_factor"] == pytest.approx(1.0168, abs=0.002)
    assert out["telemetry"]["simulated_years"] == pytest.approx(1.0)


def test_seed_demo_model_check_value(client: TestClient) -> None:
    out = step(
        client,
        vehicle_id="demo",
        state={"soc": 0.5, "temperature_c": 25},
        samples=[{"dt_s": 1.0, "current_a": 0, "ambient_c": 25}] * 120,
        options={"demo_mode": True},
    )
    tel = out["telemetry"]
    assert tel["soh"] == pytest.approx(99.82, abs=0.01)
    assert tel["demo_mode"] is True and tel["time_multiplier"] == 10000
    assert tel["aging_model"] == "seed"
    assert out["state"]["soc"] == 0.5  # the multiplier never touches SOC or temperature
    assert out["state"]["elapsed_s"] == pytest.approx(120.0)
    assert out["state"]["aged_s"] == pytest.approx(1.2e6)


def test_power_limits_are_applied_and_reported(client: TestClient) -> None:
    out = step(
        client,
        vehicle_id="limits",
        samples=[{"dt_s": 1.0, "power_kw": 500.0}],
        options={"trace": True},
    )
    tel = out["telemetry"]
    assert tel["power_limited"] is True
    assert tel["power_kw"] == pytest.approx(tel["max_discharge_kw"], rel=0.02)
    assert tel["power_kw"] <= SV1.pack.max_discharge_kw + 1e-9
    regen = step(
        client, vehicle_id="limits", state=out["state"], samples=[{"dt_s": 1.0, "power_kw": -400.0}]
    )["telemetry"]
    assert regen["is_regen"] is True and regen["power_limited"] is True
    assert -regen["power_kw"] <= SV1.pack.max_regen_kw + 1e-9
    assert regen["voltage"] <= SV1.pack.cell_v_max * SV1.pack.cells_series + 1e-9


def test_empty_pack_stops_discharging(client: TestClient) -> None:
    """Discharge stops at the bottom of the BMS window (or at v_min, whichever comes first);
    a pack seeded below the window gives nothing more."""
    out = step(
        client,
        vehicle_id="empty",
        state={"soc": 0.06},
        samples=[{"dt_s": 10.0, "power_kw": 80.0}] * 100,
    )
    st, tel = out["state"], out["telemetry"]
    assert SV1.pack.soc_min - 1e-12 <= st["soc"] < 0.06
    assert tel["voltage"] >= SV1.pack.cell_v_min * SV1.pack.cells_series - 1e-6
    assert tel["power_limited"] is True
    below = step(client, vehicle_id="below", state={"soc": 0.02},
                 samples=[{"dt_s": 10.0, "power_kw": 80.0}] * 3)  # fmt: skip
    assert below["state"]["soc"] == 0.02
    assert below["telemetry"]["current"] == 0.0 and below["telemetry"]["power_limited"] is True


def test_drained_pack_state_can_be_sent_back(client: TestClient) -> None:
    """Emptying the pack exactly to its limit must not return an SOC a few ulps below 0 (a
    vehicle whose window reaches SOC 0)."""
    vehicle = SV1.model_dump(exclude_computed_fields=True)
    vehicle["id"] = "no-window"
    vehicle["pack"]["soc_min"] = 0.0
    vehicle["pack"]["cell_v_min"] = 0.5  # so the SOC limit, not the voltage, stops it
    state: dict[str, Any] | None = {"soc": 0.01}
    for _ in range(5):
        out = step(
            client,
            vehicle_id="drain",
            vehicle=vehicle,
            state=state,
            samples=[
                {"dt_s": 0.7, "motors": [{"torque_nm": 300.0, "speed_rad_s": 700.0}]},
                {"dt_s": 0.3, "motors": [{"torque_nm": -80.0, "speed_rad_s": 700.0}]},
            ]
            * 40,
            options={"trace": True},
        )
        state = out["state"]
        assert 0.0 <= state["soc"] <= 1.0
        assert all(0.0 <= row["soc"] <= 1.0 for row in out["trace"])
    assert state["soc"] < 1e-3
