"""Lifetime forecast: SOH and resistance over years for a daily usage profile.

Vectorised over vehicles (axis 0) and time (axis 1). Each aging model applies its own laws
(the same functions the step uses) to the repeating day described here: the pack is charged
back to `soc_max` after the day's driving; a day's energy is one swing of depth `doc` below
`soc_max`, or several when it does not fit the usable window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from twin_service.models.jit import jit

if TYPE_CHECKING:
    from twin_service.models.aging.base import ForecastStart

DAY_S = 86400.0
YEAR_DAYS = 365.0
STEP_DAYS = 7.0  # integration step; stress changes slowly as capacity fades
DRIVE_SPEED_KMH = 40.0  # assumed mean speed to turn daily km into driving hours
DC_FAST_C_RATE = 1.5  # assumed C-rate of DC fast charging
# Vehicles are run in blocks of at most VEHICLE_BLOCK vehicles and BLOCK_CELLS vehicle-steps:
# each block's (vehicles x weeks) outputs stay small, and the Python between the compiled
# calls (which release the GIL) stays short, so the service's event loop keeps running beside
# a large fleet forecast.
VEHICLE_BLOCK = 256
BLOCK_CELLS = 32_768


def _absent() -> np.ndarray:
    return np.empty(0)


@dataclass(frozen=True)
class Usage:
    """Arrays of shape (V,) or scalars. The duty fields (models.duty fills them) are optional;
    an empty array means "not given": the drive's C-rate then follows from DRIVE_SPEED_KMH,
    DC fast charging runs at DC_FAST_C_RATE and the pack sits at ambient all day."""

    daily_km: np.ndarray
    wh_per_km: np.ndarray
    soc_min: np.ndarray
    soc_max: np.ndarray
    ambient_c: np.ndarray
    charge_c_rate: np.ndarray
    dc_fast_share: np.ndarray
    drive_c_rate: np.ndarray = field(default_factory=_absent)  # (V,) mean C-rate driving
    dc_c_rate: np.ndarray = field(default_factory=_absent)  # (V,) mean C-rate of DC charging
    # (V, K): share of the day and mean pack temperature of each operating period (AC
    # charging, DC charging, driving); the rest of the day the pack is at ambient.
    op_fraction: np.ndarray = field(default_factory=_absent)
    op_temp_c: np.ndarray = field(default_factory=_absent)


def given(x: np.ndarray | float) -> bool:
    return np.asarray(x).size > 0


@dataclass(frozen=True)
class Forecast:
    years: np.ndarray  # (T,)
    soh: np.ndarray  # (V, T)
    resistance_factor: np.ndarray  # (V, T)


def col(x: np.ndarray | float) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=float))[:, None]


VehicleColumns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                       np.ndarray]  # fmt: skip


@dataclass(frozen=True)
class UsageDays:
    """The repeating day as (V, 1) columns, and the weekly time grid."""

    t_years: np.ndarray
    step_days: float
    step_s: float
    capacity_kwh: np.ndarray
    daily_kwh: np.ndarray
    window: np.ndarray
    soc_max: np.ndarray
    ambient_c: np.ndarray
    drive_c: np.ndarray  # mean C-rate while driving
    charge_c: np.ndarray  # mean C-rate while charging (AC and DC fast mixed)
    drive_h: np.ndarray
    op_fraction: np.ndarray  # (V, K), K >= 1; all zero when the usage gives no duty
    op_temp_c: np.ndarray  # (V, K)

    def operating(self) -> tuple[np.ndarray, np.ndarray]:
        """(op_fraction, op_temp_c) as contiguous (V, K) arrays, for the compiled forecasts."""
        return np.ascontiguousarray(self.op_fraction), np.ascontiguousarray(self.op_temp_c)

    def vehicle_columns(self) -> VehicleColumns:
        """(capacity_kwh, daily_kwh, window, soc_max, ambient_c, drive_c, charge_c) as
        contiguous (V,) arrays, for the compiled forecasts."""
        cols = (self.capacity_kwh, self.daily_kwh, self.window, self.soc_max, self.ambient_c,
                self.drive_c, self.charge_c)  # fmt: skip
        c = [np.ascontiguousarray(x[:, 0]) for x in cols]
        return c[0], c[1], c[2], c[3], c[4], c[5], c[6]


@jit
def swing(capacity_kwh, daily_kwh, window, soh):
    """(depth of the daily swing, swings per day) of a pack aged to `soh`: one swing of the
    day's energy, or several of the usable window when it does not fit."""
    usable = capacity_kwh * max(soh, 0.05)  # kWh per unit SOC
    doc = min(daily_kwh / usable, window)
    if doc > 0.0:
        return doc, daily_kwh / (usable * doc)
    return doc, 0.0


def forecast_steps(years: float) -> int:
    """Integration steps of a forecast over `years`."""
    return int(np.ceil(years * YEAR_DAYS / STEP_DAYS))


def block_vehicles(years: float) -> int:
    """Vehicles per block for a horizon of `years`."""
    return max(1, min(VEHICLE_BLOCK, BLOCK_CELLS // max(forecast_steps(years), 1)))


def usage_days(usage: Usage, capacity_kwh: np.ndarray, years: float) -> UsageDays:
    n_steps = forecast_steps(years)
    cap = col(capacity_kwh)
    share = col(usage.dc_fast_share)
    ambient = col(usage.ambient_c)
    n = max(cap.shape[0], ambient.shape[0], share.shape[0])
    if given(usage.drive_c_rate):
        drive_c = col(usage.drive_c_rate)
    else:
        drive_c = col(usage.wh_per_km) * DRIVE_SPEED_KMH / 1000.0 / cap
    dc_c = col(usage.dc_c_rate) if given(usage.dc_c_rate) else DC_FAST_C_RATE
    if given(usage.op_fraction):
        k = np.shape(usage.op_fraction)[-1]
        op_fraction = np.broadcast_to(np.asarray(usage.op_fraction, dtype=float), (n, k))
        op_temp = np.broadcast_to(np.asarray(usage.op_temp_c, dtype=float), op_fraction.shape)
    else:
        op_fraction = np.zeros((n, 1))
        op_temp = np.broadcast_to(ambient, (n, 1))
    return UsageDays(
        t_years=np.arange(n_steps + 1) * STEP_DAYS / YEAR_DAYS,
        step_days=STEP_DAYS,
        step_s=STEP_DAYS * DAY_S,
        capacity_kwh=cap,
        daily_kwh=col(usage.daily_km) * col(usage.wh_per_km) / 1000.0,
        window=col(usage.soc_max) - col(usage.soc_min),
        soc_max=col(usage.soc_max),
        ambient_c=ambient,
        drive_c=drive_c,
        charge_c=(1.0 - share) * col(usage.charge_c_rate) + share * dc_c,
        drive_h=col(usage.daily_km) / DRIVE_SPEED_KMH,
        op_fraction=op_fraction,
        op_temp_c=op_temp,
    )


def _rows(x: np.ndarray | float, n: int) -> np.ndarray:
    """`x` as n rows (a (V,) or (V, K) array, or a scalar broadcast); absent stays absent."""
    a = np.asarray(x)
    if a.ndim == 0:
        return np.broadcast_to(a, (n,))
    if a.size == 0:
        return a  # sliced, still empty
    return np.broadcast_to(a, (n, *a.shape[1:])) if a.shape[0] != n else a


ForecastBlock = Callable[["ForecastStart", Usage, np.ndarray, float], Forecast]


def forecast_in_blocks(
    block_fn: ForecastBlock,
    start: ForecastStart,
    usage: Usage,
    capacity_kwh: np.ndarray,
    years: float,
) -> Forecast:
    """Run `block_fn` over blocks of `block_vehicles(years)` vehicles and join the results."""
    n = np.atleast_1d(np.asarray(capacity_kwh)).shape[0]
    size = block_vehicles(years)
    if n <= size:
        return block_fn(start, usage, capacity_kwh, years)
    parts = []
    for lo in range(0, n, size):
        sl = slice(lo, lo + size)
        part_start = type(start)(*(getattr(start, f.name)[sl] for f in fields(start)))
        part_usage = Usage(*(_rows(getattr(usage, f.name), n)[sl] for f in fields(usage)))
        parts.append(block_fn(part_start, part_usage, np.broadcast_to(capacity_kwh, (n,))[sl],
                              years))  # fmt: skip
    return Forecast(
        parts[0].years,
        np.concatenate([p.soh for p in parts]),
        np.concatenate([p.resistance_factor for p in parts]),
    )


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
