"""The compiled sequential kernel and the numpy waveform relaxation integrate the same
discrete equations: they must agree to 1e-9 on every output."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twin_service.models import kernel_jit
from twin_service.models.pack import AgingSettings, DriveInput, new_pack_state, simulate
from twin_service.presets import PRESETS, pack_params

pytestmark = pytest.mark.skipif(not kernel_jit.AVAILABLE, reason="numba is not installed")


def mixed_drive(seed: int) -> DriveInput:
    rng = np.random.default_rng(seed)
    parts_dt, parts_p, parts_i = [], [], []
    for _ in range(30):
        n = int(rng.integers(50, 400))
        dt = float(rng.choice([0.1, 1.0, 30.0]))
        mode = rng.integers(0, 4)
        parts_dt.append(np.full(n, dt))
        if mode == 0:  # driving with regeneration
            parts_p.append(rng.uniform(-80e3, 150e3, n))
            parts_i.append(np.full(n, np.nan))
        elif mode == 1:  # charging by current
            parts_p.append(np.full(n, np.nan))
            parts_i.append(np.full(n, -rng.uniform(20, 300)))
        elif mode == 2:  # beyond the limits
            parts_p.append(np.full(n, 400e3 * rng.choice([-1, 1])))
            parts_i.append(np.full(n, np.nan))
        else:  # long rests
            parts_dt[-1] = np.full(3, 20000.0)
            parts_p.append(np.zeros(3))
            parts_i.append(np.full(3, np.nan))
    dt = np.concatenate(parts_dt)
    return DriveInput(dt, np.concatenate(parts_p), np.concatenate(parts_i),
                      rng.uniform(-10, 40, dt.shape[0]), np.zeros(dt.shape[0]))


@pytest.mark.parametrize(("seed", "model", "multiplier"),
                         [(1, "naumann", 1.0), (2, "naumann", 300.0), (3, "seed", 10000.0)])
def test_kernels_agree(seed: int, model: str, multiplier: float) -> None:
    params = pack_params(PRESETS["Model3_2024"])
    drive = mixed_drive(seed)
    start = new_pack_state(0.6, 15.0, soh=0.97, resistance_factor=1.02)
    aging = AgingSettings(model, multiplier)
    jit = simulate(params, start, drive, aging, kernel="jit")
    ref = simulate(params, start, drive, aging, kernel="numpy")
    assert jit.limited.any() and (jit.current_a < 0).any() and (jit.current_a > 0).any()
    for f in dataclasses.fields(jit.state):
        a, b = getattr(jit.state, f.name), getattr(ref.state, f.name)
        if f.name == "half_cycle":
            for g in dataclasses.fields(a):
                assert getattr(a, g.name) == pytest.approx(getattr(b, g.name), rel=1e-9, abs=1e-12)
        else:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), f.name
    # Currents clipped to the charge left before SOC 0 or 1 amplify SOC round-off, hence the
    # absolute floors (0.1 uA, 0.1 mW).
    atol = {"current_a": 1e-7, "power_w": 1e-4}
    for name in ("soc", "voltage_v", "current_a", "power_w", "temperature_c", "soh",
                 "resistance_factor"):
        np.testing.assert_allclose(getattr(jit, name), getattr(ref, name), rtol=1e-9,
                                   atol=atol.get(name, 1e-9), err_msg=name)
    np.testing.assert_array_equal(jit.limited, ref.limited)
