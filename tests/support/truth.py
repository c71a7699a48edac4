"""Truth packs for the estimator's tests: the twin itself with other parameters, measured by
noisy, biased sensors (deterministic seeds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin_service.models import estimator as E
from twin_service.models.pack import (
    AgingSettings,
    DriveInput,
    Estimation,
    PackState,
    StepResult,
    new_pack_state,
    simulate,
)
from twin_service.presets import PRESETS, pack_params

PARAMS = pack_params(PRESETS["Model3_2024"])
CAPACITY_AH = PARAMS.capacity_ah


def mixed_drive(seconds: int, rng: np.random.Generator) -> np.ndarray:
    """1 Hz pack current of mixed driving: acceleration, cruise, regeneration and stops."""
    cur = np.zeros(seconds)
    k = 0
    while k < seconds:
        length = int(rng.integers(5, 60))
        cur[k : k + length] = rng.choice(
            [rng.uniform(10, 200), rng.uniform(-80, -5), 0.0, rng.uniform(20, 60)]
        )
        k += length
    return cur


def drive_and_charge_day(rng: np.random.Generator, soc: float) -> tuple[np.ndarray, np.ndarray]:
    """(dt_s, current) of one day: an hour of mixed driving, a 0.3 C charge that ends where
    SOC would reach ~95 % (from `soc`, the truth's SOC at the start of the day), rests in 60 s
    samples."""
    drive = mixed_drive(3600, rng)
    used = drive.sum() / (CAPACITY_AH * 3600)
    charge_a = 0.3 * CAPACITY_AH
    charge_s = int(max(0.95 - (soc - used), 0.0) * CAPACITY_AH * 3600 / charge_a)
    charge = np.full(charge_s, -charge_a)
    rest = 86400 - 3600 - charge.shape[0]
    dt = np.concatenate([np.ones(3600 + charge.shape[0]), np.full(rest // 60, 60.0)])
    cur = np.concatenate([drive, charge, np.zeros(rest // 60)])
    return dt, cur


@dataclass
class Truth:
    result: StepResult
    dt_s: np.ndarray
    measured_current_a: np.ndarray
    measured_voltage_v: np.ndarray
    measured_temperature_c: np.ndarray


def measure(
    truth: PackState,
    dt_s: np.ndarray,
    current_a: np.ndarray,
    rng: np.random.Generator,
    bias_a: float = 1.0,
    voltage_std: float = 0.5,
    current_std: float = 0.5,
    temperature_std: float = 0.5,
) -> Truth:
    n = dt_s.shape[0]
    nan = np.full(n, np.nan)
    res = simulate(PARAMS, truth, DriveInput(dt_s, nan, current_a, np.full(n, 25.0),
                   np.zeros(n)), AgingSettings())  # fmt: skip
    moving = res.current_a != 0.0
    meas_i = np.where(moving, res.current_a + bias_a + rng.normal(0, current_std, n), 0.0)
    return Truth(
        res, dt_s, meas_i,
        res.voltage_v + rng.normal(0, voltage_std, n),
        res.temperature_c + rng.normal(0, temperature_std, n),
    )  # fmt: skip


SETTINGS = E.settings_vector(voltage_std_v=0.5, voltage_bias_v=0.0, current_std_a=0.5,
                             temperature_std_c=0.5, soc_std=0.03, gate_sigma=5.0,
                             assimilate=False)  # fmt: skip


def estimate(state: PackState, t: Truth, settings: np.ndarray = SETTINGS) -> StepResult:
    n = t.dt_s.shape[0]
    nan = np.full(n, np.nan)
    drive = DriveInput(t.dt_s, nan, t.measured_current_a, np.full(n, 25.0), np.zeros(n))
    est = Estimation(settings, t.measured_voltage_v, t.measured_temperature_c, nan)
    return simulate(PARAMS, state, drive, AgingSettings(), est)


def start(soc: float) -> PackState:
    """The estimator's start: the nominal pack at `soc`, the service's default priors."""
    state = new_pack_state(soc=soc)
    state.estimator = E.new_estimator(1.0, 1.0, 0.25, 0.1, 0.3, 1.0, 1.06, 0.01, 2.0)
    return state
