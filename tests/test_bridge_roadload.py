"""Road-load model and bundled drive cycles: distances, force balance, regen split."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from bridge.cycles import available_cycles, load_cycle
from bridge.roadload import (
    AIR_DENSITY_KG_M3,
    GRAVITY_M_S2,
    RoadLoadParams,
    regen_fraction,
    resample,
    road_load,
    samples_from_trace,
)

# NREL FASTSim 2022 Tesla Model 3 RWD (REFERENCES.md), final drive from the BeamNG recording.
MODEL3 = RoadLoadParams(
    mass_kg=1752.0,
    cd=0.23,
    frontal_area_m2=2.22,
    crr=0.007,
    wheel_radius_m=0.33435,
    final_drive_ratio=7.94,
    rotating_mass_factor=1.05,
    motor_peak_w=239e3,
)

# shared/data/README.md: duration s, distance km
CYCLE_TABLE = {
    "udds": (1369, 11.990),
    "hwfet": (765, 16.507),
    "us06": (600, 12.888),
    "wltc": (1800, 23.266),
    "wltc3a": (1800, 23.194),
}


@pytest.mark.parametrize("name", sorted(CYCLE_TABLE))
@pytest.mark.parametrize("sample_hz", [None, 10.0])
def test_cycle_distance_and_duration_match_the_table(name: str, sample_hz: float | None) -> None:
    duration_s, distance_km = CYCLE_TABLE[name]
    trace = load_cycle(name)
    samples = list(samples_from_trace(trace.time_s, trace.speed_m_s, MODEL3, sample_hz=sample_hz))
    assert sum(s.dt_s for s in samples) == pytest.approx(duration_s, abs=1e-6)
    km = sum(s.distance_m for s in samples) / 1000.0
    assert km == pytest.approx(distance_km, rel=0.005)
    assert km == pytest.approx(distance_km, abs=0.0006)  # the table rounds to metres
    assert len(samples) == duration_s * (sample_hz or 1)


def test_every_bundled_cycle_loads() -> None:
    for name in available_cycles():
        trace = load_cycle(name)
        assert trace.speed_m_s[0] == 0.0 and trace.speed_m_s[-1] == 0.0
        assert np.all(np.diff(trace.time_s) > 0)


def test_unknown_cycle_names_the_choices() -> None:
    with pytest.raises(ValueError, match="udds"):
        load_cycle("nedc")


def test_constant_speed_force_balance() -> None:
    v = 20.0
    result = road_load(np.array([0.0, 1.0]), np.array([v, v]), MODEL3)
    force = 0.5 * AIR_DENSITY_KG_M3 * 0.23 * 2.22 * v**2 + 0.007 * 1752.0 * GRAVITY_M_S2
    assert result.wheel_power_w[0] == pytest.approx(force * v, rel=1e-12)
    assert result.motor_power_w[0] == pytest.approx(force * v, rel=1e-12)
    (sample,) = samples_from_trace(np.array([0.0, 1.0]), np.array([v, v]), MODEL3)
    motor = sample.motors[0]
    # wheel torque = F·r, motor torque = wheel torque / final drive, speed = v/r · final drive
    assert motor.torque_nm == pytest.approx(force * 0.33435 / 7.94, rel=1e-12)
    assert motor.speed_rad_s == pytest.approx(v / 0.33435 * 7.94, rel=1e-12)
    assert sample.throttle == pytest.approx(force * v / 239e3, abs=1e-4)
    assert sample.brake == 0.0


def test_grade_adds_potential_energy_rate() -> None:
    v, grade = 10.0, 0.05
    flat = road_load(np.array([0.0, 1.0]), np.array([v, v]), MODEL3)
    hill = road_load(np.array([0.0, 1.0]), np.array([v, v]), MODEL3, np.array([grade, grade]))
    theta = math.atan(grade)
    rolling_change = 0.007 * 1752.0 * GRAVITY_M_S2 * (math.cos(theta) - 1.0) * v
    expected = 1752.0 * GRAVITY_M_S2 * math.sin(theta) * v + rolling_change
    assert hill.wheel_power_w[0] - flat.wheel_power_w[0] == pytest.approx(expected, rel=1e-9)


def test_inertia_energy_returns_to_zero_over_a_stop_to_stop_trace() -> None:
    lossless = RoadLoadParams(
        mass_kg=1500.0,
        cd=0.0,
        frontal_area_m2=2.0,
        crr=0.0,
        wheel_radius_m=0.3,
        final_drive_ratio=9.0,
        rotating_mass_factor=1.04,
    )
    t = np.arange(0.0, 31.0)
    v = np.concatenate([np.linspace(0, 25, 11), np.full(10, 25.0), np.linspace(25, 0, 10)])
    result = road_load(t, v, lossless)
    assert np.sum(result.wheel_power_w * result.dt_s) == pytest.approx(0.0, abs=1e-6)
    accel_energy = np.sum(np.maximum(result.wheel_power_w, 0) * result.dt_s)
    assert accel_energy == pytest.approx(0.5 * 1500.0 * 1.04 * 25.0**2, rel=1e-12)


def test_braking_is_split_between_regen_and_friction() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([30.0, 25.0, 1.0, 0.0])
    result = road_load(t, v, MODEL3)
    braking = result.wheel_power_w < 0
    assert braking.all()
    np.testing.assert_allclose(
        result.motor_power_w + result.friction_brake_w, result.wheel_power_w, rtol=1e-12
    )
    share = result.motor_power_w / result.wheel_power_w
    np.testing.assert_allclose(share, regen_fraction(result.speed_m_s, MODEL3), rtol=1e-12)
    assert share[0] > 0.97  # FASTSim: ~98 % at speed
    assert share[2] < 0.5  # little regen near standstill
    assert np.all(result.brake > 0)


def test_regen_power_limit_sends_the_rest_to_the_friction_brake() -> None:
    capped = replace(MODEL3, max_regen_w=20e3)
    result = road_load(np.array([0.0, 1.0]), np.array([30.0, 22.0]), capped)
    assert result.motor_power_w[0] == pytest.approx(-20e3)
    assert result.friction_brake_w[0] == pytest.approx(result.wheel_power_w[0] + 20e3)


def test_traction_is_capped_at_motor_peak_power() -> None:
    weak = replace(MODEL3, motor_peak_w=50e3)
    result = road_load(np.array([0.0, 1.0]), np.array([20.0, 25.0]), weak)
    assert result.wheel_power_w[0] > 50e3
    assert result.motor_power_w[0] == pytest.approx(50e3)
    assert result.traction_limited == 1
    assert result.throttle[0] == 1.0


def test_dual_motor_split_keeps_total_power() -> None:
    dual = replace(MODEL3, torque_split=(0.4, 0.6))
    (sample,) = samples_from_trace(np.array([0.0, 1.0]), np.array([10.0, 12.0]), dual)
    total = sum(m.power_w for m in sample.motors)
    single = road_load(np.array([0.0, 1.0]), np.array([10.0, 12.0]), MODEL3).motor_power_w[0]
    assert total == pytest.approx(single, rel=1e-12)
    assert sample.motors[0].torque_nm / sample.motors[1].torque_nm == pytest.approx(0.4 / 0.6)


def test_standstill_sends_zero_torque_and_speed() -> None:
    (sample,) = samples_from_trace(np.array([0.0, 1.0]), np.array([0.0, 0.0]), MODEL3)
    assert sample.motors[0].torque_nm == 0.0 and sample.motors[0].speed_rad_s == 0.0
    assert sample.wheel_speed_m_s == 0.0


def test_resample_keeps_endpoints_and_duration() -> None:
    t = np.array([0.0, 1.0, 2.5])
    v = np.array([0.0, 10.0, 0.0])
    grid, values = resample(t, v, 4.0)
    assert grid[0] == 0.0 and grid[-1] == 2.5
    assert np.all(np.diff(grid) > 0) and np.max(np.diff(grid)) <= 0.25 + 1e-12
    assert np.trapezoid(values, grid) == pytest.approx(np.trapezoid(v, t))


def test_params_from_a_service_preset_object() -> None:
    preset = {
        "id": "ev",
        "drivetrain": {"motors": ["frontMotor", "rearMotor"], "motor_peak_kw": 150.0},
        "roadload": {
            "mass_kg": 2000,
            "cd": 0.3,
            "frontal_area_m2": 2.5,
            "crr": 0.009,
            "wheel_radius_m": 0.35,
            "final_drive_ratio": 9.0,
            "rotating_mass_factor": 1.03,
        },
    }
    params = RoadLoadParams.from_preset(preset)
    assert params.torque_split == (0.5, 0.5)
    assert params.motor_peak_w == 300e3  # motor_peak_kw is per motor
    assert params.rotating_mass_factor == 1.03
    assert params.source == "ev"
    with pytest.raises(ValueError, match="roadload"):
        RoadLoadParams.from_preset({"id": "x", "drivetrain": {}})


def test_params_from_the_bundled_twin_service_presets() -> None:
    from bridge.presets import local_preset

    params = RoadLoadParams.from_preset(local_preset("Model3_2024"))
    assert (params.mass_kg, params.cd, params.frontal_area_m2) == (1752.0, 0.23, 2.22)
    assert (params.crr, params.wheel_radius_m, params.final_drive_ratio) == (0.007, 0.33435, 7.94)
    assert params.motor_peak_w == 239e3


def _stop_run(socs: list[float], to: float = 0.8) -> tuple[int, int]:
    """Samples a charging stop yields while the service reports `socs` in turn, and how many
    read-backs it made."""
    from bridge.sources.cycle import ChargeStop, charge_stop

    reads = iter(socs)
    calls = 0

    def feedback() -> float | None:
        nonlocal calls
        calls += 1
        return next(reads, None)

    stop = ChargeStop(to=to, below=0.5, power_kw=50.0, step_s=10.0, check_s=300.0)
    return sum(1 for _ in charge_stop(stop, feedback)), calls


def test_a_charging_stop_waits_for_a_cold_pack_to_warm() -> None:
    # plugged in at 0.3; the pack takes nothing for two read-backs (heating), then charges
    samples, calls = _stop_run([0.3, 0.3, 0.3, 0.5, 0.8])
    assert calls == 5 and samples > 0


def test_a_charging_stop_ends_when_a_near_full_pack_takes_nothing() -> None:
    samples, calls = _stop_run([0.3, 0.6, 0.92, 0.92, 0.95], to=1.0)
    assert calls == 4  # ended at the first read-back without progress above 90 %
    samples, calls = _stop_run([0.3] * 20)
    assert calls == 1 + 6  # at most 30 minutes (six 5-minute chunks) without progress
