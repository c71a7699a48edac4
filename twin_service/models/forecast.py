"""Lifetime forecast: SOH and resistance over years for a daily usage profile.

Vectorised over vehicles (axis 0) and time (axis 1). The same Naumann equations as the step
kernel, applied to a repeating day: the pack is charged back to `soc_max` after the day's
driving and rests half the time near each end of the swing; each charge event is one discharge
and one charge half-cycle of the same depth. Squared capacity losses add up over time / FEC
(virtual time and virtual FEC), so a day's stress adds k^2 * dt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin_service.models.aging import naumann, seed

DAY_S = 86400.0
YEAR_DAYS = 365.0
STEP_DAYS = 7.0  # integration step; stress changes slowly as capacity fades
DRIVE_SPEED_KMH = 40.0  # assumed mean speed to turn daily km into driving hours
DC_FAST_C_RATE = 1.5  # assumed C-rate of DC fast charging
_SWEEPS = 2  # DOC depends on the faded capacity; a second sweep leaves < 0.3 %-pt at 400 km/day


@dataclass(frozen=True)
class Usage:
    """Arrays of shape (V,) or scalars."""

    daily_km: np.ndarray
    wh_per_km: np.ndarray
    soc_min: np.ndarray
    soc_max: np.ndarray
    ambient_c: np.ndarray
    charge_c_rate: np.ndarray
    dc_fast_share: np.ndarray


@dataclass(frozen=True)
class AgingStart:
    """Accumulated aging at the start, arrays of shape (V,)."""

    cal_capacity_loss: np.ndarray
    cal_resistance_increase: np.ndarray
    cyc_capacity_loss: np.ndarray
    cyc_resistance_increase: np.ndarray
    other_capacity_loss: np.ndarray  # e.g. the seed model's share, held constant


@dataclass(frozen=True)
class Forecast:
    years: np.ndarray  # (T,)
    soh: np.ndarray  # (V, T)
    resistance_factor: np.ndarray  # (V, T)


def _col(x: np.ndarray | float) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=float))[:, None]


VEHICLE_BLOCK = 256  # vehicles per block: keeps the (vehicles x weeks) arrays in cache


def forecast_naumann(
    start: AgingStart, usage: Usage, capacity_kwh: np.ndarray, years: float
) -> Forecast:
    """SOH and resistance factor at weekly points from now to `years`."""
    n = np.atleast_1d(np.asarray(capacity_kwh)).shape[0]
    if n <= VEHICLE_BLOCK:
        return _forecast_naumann_block(start, usage, capacity_kwh, years)
    parts = []
    for lo in range(0, n, VEHICLE_BLOCK):
        sl = slice(lo, lo + VEHICLE_BLOCK)
        parts.append(_forecast_naumann_block(
            AgingStart(*(np.broadcast_to(v, (n,))[sl] for v in vars(start).values())),
            Usage(*(np.broadcast_to(v, (n,))[sl] for v in vars(usage).values())),
            np.broadcast_to(capacity_kwh, (n,))[sl], years))
    return Forecast(parts[0].years, np.concatenate([p.soh for p in parts]),
                    np.concatenate([p.resistance_factor for p in parts]))


def _forecast_naumann_block(
    start: AgingStart, usage: Usage, capacity_kwh: np.ndarray, years: float
) -> Forecast:
    n_steps = int(np.ceil(years * YEAR_DAYS / STEP_DAYS))
    t_years = np.arange(n_steps + 1) * STEP_DAYS / YEAR_DAYS
    dt_s = STEP_DAYS * DAY_S
    cap = _col(capacity_kwh)
    daily_kwh = _col(usage.daily_km) * _col(usage.wh_per_km) / 1000.0
    window = _col(usage.soc_max) - _col(usage.soc_min)
    soc_max = _col(usage.soc_max)
    ambient = _col(usage.ambient_c)
    drive_c = _col(usage.wh_per_km) * DRIVE_SPEED_KMH / 1000.0 / cap
    share = _col(usage.dc_fast_share)
    charge_c = (1.0 - share) * _col(usage.charge_c_rate) + share * DC_FAST_C_RATE
    cal0, calr0 = _col(start.cal_capacity_loss), _col(start.cal_resistance_increase)
    cyc0, cycr0 = _col(start.cyc_capacity_loss), _col(start.cyc_resistance_increase)
    other = _col(start.other_capacity_loss)

    soh0 = 1.0 - cal0 - cyc0 - other
    # Stress that does not change with time: computed once per vehicle.
    k_hi_sq = naumann.calendar_capacity_rate(soc_max, ambient) ** 2
    kr_hi = naumann.calendar_resistance_rate(soc_max, ambient)
    # The first sweep assumes no fade over the horizon; the next uses the first's SOH.
    soh = np.broadcast_to(soh0, (cap.shape[0], n_steps))
    for _ in range(_SWEEPS):
        usable = cap * np.maximum(soh, 0.05)  # kWh per unit SOC on the aged pack
        doc = np.minimum(daily_kwh / usable, window)
        with np.errstate(divide="ignore", invalid="ignore"):
            cycles_per_day = np.where(doc > 0, daily_kwh / (usable * np.where(doc > 0, doc, 1)), 0)
        soc_low = soc_max - doc
        # Calendar: half the time at each end of the swing (squared rates average exactly).
        k_sq = 0.5 * (k_hi_sq + naumann.calendar_capacity_rate(soc_low, ambient) ** 2)
        # Cycle: per charge event a discharge and a charge half-cycle of depth `doc`.
        fec_half = cycles_per_day * doc * (STEP_DAYS / 2.0)
        kd = naumann.cycle_capacity_factor(drive_c, doc)
        kc = naumann.cycle_capacity_factor(charge_c, doc)
        cal = np.sqrt(cal0**2 + np.cumsum(k_sq * dt_s, axis=1))
        cyc = np.sqrt(cyc0**2 + np.cumsum(fec_half * (kd * kd + kc * kc), axis=1))
        new_soh = 1.0 - cal - cyc - other
        soh = np.concatenate((soh0, new_soh[:, :-1]), axis=1)
    kr = 0.5 * (kr_hi + naumann.calendar_resistance_rate(soc_low, ambient))
    cyc_r_inc = fec_half * (
        naumann.cycle_resistance_factor(drive_c, doc)
        + naumann.cycle_resistance_factor(charge_c, doc)
    )
    res = 1.0 + calr0 + cycr0 + np.cumsum(kr * dt_s + cyc_r_inc, axis=1)
    soh_all = np.concatenate((soh0, new_soh), axis=1)
    rf_all = np.concatenate((1.0 + calr0 + cycr0, res), axis=1)
    return Forecast(t_years, np.clip(soh_all, 0.0, 1.0), rf_all)


def forecast_seed(
    start: AgingStart, usage: Usage, capacity_kwh: np.ndarray, years: float
) -> Forecast:
    """The demo model's linear fade for the same day (no time multiplier: real years)."""
    n_steps = int(np.ceil(years * YEAR_DAYS / STEP_DAYS))
    t_years = np.arange(n_steps + 1) * STEP_DAYS / YEAR_DAYS
    cap = _col(capacity_kwh)
    daily_kwh = _col(usage.daily_km) * _col(usage.wh_per_km) / 1000.0
    drive_h = _col(usage.daily_km) / DRIVE_SPEED_KMH
    drive_c = _col(usage.wh_per_km) * DRIVE_SPEED_KMH / 1000.0 / cap
    share = _col(usage.dc_fast_share)
    charge_c = (1.0 - share) * _col(usage.charge_c_rate) + share * DC_FAST_C_RATE
    charge_h = daily_kwh / (cap * charge_c)
    mean_soc = _col(usage.soc_max) - 0.5 * np.minimum(daily_kwh / cap, 1.0)
    rest_s = np.maximum(DAY_S - (drive_h + charge_h) * 3600.0, 0.0)
    ambient = _col(usage.ambient_c)
    per_day = (
        seed.loss_rate_per_s(drive_c, ambient, mean_soc) * drive_h * 3600.0
        + seed.loss_rate_per_s(charge_c, ambient, mean_soc) * charge_h * 3600.0
        + seed.loss_rate_per_s(0.0, ambient, mean_soc) * rest_s
    )
    soh0 = 1.0 - _col(start.cal_capacity_loss) - _col(start.cyc_capacity_loss) - _col(
        start.other_capacity_loss
    )
    soh = soh0 - per_day * t_years[None, :] * YEAR_DAYS
    rf = np.broadcast_to(
        1.0 + _col(start.cal_resistance_increase) + _col(start.cyc_resistance_increase),
        soh.shape,
    )
    return Forecast(t_years, np.clip(soh, 0.0, 1.0), rf.copy())


def years_to_threshold(years: np.ndarray, soh: np.ndarray, threshold: float = 0.8) -> np.ndarray:
    """First time (linear interpolation) each row of `soh` falls to `threshold`; NaN if never."""
    below = soh <= threshold
    crossed = below.any(axis=1)
    j = np.argmax(below, axis=1)
    prev = np.maximum(j - 1, 0)
    rows = np.arange(soh.shape[0])
    s0, s1 = soh[rows, prev], soh[rows, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(s0 != s1, (s0 - threshold) / (s0 - s1), 0.0)
    t = np.where(j == 0, 0.0, years[prev] + frac * (years[j] - years[prev]))
    return np.where(crossed, t, np.nan)
