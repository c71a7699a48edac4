"""Pure model functions: closed forms, recurrences and reference values."""

from __future__ import annotations

import numpy as np
import pytest

from twin_service.models import cell_data
from twin_service.models.aging import naumann, seed
from twin_service.models.drivetrain import drive_columns, est_pack_current
from twin_service.models.laws import cell_ocv, current_from_power
from twin_service.models.pack import AgingSettings, DriveInput, new_pack_state, simulate
from twin_service.presets import PRESETS, drivetrain_params, on_cycler, pack_params

OCV = (np.array(cell_data.OCV_SOC), np.array(cell_data.OCV_V))


def test_ocv_is_monotone_lfp_plateau() -> None:
    v = np.array([cell_ocv(x, *OCV) for x in np.linspace(0, 1, 1001)])
    assert np.all(np.diff(v) >= 0)
    plateau = [cell_ocv(x, *OCV) for x in np.linspace(0.3, 0.9, 61)]
    assert 3.2 <= min(plateau) and max(plateau) <= 3.35
    assert cell_ocv(0.0, *OCV) == 2.0 and cell_ocv(1.0, *OCV) == 3.6  # the cut-off voltages


def test_dense_ocv_keeps_the_prada2013_nodes() -> None:
    """The dense table passes within 0.1 mV of Prada2013 at the published nodes (REFERENCES)."""
    for soc, v in zip(cell_data.OCV_SOC_COARSE[1:], cell_data.OCV_V_COARSE[1:], strict=True):
        assert cell_ocv(soc, *OCV) == pytest.approx(v, abs=1e-4)


def test_current_from_power_solves_quadratic() -> None:
    for p in (50e3, -40e3, 1.0, -1e-3):
        i = current_from_power(p, 380.0, 0.08)
        assert (380.0 - i * 0.08) * i == pytest.approx(p, rel=1e-12)
        assert np.sign(i) == np.sign(p)


def test_drivetrain_losses_both_ways() -> None:
    params = drivetrain_params(PRESETS["Model3_2024"])
    nan = np.full(2, np.nan)
    # 50 kW motoring and 50 kW regenerating, one motor each (no auxiliary load: aux_kw 0)
    power_w, *_ = drive_columns(
        np.ones(2), nan, nan, np.zeros(2), nan, nan, 25.0, np.array([0, 1]),
        np.array([100.0, -100.0]), np.array([500.0, 500.0]), np.ones(2, dtype=bool), params,
    )  # fmt: skip
    motoring, regen = power_w
    assert motoring > 50e3 and -50e3 < regen < 0
    eta = 50e3 / motoring
    assert regen == pytest.approx(-50e3 * eta)  # same efficiency at the same load
    assert est_pack_current(36.0) == pytest.approx(36000 / (360 * 0.94))


def test_naumann_calendar_reference_value() -> None:
    q, r = naumann.calendar_closed_form(31_536_000, 0.5, 25.0)
    assert 1 - q == pytest.approx(0.9575, abs=5e-5)
    assert 1 + r == pytest.approx(1.0168, abs=5e-5)


def test_naumann_calendar_is_faster_hot_and_full() -> None:
    base, _ = naumann.calendar_closed_form(1e7, 0.5, 25.0)
    hot, _ = naumann.calendar_closed_form(1e7, 0.5, 45.0)
    full, _ = naumann.calendar_closed_form(1e7, 1.0, 25.0)
    assert hot > base and full > base


def test_seed_rates() -> None:
    assert seed.loss_rate_per_s(0.0, 25.0, 0.5) == pytest.approx(1.5e-9)
    assert seed.loss_rate_per_s(1.0, 25.0, 0.9) == pytest.approx(2e-8 + 1e-9 + 7.5e-10)
    assert seed.loss_rate_per_s(0.0, 40.0, 0.1) == pytest.approx(1e-9 * np.e + 6.5e-10)


def _loop_half_cycles(soc_path, cur, dt, cap, multiplier, band=0.005):
    """Scalar reference of the half-cycle bookkeeping: the squared cycle loss and the
    resistance increase of finished half-cycles."""
    d, start, ext, ah, act, lsq, res = 0, soc_path[0], soc_path[0], 0.0, 0.0, 0.0, 0.0
    for s, i in zip(soc_path[1:], cur, strict=True):
        if d == 0 and s != start:
            d, ext = (1 if s > start else -1), start
        if d == -1 and s > ext + band or d == 1 and s < ext - band:
            c = (ah / (act / 3600)) / cap if act > 0 else 0.0
            doc = abs(ext - start)
            fec = multiplier * doc / 2
            lsq += float(naumann.cycle_capacity_factor(c, doc)) ** 2 * fec
            res += float(naumann.cycle_resistance_factor(c, doc)) * fec
            d, start, ah, act = -d, ext, 0.0, 0.0
        ext = min(ext, s) if d == -1 else max(ext, s) if d == 1 else ext
        ah += abs(i) * dt / 3600
        act += dt if abs(i) > 1e-3 * cap else 0.0
    return lsq, res


def test_half_cycle_bookkeeping_matches_scalar_reference() -> None:
    params = pack_params(PRESETS["sv1ev3"])
    rng = np.random.default_rng(3)
    n = 20000
    current = rng.normal(0, 20, n) + 60 * np.sign(np.sin(np.arange(n) / 150))
    drive = DriveInput(np.full(n, 5.0), np.full(n, np.nan), current, np.full(n, 25.0),
                       np.zeros(n))  # fmt: skip
    start = new_pack_state(0.5, 25.0)
    r = simulate(params, start, drive, AgingSettings("naumann", 3.0))
    assert not r.limited.any()
    soc_path = np.concatenate(([0.5], r.soc))
    lsq, res = _loop_half_cycles(soc_path, r.current_a, 5.0, params.capacity_ah, 3.0)
    assert res > 0.0  # many reversals
    assert r.state.field("naumann", "loss_sq_start") == pytest.approx(lsq, rel=1e-12)
    assert r.state.field("naumann", "resistance_start") == pytest.approx(res, rel=1e-12)


def full_cycles_1c(n_cycles: int) -> tuple:
    """n full 1C cycles 0-100 % at 25 degC (CC discharge then CC charge, limits stop at ends),
    on a cycler (no BMS window, taper or thermal management)."""
    params = pack_params(on_cycler(PRESETS["sv1ev3"]))
    i_1c = params.capacity_ah
    current = np.tile([i_1c, -i_1c], n_cycles)
    n = current.shape[0]
    drive = DriveInput(
        np.full(n, 3600.0), np.full(n, np.nan), current, np.full(n, 25.0), np.zeros(n)
    )
    result = simulate(params, new_pack_state(1.0, 25.0), drive, AgingSettings())
    return params, result


@pytest.mark.slow
def test_cycle_aging_follows_naumann_2020() -> None:
    params, result = full_cycles_1c(100)
    s = result.state
    fec = s.throughput_ah / (2 * params.capacity_ah)
    assert 0.9 * 100 < fec < 100  # the aged capacity holds less, the voltage limits cut the ends
    # The voltage limits end each half-cycle short of 0 and 100 %: the closed form at the
    # swing the cycles reached.
    doc = float(result.soc[-2:].max() - result.soc[-2:].min())
    assert 0.9 < doc < 1.0
    expected, expected_r = naumann.cycle_closed_form(fec, 1.0, doc)
    assert s.field("naumann", "cyc_capacity_loss") == pytest.approx(float(expected), rel=0.03)
    # The resistance fit is nearly zero at 1C and steep in C; clipped cycle ends lower the mean
    # C-rate slightly, so bound it between 1C and 0.9C.
    _, r_09 = naumann.cycle_closed_form(fec, 0.9, doc)
    assert float(expected_r) <= s.field("naumann", "cyc_resistance_increase") <= float(r_09)
    assert s.field("naumann", "cal_capacity_loss") > 0
    assert np.all(np.diff(result.soh) <= 1e-15)  # monotone fade
