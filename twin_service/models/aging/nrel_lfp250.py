"""Large-format prismatic LFP/graphite aging after NREL (Gasper et al. 2023).

Gasper et al., J. Energy Storage 73 (2023) 109042, doi:10.1016/j.est.2023.109042; published
as BLAST-Lite `Lfp_Gr_250AhPrismatic` (NREL, BSD-3). A >250 Ah prismatic cell with an
energy-to-power ratio of 6 1/h. Capacity only. Time t in days, T in K, EFC = Ah throughput /
(2 nominal Ah):

    q_loss_t   = k_cal * t^0.526,    k_cal = p1 exp(p2/T) exp(p3 Ua/T)
    q_loss_EFC = k_cyc * EFC^0.828,  k_cyc = (p4 + p5 DOD + p6 C) (exp(p7/T) + exp(-p8/T))

Stress windows: the history is cut at SOC turning points and at most every 1 day or 1 EFC;
within a window k_cal and k_cyc are time averages, DOD = max - min SOC and C the time average
of |dSOC/dt| (1/h, rest included, rates below 0.01/h as 0). At each cut both losses advance by
the published state equation dy = k p (y/k)^((p-1)/p) dx (from y = 0: y = k dx^p). Until the
open window is cut, the loss it would add is reported (`window_capacity_loss`), so SOH moves
smoothly.

The turning points are those of the half-cycles (laws.run_*: a reversal beyond 0.5 % SOC), so
regeneration blips inside a drive do not cut windows.
"""

from __future__ import annotations

import numpy as np

from twin_service.models.aging.base import (
    HC_START,
    AgingModel,
    ForecastStart,
    Validity,
    cycling_flags,
    follow_half_cycle,
    half_cycle_fields,
    temperature_flag,
)
from twin_service.models.constants import KELVIN, SECONDS_PER_DAY
from twin_service.models.forecast import Forecast, Usage, forecast_in_blocks, swing, usage_days
from twin_service.models.jit import jit
from twin_service.models.state import StateBlock, StateField

# Gasper et al. 2023 (BLAST-Lite `_params_life`)
P1 = 8.37e4
P2 = -5.21e3  # K
P3 = -3.56e3  # K/V
P_CAL = 0.526
P4 = 4.38e-8
P5 = 1.55e-8
P6 = 1.68e-7
P7 = 2.19e3  # K
P8 = 1.55e5  # K
P_CYC = 0.828
WINDOW_MAX_S = SECONDS_PER_DAY  # of aging time
WINDOW_MAX_EFC = 1.0
C_RATE_FLOOR = 0.01  # 1/h; slower SOC changes count as rest

VALIDITY = Validity(
    cycling_temperature_c=(10.0, 45.0),
    dod=(0.8, 1.0),
    max_charge_c_rate=0.65,
    max_discharge_c_rate=1.0,
    note="cycle fade extrapolates poorly outside 10-45 degC (Gasper et al. 2023)",
)

LIMITS = VALIDITY.limits()

STATE = StateBlock(
    "nrel_lfp250",
    (
        StateField("cal_capacity_loss", "1", "calendar capacity loss of finished windows",
                   0.0, 1.0),
        StateField("cyc_capacity_loss", "1", "cycle capacity loss of finished windows",
                   0.0, 1.0),
        StateField("window_capacity_loss", "1", "loss the open window adds when it is cut",
                   0.0, 1.0),
        *half_cycle_fields("window"),
        StateField("min_soc", "1", "lowest SOC in the window", -0.01, 1.01, "soc",
                   group="window"),
        StateField("max_soc", "1", "highest SOC in the window", -0.01, 1.01, "soc",
                   group="window"),
        StateField("aging_s", "s", "aging time in the window", group="window"),
        StateField("elapsed_s", "s", "time in the window", group="window"),
        StateField("k_cal_s", "s", "time integral of k_cal (aging time)", group="window"),
        StateField("temperature_factor_s", "s", "time integral of exp(p7/T) + exp(-p8/T)",
                   group="window"),
        StateField("c_rate_s", "s/h", "time integral of |dSOC/dt|", group="window"),
        StateField("efc", "1", "equivalent full cycles in the window", group="window"),
    ),
)  # fmt: skip
CAL, CYC, OPEN = (STATE.index(n) for n in (
    "cal_capacity_loss", "cyc_capacity_loss", "window_capacity_loss"))  # fmt: skip
HC = STATE.index("direction")  # the half_cycle_fields start here
W_MIN, W_MAX, W_AGING, W_REAL, W_KCAL, W_FT, W_C, W_EFC = (
    STATE.index(n) for n in ("min_soc", "max_soc", "aging_s", "elapsed_s", "k_cal_s",
                             "temperature_factor_s", "c_rate_s", "efc"))  # fmt: skip


@jit
def anode_potential(soc):
    """Graphite potential vs Li (V) at the lithiation the SOC implies (Safari & Delacourt
    2011, J. Electrochem. Soc. 158:A562, as used by BLAST-Lite)."""
    xa = 8.5e-3 + soc * (0.78 - 8.5e-3)
    return (
        0.6379
        + 0.5416 * np.exp(-305.5309 * xa)
        + 0.044 * np.tanh(-(xa - 0.1958) / 0.1088)
        - 0.1978 * np.tanh((xa - 1.0571) / 0.0854)
        - 0.6875 * np.tanh((xa + 0.0117) / 0.0529)
        - 0.0175 * np.tanh((xa - 0.5692) / 0.0875)
    )


@jit
def calendar_rate(soc, temperature_c):
    """k_cal in 1/day^0.526 (floats or arrays)."""
    t_k = temperature_c + KELVIN
    return abs(P1) * np.exp(P2 / t_k) * np.exp(P3 * anode_potential(soc) / t_k)


@jit
def cycle_temperature_factor(temperature_c):
    t_k = temperature_c + KELVIN
    return np.exp(P7 / t_k) + np.exp(-P8 / t_k)


@jit
def cycle_rate(dod, c_rate, temperature_factor):
    """k_cyc in 1/EFC^0.828."""
    return (P4 + P5 * dod + P6 * c_rate) * temperature_factor


@jit
def power_state_increment(y0: float, dx: float, k: float, p: float) -> float:
    """Increase of y = k x^p over dx, continued from y0 (BLAST-Lite's power state)."""
    if dx <= 0.0 or k <= 0.0:
        return 0.0
    if y0 == 0.0:
        return k * dx**p
    return k * p * (y0 / k) ** ((p - 1.0) / p) * dx


@jit
def _window_increments(s, off):
    """(calendar, cycle) loss the open window adds when cut now."""
    aging_s = s[off + W_AGING]
    if aging_s <= 0.0:
        return 0.0, 0.0
    real_s = s[off + W_REAL]
    c_rate = s[off + W_C] / real_s if real_s > 0.0 else 0.0
    dod = s[off + W_MAX] - s[off + W_MIN]
    k_cal = s[off + W_KCAL] / aging_s
    k_cyc = cycle_rate(dod, c_rate, s[off + W_FT] / aging_s)
    d_cal = power_state_increment(s[off + CAL], aging_s / SECONDS_PER_DAY, k_cal, P_CAL)
    d_cyc = power_state_increment(s[off + CYC], s[off + W_EFC], k_cyc, P_CYC)
    return d_cal, d_cyc


@jit
def step(s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah):
    """Advance the open stress window over one sub-step (rates at its starting SOC and
    temperature) and cut it where the model says; returns out-of-range flags."""
    s[off + W_AGING] += dta
    s[off + W_REAL] += dt
    s[off + W_KCAL] += calendar_rate(soc, temp) * dta
    s[off + W_FT] += cycle_temperature_factor(temp) * dta
    rate = abs(new_soc - soc) / (dt / 3600.0)
    if rate >= C_RATE_FLOOR:
        s[off + W_C] += rate * dt
    s[off + W_EFC] += multiplier * abs(cur) * dt / 3600.0 / (2.0 * cap_ah)
    s[off + W_MIN] = min(s[off + W_MIN], new_soc)
    s[off + W_MAX] = max(s[off + W_MAX], new_soc)

    flags = temperature_flag(cur, cap_ah, temp, LIMITS)
    # The fitted range is about the half-cycle: its depth and its C-rate while current flowed
    # (so a DC fast charge followed by a rest is still a fast charge).
    turned, charging, doc, c_run = follow_half_cycle(s, off + HC, new_soc, cur, dt, cap_ah)
    if turned:
        flags |= cycling_flags(charging, c_run, doc, LIMITS)
    if turned or s[off + W_AGING] >= WINDOW_MAX_S or s[off + W_EFC] >= WINDOW_MAX_EFC:
        d_cal, d_cyc = _window_increments(s, off)
        s[off + CAL] += d_cal
        s[off + CYC] += d_cyc
        s[off + OPEN] = 0.0
        for i in (W_AGING, W_REAL, W_KCAL, W_FT, W_C, W_EFC):
            s[off + i] = 0.0
        if turned:  # the next window starts at the turning point, going back
            ext = s[off + HC + HC_START]
            s[off + W_MIN] = min(ext, new_soc)
            s[off + W_MAX] = max(ext, new_soc)
        else:
            s[off + W_MIN] = new_soc
            s[off + W_MAX] = new_soc
    else:
        d_cal, d_cyc = _window_increments(s, off)
        s[off + OPEN] = d_cal + d_cyc
    return flags


def forecast(
    start: ForecastStart, usage: Usage, capacity_kwh: np.ndarray, years: float
) -> Forecast:
    return forecast_in_blocks(_forecast_block, start, usage, capacity_kwh, years)


_SWEEPS = 2  # the swing depends on the faded capacity; see naumann._forecast_block


def _forecast_block(
    start: ForecastStart, usage: Usage, capacity_kwh: np.ndarray, years: float
) -> Forecast:
    days = usage_days(usage, capacity_kwh, years)
    n = start.block.shape[0]
    n_steps = days.t_years.shape[0] - 1
    soh = np.empty((n, n_steps + 1))
    b = np.ascontiguousarray(start.block)
    other = np.ascontiguousarray(start.other_capacity_loss, dtype=float) + b[:, OPEN]
    _forecast_kernel(b[:, CAL].copy(), b[:, CYC].copy(), other, *days.vehicle_columns(),
                     *days.operating(), days.step_days, soh)  # fmt: skip
    rf = np.broadcast_to(1.0 + start.other_resistance_increase[:, None], soh.shape)
    return Forecast(days.t_years, soh, rf.copy())


@jit
def _forecast_kernel(cal0, cyc0, other, cap_kwh, daily_kwh, window, soc_max, ambient_c,
                     drive_c, charge_c, op_fraction, op_temp_c, step_days,
                     soh_out):  # fmt: skip
    """The repeating day, vehicle by vehicle and week by week: each swing of depth `doc` is
    two windows (discharge, then charge), each half of the swing's share of the day, resting
    at its end. Under stress held over a weekly step, y = k x^p continues exactly on virtual
    x: y^(1/p) grows by k^(1/p) dx (the state equation above is its first-order form). The
    depth depends on the faded capacity: two sweeps, as in naumann's forecast. As in the
    step's windows, k_cal and the cycle temperature factor are time averages over the day: at
    ambient, and at each operating period's pack temperature for its share of the day."""
    n, width = soh_out.shape
    n_steps = width - 1
    soh = np.empty(n_steps)
    for v in range(n):
        amb = ambient_c[v]
        soh0 = 1.0 - cal0[v] - cyc0[v] - other[v]
        k_cal_hi = calendar_rate(soc_max[v], amb)
        f_t = cycle_temperature_factor(amb)
        rest = 1.0
        for j in range(op_fraction.shape[1]):
            rest -= op_fraction[v, j]
        operating = rest < 1.0
        if operating:
            f_t = rest * f_t
            for j in range(op_fraction.shape[1]):
                f_t += op_fraction[v, j] * cycle_temperature_factor(op_temp_c[v, j])
        z_cal0 = cal0[v] ** (1.0 / P_CAL)
        z_cyc0 = cyc0[v] ** (1.0 / P_CYC)
        soh[:] = soh0
        soh_out[v, 0] = soh0
        for _ in range(_SWEEPS):
            cal_sum = 0.0
            cyc_sum = 0.0
            for t in range(n_steps):
                doc, cycles_per_day = swing(cap_kwh[v], daily_kwh[v], window[v], soh[t])
                k_cal = 0.5 * (k_cal_hi + calendar_rate(soc_max[v] - doc, amb))
                if operating:
                    k_cal *= rest
                    for j in range(op_fraction.shape[1]):
                        t_op = op_temp_c[v, j]
                        k_cal += (
                            op_fraction[v, j]
                            * 0.5
                            * (
                                calendar_rate(soc_max[v], t_op)
                                + calendar_rate(soc_max[v] - doc, t_op)
                            )
                        )
                if cycles_per_day > 0.0:
                    window_h = 12.0 / max(cycles_per_day, 1e-12)
                else:
                    window_h = 24.0
                k_cyc = cycle_rate(doc, doc / window_h, f_t)
                efc_step = cycles_per_day * doc * max(soh[t], 0.0) * step_days
                cal_sum += k_cal ** (1.0 / P_CAL) * step_days
                cyc_sum += k_cyc ** (1.0 / P_CYC) * efc_step
                z_cal = z_cal0 + cal_sum
                z_cyc = z_cyc0 + cyc_sum
                soh_out[v, t + 1] = 1.0 - z_cal**P_CAL - z_cyc**P_CYC - other[v]
            for t in range(1, n_steps):
                soh[t] = soh_out[v, t]
        for t in range(width):
            soh_out[v, t] = min(max(soh_out[v, t], 0.0), 1.0)


MODEL = AgingModel(
    name="nrel_lfp250",
    title="NREL large-format LFP/graphite aging (Gasper et al. 2023, BLAST-Lite)",
    cell=">250 Ah prismatic LFP/graphite, energy-to-power 6 1/h",
    sources=("doi:10.1016/j.est.2023.109042", "NREL BLAST-Lite Lfp_Gr_250AhPrismatic (BSD-3)"),
    validity=VALIDITY,
    outputs=("capacity",),
    state=STATE,
    capacity_terms=("cal_capacity_loss", "cyc_capacity_loss", "window_capacity_loss"),
    resistance_terms=(),
    seed_capacity_field="cal_capacity_loss",
    seed_resistance_field=None,
    forecast=forecast,
)
