"""kernel.run reuses a sample's decay factors for the next sample of the same sub-step length;
computed afresh for every sample (as the test's own loop does) they give the same numbers."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from twin_service.models import aging, kernel
from twin_service.models.pack import new_pack_state
from twin_service.presets import PRESETS, pack_params


@numba.njit
def _run_by_samples(dt_s, power_w, current_a, ambient_c, distance_m, mode, p, tab, s, model_id,
                    off, capacity_terms, resistance_terms, multiplier, out):  # fmt: skip
    soh = aging.state_of_health(s, capacity_terms)
    rf = aging.resistance_factor(s, resistance_terms)
    sens = np.zeros(kernel.N_SENS)
    for k in range(dt_s.shape[0]):
        soh, rf, _ = kernel._sample(k, dt_s, power_w, current_a, ambient_c, distance_m, mode,
                                    p, tab, s, model_id, off, capacity_terms,
                                    resistance_terms, multiplier, out, soh, rf, False, sens,
                                    kernel.NO_FACTORS)  # fmt: skip


def _drive(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    dt = rng.choice([0.1, 1.0, 7.0, 45.0, 3600.0], n)
    power = np.where(rng.random(n) < 0.5, rng.uniform(-150e3, 250e3, n), np.nan)
    power[rng.random(n) < 0.1] = 0.0
    current = np.where(np.isnan(power), rng.uniform(-300, 400, n), np.nan)
    ambient = rng.uniform(-20, 40, n)
    distance = rng.uniform(0, 30, n) * dt
    mode = rng.choice([0, 0, 0, kernel.MODE_CHARGING, kernel.MODE_PRECONDITION], n)
    return dt, power, current, ambient, distance, mode.astype(np.int64)


@pytest.mark.parametrize("model", aging.MODEL_NAMES)
@pytest.mark.parametrize("vehicle", sorted(PRESETS))
@pytest.mark.parametrize("seed", range(4))
def test_run_and_sample_by_sample_agree(model: str, vehicle: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = pack_params(PRESETS[vehicle])
    inputs = _drive(rng, 300)
    model_id = aging.MODEL_IDS[model]
    start = new_pack_state(soc=float(rng.uniform(0.2, 0.9))).vector
    results = []
    for loop in (kernel.run, _run_by_samples):
        s = start.copy()
        out = np.empty((300, kernel.N_OUT))
        loop(*inputs, params.kernel_vector, params.kernel_tables, s, model_id,
             int(aging.OFFSETS[model_id]), aging.CAPACITY_TERMS, aging.RESISTANCE_TERMS,
             100.0, out)  # fmt: skip
        results.append((s, out))
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])
