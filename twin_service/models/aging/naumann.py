"""LFP/graphite aging after Naumann et al. (Sony/Murata US26650FTC1, 3 Ah LFP cell).

Calendar: Naumann et al. 2018, J. Energy Storage 17:153-169, doi:10.1016/j.est.2018.01.019.
Cycle:    Naumann et al. 2020, J. Power Sources 451:227666, doi:10.1016/j.jpowsour.2019.227666.

Capacity losses follow a square-root law in time (calendar) or full equivalent cycles (cycle).
Under changing stress both continue on a virtual time / virtual FEC: with loss Q = k*sqrt(x),
Q_new^2 = Q_old^2 + k_now^2 * dx, which is why the step kernel carries squared losses.
"""

from __future__ import annotations

import numpy as np

GAS_CONSTANT = 8.3144598  # J/(mol K), Naumann 2018
T_REF_K = 298.15

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


def _cube(x: np.ndarray) -> np.ndarray:
    return x * x * x  # much faster than x ** 3 on arrays


def _arrhenius(temperature_c: np.ndarray, ea: float) -> np.ndarray:
    t_k = np.asarray(temperature_c, dtype=float) + 273.15
    return np.exp(-ea / GAS_CONSTANT * (1.0 / t_k - 1.0 / T_REF_K))


def calendar_capacity_rate(soc: np.ndarray, temperature_c: np.ndarray) -> np.ndarray:
    """k_T * k_SOC in s^-0.5: capacity loss fraction = rate * sqrt(t)."""
    k_soc = CAL_SOC_C * _cube(np.asarray(soc) - 0.5) + CAL_SOC_D
    return CAL_K_REF * _arrhenius(temperature_c, CAL_EA) * k_soc


def calendar_resistance_rate(soc: np.ndarray, temperature_c: np.ndarray) -> np.ndarray:
    """k_T,R * k_SOC,R in s^-1: relative resistance increase = rate * t."""
    x = np.asarray(soc) - 0.5
    k_soc = CAL_R_SOC_A * x * x + CAL_R_SOC_B
    return CAL_R_K_REF * _arrhenius(temperature_c, CAL_R_EA) * k_soc


def cycle_capacity_factor(c_rate: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """k_C * k_DOC as a fraction: capacity loss = factor * sqrt(FEC)."""
    k_c = CYC_KC_SLOPE * np.asarray(c_rate) + CYC_KC_OFFSET
    k_doc = CYC_KDOC_A * _cube(np.asarray(doc) - CYC_KDOC_CENTER) + CYC_KDOC_B
    return k_c * k_doc / 100.0


def cycle_resistance_factor(c_rate: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """Relative resistance increase per FEC. The C-rate term of the fit turns negative above
    1.05C (outside the 0.2-1C test range); it is held at zero there rather than healing."""
    k_c = np.maximum(CYC_R_C_SLOPE * np.asarray(c_rate) + CYC_R_C_OFFSET, 0.0)
    k_doc = CYC_R_DOC_A * _cube(np.asarray(doc) - CYC_R_DOC_CENTER) + CYC_R_DOC_B
    return k_c * k_doc / 100.0


def calendar_closed_form(
    t_s: np.ndarray, soc: float, temperature_c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Capacity loss and relative resistance increase after storage for t_s at constant stress."""
    t = np.asarray(t_s, dtype=float)
    return (
        calendar_capacity_rate(soc, temperature_c) * np.sqrt(t),
        calendar_resistance_rate(soc, temperature_c) * t,
    )


def cycle_closed_form(fec: np.ndarray, c_rate: float, doc: float) -> tuple[np.ndarray, np.ndarray]:
    """Capacity loss and relative resistance increase after `fec` cycles at constant stress."""
    f = np.asarray(fec, dtype=float)
    return (
        cycle_capacity_factor(c_rate, doc) * np.sqrt(f),
        cycle_resistance_factor(c_rate, doc) * f,
    )
