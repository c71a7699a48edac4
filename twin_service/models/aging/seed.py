"""The demo aging model of the original design, kept exactly.

Per second of aging time: cycle 2e-8 * C_rate^1.5, thermal 1e-9 * exp((T - 25)/15),
calendar 5e-10 * f(SOC), f = 1.5 above 80 % SOC, 1.3 below 20 %, else 1.0.
SOH decreases by their sum * dt * time_multiplier.
"""

from __future__ import annotations

import numpy as np

CYCLE_COEFF = 2e-8
CYCLE_EXPONENT = 1.5
THERMAL_COEFF = 1e-9
THERMAL_REF_C = 25.0
THERMAL_SCALE_C = 15.0
CALENDAR_COEFF = 5e-10
HIGH_SOC, HIGH_SOC_FACTOR = 0.8, 1.5
LOW_SOC, LOW_SOC_FACTOR = 0.2, 1.3


def soc_stress(soc: np.ndarray) -> np.ndarray:
    soc = np.asarray(soc, dtype=float)
    return np.where(soc > HIGH_SOC, HIGH_SOC_FACTOR, np.where(soc < LOW_SOC, LOW_SOC_FACTOR, 1.0))


def loss_rate_per_s(c_rate: np.ndarray, temperature_c: np.ndarray, soc: np.ndarray) -> np.ndarray:
    """SOH loss (fraction) per second of aging time."""
    cycle = CYCLE_COEFF * np.abs(np.asarray(c_rate, dtype=float)) ** CYCLE_EXPONENT
    thermal = THERMAL_COEFF * np.exp((np.asarray(temperature_c) - THERMAL_REF_C) / THERMAL_SCALE_C)
    calendar = CALENDAR_COEFF * soc_stress(soc)
    return cycle + thermal + calendar
