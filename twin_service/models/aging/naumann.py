"""LFP/graphite aging after Naumann et al. (Sony/Murata US26650FTC1, 3 Ah LFP cell).

Calendar: Naumann et al. 2018, J. Energy Storage 17:153-169, doi:10.1016/j.est.2018.01.019.
Cycle:    Naumann et al. 2020, J. Power Sources 451:227666, doi:10.1016/j.jpowsour.2019.227666.

Capacity losses follow a square-root law in time (calendar) or full equivalent cycles (cycle).
Under changing stress both continue on a virtual time / virtual FEC: with loss Q = k*sqrt(x),
Q_new^2 = Q_old^2 + k_now^2 * dx, which is why the cycle bookkeeping carries squared losses.
Cycles are counted per half-cycle (a run of SOC in one direction, see laws.run_*): each adds
DOC/2 FEC at its mean C-rate; the running half-cycle's loss accrues continuously and equals
the closed form when it ends.

The rate laws take floats (the compiled step) or arrays (the forecast, the closed forms).
"""

from __future__ import annotations

import math

import numpy as np

from twin_service.models.aging.base import (
    HC_ACTIVE,
    HC_AH,
    HC_DIR,
    HC_EXT,
    HC_START,
    AgingModel,
    ForecastStart,
    Validity,
    cycling_flags,
    follow_half_cycle,
    half_cycle_fields,
    mean_c_rate,
    temperature_flag,
)
from twin_service.models.forecast import (
    Forecast,
    Usage,
    UsageDays,
    forecast_in_blocks,
    swing,
    usage_days,
)
from twin_service.models.jit import jit
from twin_service.models.laws import arrhenius
from twin_service.models.state import StateBlock, StateField

# Calendar capacity loss: Q = k_T * k_SOC * sqrt(t[s]) (fraction)
CAL_K_REF = 1.2571e-5  # s^-0.5
CAL_EA = 17126.0  # J/mol
CAL_SOC_C = 2.8575
CAL_SOC_D = 0.60225
# Calendar resistance increase: dR/R0 = k_T,R * k_SOC,R * t[s]
CAL_R_K_REF = 3.4194e-10  # s^-1
CAL_R_EA = 71827.0  # J/mol
CAL_R_SOC_A = -3.3903
CAL_R_SOC_B = 1.5604
# Cycle capacity loss [%] = k_C * k_DOC * sqrt(FEC)
CYC_KC_SLOPE = 0.0630
CYC_KC_OFFSET = 0.0971
CYC_KDOC_A = 4.0253
CYC_KDOC_CENTER = 0.6
CYC_KDOC_B = 1.0923
# Cycle resistance increase [%] = (a*C + b) * (c*(DOC - 0.5)^3 + d) * FEC
CYC_R_C_SLOPE = -0.0020
CYC_R_C_OFFSET = 0.0021
CYC_R_DOC_A = 6.8477
CYC_R_DOC_CENTER = 0.5
CYC_R_DOC_B = 0.9182

# Fitted range: cycling temperatures and C-rates as BLAST-Lite lists them for the same cell
# (`Lfp_Gr_SonyMurata3Ah_Battery.experimental_range`); depths of cycle 1-100 % (Naumann 2020).
VALIDITY = Validity(
    cycling_temperature_c=(20.0, 40.0),
    dod=(0.01, 1.0),
    max_charge_c_rate=1.0,
    max_discharge_c_rate=2.0,
    note="calendar tests 0-100 % SOC; cycle tests at 0.2-1 C; a 3 Ah cylindrical cell",
)

LIMITS = VALIDITY.limits()

STATE = StateBlock(
    "naumann",
    (
        StateField("cal_capacity_loss", "1", "calendar capacity loss", 0.0, 1.0),
        StateField("cal_resistance_increase", "1", "calendar resistance increase"),
        StateField("cyc_capacity_loss", "1", "cycle capacity loss", 0.0, 1.0),
        StateField("cyc_resistance_increase", "1", "cycle resistance increase"),
        *half_cycle_fields("half_cycle"),
        StateField("loss_sq_start", "1", "squared cycle capacity loss of all finished "
                   "half-cycles", group="half_cycle"),
        StateField("resistance_start", "1", "cycle resistance increase of all finished "
                   "half-cycles", group="half_cycle"),
    ),
)  # fmt: skip
CAL, CAL_R, CYC, CYC_R = (STATE.index(n) for n in (
    "cal_capacity_loss", "cal_resistance_increase", "cyc_capacity_loss",
    "cyc_resistance_increase"))  # fmt: skip
HC = STATE.index("direction")  # the half_cycle_fields start here
HC_LSQ, HC_RES = STATE.index("loss_sq_start"), STATE.index("resistance_start")


@jit
def calendar_capacity_rate(soc, temperature_c):
    """k_T * k_SOC in s^-0.5: capacity loss fraction = rate * sqrt(t)."""
    x = soc - 0.5
    return CAL_K_REF * arrhenius(temperature_c, CAL_EA) * (CAL_SOC_C * x * x * x + CAL_SOC_D)


@jit
def calendar_resistance_rate(soc, temperature_c):
    """k_T,R * k_SOC,R in s^-1: relative resistance increase = rate * t."""
    x = soc - 0.5
    return CAL_R_K_REF * arrhenius(temperature_c, CAL_R_EA) * (CAL_R_SOC_A * x * x + CAL_R_SOC_B)


@jit
def cycle_capacity_factor(c_rate, doc):
    """k_C * k_DOC as a fraction: capacity loss = factor * sqrt(FEC)."""
    x = doc - CYC_KDOC_CENTER
    return (CYC_KC_SLOPE * c_rate + CYC_KC_OFFSET) * (CYC_KDOC_A * x * x * x + CYC_KDOC_B) / 100.0


@jit
def cycle_resistance_factor(c_rate, doc):
    """Relative resistance increase per FEC. The C-rate term of the fit turns negative above
    1.05C (outside the 0.2-1C test range); it is held at zero there rather than healing."""
    x = doc - CYC_R_DOC_CENTER
    k_c = np.maximum(CYC_R_C_SLOPE * c_rate + CYC_R_C_OFFSET, 0.0)
    return k_c * (CYC_R_DOC_A * x * x * x + CYC_R_DOC_B) / 100.0


def calendar_closed_form(
    t_s: np.ndarray | float, soc: float, temperature_c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Capacity loss and relative resistance increase after storage for t_s at constant stress."""
    t = np.asarray(t_s, dtype=float)
    return (
        calendar_capacity_rate(soc, temperature_c) * np.sqrt(t),
        calendar_resistance_rate(soc, temperature_c) * t,
    )


def cycle_closed_form(
    fec: np.ndarray | float, c_rate: float, doc: float
) -> tuple[np.ndarray, np.ndarray]:
    """Capacity loss and relative resistance increase after `fec` cycles at constant stress."""
    f = np.asarray(fec, dtype=float)
    return (
        cycle_capacity_factor(c_rate, doc) * np.sqrt(f),
        cycle_resistance_factor(c_rate, doc) * f,
    )


@jit
def step(s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah):
    """Advance the model over one sub-step from (soc, temp) to new_soc under current `cur`;
    returns out-of-range flags."""
    # Calendar, at the sub-step's starting SOC and temperature, on virtual time.
    k_cap = calendar_capacity_rate(soc, temp)
    s[off + CAL] = math.sqrt(s[off + CAL] * s[off + CAL] + k_cap * k_cap * dta)
    s[off + CAL_R] += calendar_resistance_rate(soc, temp) * dta

    # Cycle: the running half-cycle, on the sub-step's end SOC.
    flags = temperature_flag(cur, cap_ah, temp, LIMITS)
    ended, charging, doc_done, c_done = follow_half_cycle(s, off + HC, new_soc, cur, dt, cap_ah)
    if ended:
        kq = cycle_capacity_factor(c_done, doc_done)
        fec = multiplier * doc_done / 2.0
        s[off + HC_LSQ] += kq * kq * fec
        s[off + HC_RES] += cycle_resistance_factor(c_done, doc_done) * fec
        flags |= cycling_flags(charging, c_done, doc_done, LIMITS)
    h = off + HC
    doc = abs(s[h + HC_EXT] - s[h + HC_START]) if s[h + HC_DIR] != 0.0 else 0.0
    c_now = mean_c_rate(s[h + HC_AH], s[h + HC_ACTIVE], cap_ah)
    kq = cycle_capacity_factor(c_now, doc)
    fec = multiplier * doc / 2.0
    s[off + CYC] = math.sqrt(s[off + HC_LSQ] + kq * kq * fec)
    s[off + CYC_R] = s[off + HC_RES] + cycle_resistance_factor(c_now, doc) * fec
    return flags


def forecast(
    start: ForecastStart, usage: Usage, capacity_kwh: np.ndarray, years: float
) -> Forecast:
    """SOH and resistance factor at weekly points from now to `years`."""
    return forecast_in_blocks(_forecast_block, start, usage, capacity_kwh, years)


_SWEEPS = 2  # DOC depends on the faded capacity; a second sweep leaves < 0.3 %-pt at 400 km/day


def _forecast_block(
    start: ForecastStart, usage: Usage, capacity_kwh: np.ndarray, years: float
) -> Forecast:
    days: UsageDays = usage_days(usage, capacity_kwh, years)
    n = start.block.shape[0]
    n_steps = days.t_years.shape[0] - 1
    soh = np.empty((n, n_steps + 1))
    rf = np.empty((n, n_steps + 1))
    b = np.ascontiguousarray(start.block)
    _forecast_kernel(
        b[:, CAL].copy(), b[:, CAL_R].copy(), b[:, CYC].copy(), b[:, CYC_R].copy(),
        np.ascontiguousarray(start.other_capacity_loss, dtype=float),
        np.ascontiguousarray(start.other_resistance_increase, dtype=float),
        *days.vehicle_columns(), *days.operating(), days.step_days, days.step_s, soh, rf,
    )  # fmt: skip
    return Forecast(days.t_years, soh, rf)


@jit
def _forecast_kernel(cal0, calr0, cyc0, cycr0, other, other_r, cap_kwh, daily_kwh, window,
                     soc_max, ambient_c, drive_c, charge_c, op_fraction, op_temp_c, step_days,
                     step_s, soh_out, rf_out):  # fmt: skip
    """The repeating day of `usage_days`, vehicle by vehicle and week by week: each charge
    event is one discharge and one charge half-cycle of the same depth, and the pack rests
    half the time near each end of the swing. Squared capacity losses add up over time / FEC,
    so a week's stress adds k^2 * dt. The depth depends on the faded capacity: the first
    sweep takes the start's SOH over the whole horizon, the second the first's. The operating
    periods (share of the day, pack temperature) scale the calendar rates: the temperature
    enters both as an Arrhenius factor, so the day's mean of k^2 (capacity) and of k
    (resistance) is the ambient's times a factor that is 1 at ambient all day."""
    n, width = soh_out.shape
    n_steps = width - 1
    soh = np.empty(n_steps)  # the SOH each week's swing sees
    doc = np.empty(n_steps)
    fec_half = np.empty(n_steps)
    for v in range(n):
        amb = ambient_c[v]
        soh0 = 1.0 - cal0[v] - cyc0[v] - other[v]
        m_cap = 1.0
        m_res = 1.0
        a_cap = arrhenius(amb, CAL_EA)
        a_res = arrhenius(amb, CAL_R_EA)
        for j in range(op_fraction.shape[1]):
            f = op_fraction[v, j]
            if f > 0.0:
                r = arrhenius(op_temp_c[v, j], CAL_EA) / a_cap
                m_cap += f * (r * r - 1.0)
                m_res += f * (arrhenius(op_temp_c[v, j], CAL_R_EA) / a_res - 1.0)
        # Stress that does not change with time.
        k_hi = calendar_capacity_rate(soc_max[v], amb)
        k_hi_sq = k_hi * k_hi
        kr_hi = calendar_resistance_rate(soc_max[v], amb)
        cal_sq0 = cal0[v] * cal0[v]
        cyc_sq0 = cyc0[v] * cyc0[v]
        soh[:] = soh0
        soh_out[v, 0] = soh0
        for _ in range(_SWEEPS):
            cal_sum = 0.0
            cyc_sum = 0.0
            for t in range(n_steps):
                d, cycles_per_day = swing(cap_kwh[v], daily_kwh[v], window[v], soh[t])
                doc[t] = d
                # Calendar: half the time at each end of the swing (squared rates average).
                k_lo = calendar_capacity_rate(soc_max[v] - d, amb)
                cal_sum += 0.5 * (k_hi_sq + k_lo * k_lo) * step_s * m_cap
                # Cycle: per charge event a discharge and a charge half-cycle of depth d.
                fec_half[t] = cycles_per_day * d * (step_days / 2.0)
                kd = cycle_capacity_factor(drive_c[v], d)
                kc = cycle_capacity_factor(charge_c[v], d)
                cyc_sum += fec_half[t] * (kd * kd + kc * kc)
                soh_out[v, t + 1] = (
                    1.0 - math.sqrt(cal_sq0 + cal_sum) - math.sqrt(cyc_sq0 + cyc_sum) - other[v]
                )
            for t in range(1, n_steps):
                soh[t] = soh_out[v, t]
        rf0 = 1.0 + calr0[v] + cycr0[v] + other_r[v]
        rf_out[v, 0] = rf0
        increase = 0.0
        for t in range(n_steps):
            kr = 0.5 * (kr_hi + calendar_resistance_rate(soc_max[v] - doc[t], amb))
            increase += kr * m_res * step_s + fec_half[t] * (
                cycle_resistance_factor(drive_c[v], doc[t])
                + cycle_resistance_factor(charge_c[v], doc[t])
            )
            rf_out[v, t + 1] = rf0 + increase
        for t in range(width):
            soh_out[v, t] = min(max(soh_out[v, t], 0.0), 1.0)


MODEL = AgingModel(
    name="naumann",
    title="Naumann et al. LFP/graphite calendar (2018) and cycle (2020) aging",
    cell="Sony/Murata US26650FTC1, 3 Ah cylindrical LFP/graphite",
    sources=("doi:10.1016/j.est.2018.01.019", "doi:10.1016/j.jpowsour.2019.227666"),
    validity=VALIDITY,
    outputs=("capacity", "resistance"),
    state=STATE,
    capacity_terms=("cal_capacity_loss", "cyc_capacity_loss"),
    resistance_terms=("cal_resistance_increase", "cyc_resistance_increase"),
    seed_capacity_field="cal_capacity_loss",
    seed_resistance_field="cal_resistance_increase",
    forecast=forecast,
)
