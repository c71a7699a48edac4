"""The demo aging model of the original design, kept exactly.

Per second of aging time: cycle 2e-8 * C_rate^1.5, thermal 1e-9 * exp((T - 25)/15),
calendar 5e-10 * f(SOC), f = 1.5 above 80 % SOC, 1.3 below 20 %, else 1.0.
SOH decreases by their sum * dt * time_multiplier. Not a published model: it exists so the
demo shows visible fade within minutes.
"""

from __future__ import annotations

import numpy as np

from twin_service.models.aging.base import AgingModel, ForecastStart
from twin_service.models.forecast import DAY_S, YEAR_DAYS, Forecast, Usage, usage_days
from twin_service.models.jit import jit
from twin_service.models.state import StateBlock, StateField

CYCLE_COEFF = 2e-8
CYCLE_EXPONENT = 1.5
THERMAL_COEFF = 1e-9
THERMAL_REF_C = 25.0
THERMAL_SCALE_C = 15.0
CALENDAR_COEFF = 5e-10
HIGH_SOC, HIGH_SOC_FACTOR = 0.8, 1.5
LOW_SOC, LOW_SOC_FACTOR = 0.2, 1.3

STATE = StateBlock("seed", (StateField("capacity_loss", "1", "capacity loss", 0.0, 1.0),))
LOSS = STATE.index("capacity_loss")


@jit
def soc_stress(soc):
    """f(SOC), written with comparisons as 0/1 so one expression serves floats and arrays
    (the factors minus one are exact)."""
    return (
        1.0 + (HIGH_SOC_FACTOR - 1.0) * (soc > HIGH_SOC) + (LOW_SOC_FACTOR - 1.0) * (soc < LOW_SOC)
    )


@jit
def loss_rate_per_s(c_rate, temperature_c, soc):
    """SOH loss (fraction) per second of aging time (floats or arrays)."""
    cycle = CYCLE_COEFF * np.abs(c_rate) ** CYCLE_EXPONENT
    thermal = THERMAL_COEFF * np.exp((temperature_c - THERMAL_REF_C) / THERMAL_SCALE_C)
    return cycle + thermal + CALENDAR_COEFF * soc_stress(soc)


@jit
def step(s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah):
    s[off + LOSS] += loss_rate_per_s(abs(cur) / cap_ah, temp, soc) * dta
    return 0


def forecast(
    start: ForecastStart, usage: Usage, capacity_kwh: np.ndarray, years: float
) -> Forecast:
    """The demo model's linear fade for the same day (no time multiplier: real years)."""
    days = usage_days(usage, capacity_kwh, years)
    charge_h = days.daily_kwh / (days.capacity_kwh * days.charge_c)
    mean_soc = days.soc_max - 0.5 * np.minimum(days.daily_kwh / days.capacity_kwh, 1.0)
    rest_s = np.maximum(DAY_S - (days.drive_h + charge_h) * 3600.0, 0.0)
    ambient = days.ambient_c
    per_day = (
        loss_rate_per_s(days.drive_c, ambient, mean_soc) * days.drive_h * 3600.0
        + loss_rate_per_s(days.charge_c, ambient, mean_soc) * charge_h * 3600.0
        + loss_rate_per_s(np.zeros_like(mean_soc), ambient, mean_soc) * rest_s
    )
    soh0 = 1.0 - start.other_capacity_loss[:, None] - start.block[:, LOSS, None]
    soh = soh0 - per_day * days.t_years[None, :] * YEAR_DAYS
    rf = np.broadcast_to(1.0 + start.other_resistance_increase[:, None], soh.shape)
    return Forecast(days.t_years, np.clip(soh, 0.0, 1.0), rf.copy())


MODEL = AgingModel(
    name="seed",
    title="Demo aging of the original design (not a published model)",
    cell="none (illustrative rates per second)",
    sources=("original design of this project",),
    validity=None,
    outputs=("capacity",),
    state=STATE,
    capacity_terms=("capacity_loss",),
    resistance_terms=(),
    seed_capacity_field=None,
    seed_resistance_field=None,
    forecast=forecast,
    physical=False,
)
