"""Pack equivalent circuit: OCV - I*R0 - one RC branch, Arrhenius in temperature.

Current from terminal power solves P = V(I)*I with the step-averaged terminal voltage of a
constant current over the step, so any step length is handled exactly for the RC branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GAS_CONSTANT = 8.3144598  # J/(mol K), as used by Naumann et al.
T_REF_K = 298.15
KELVIN = 273.15


@dataclass(frozen=True)
class CircuitParams:
    """Pack-level circuit parameters at 25 degC and a fresh pack (resistance_factor 1)."""

    r0_ohm: float
    r1_ohm: float
    tau1_s: float
    activation_energy_j_mol: float
    v_min: float
    v_max: float
    max_discharge_a: float
    max_charge_a: float
    max_discharge_w: float
    max_regen_w: float


def arrhenius_factor(temperature_c: np.ndarray, activation_energy_j_mol: float) -> np.ndarray:
    """Resistance multiplier relative to 25 degC: exp(Ea/R * (1/T - 1/T_ref))."""
    t_k = np.asarray(temperature_c, dtype=float) + KELVIN
    return np.exp(activation_energy_j_mol / GAS_CONSTANT * (1.0 / t_k - 1.0 / T_REF_K))


def rc_average_factor(dt_s: np.ndarray, tau_s: float) -> tuple[np.ndarray, np.ndarray]:
    """For an RC branch under constant current over dt: decay a = exp(-dt/tau) and the
    step-average weight g = tau/dt * (1 - a) of the initial branch voltage."""
    x = np.asarray(dt_s, dtype=float) / tau_s
    decay = np.exp(-x)
    weight = -np.expm1(-x) / x
    return decay, weight


def current_from_power(power_w: np.ndarray, emf_v: np.ndarray, r_eff_ohm: np.ndarray) -> np.ndarray:
    """Solve P = (E - I*R) * I for the smaller-magnitude root (discharge > 0).

    Demands beyond the maximum transferable power E^2/(4R) return the current at that maximum;
    callers clip power to the pack limits first.
    """
    disc = np.maximum(emf_v * emf_v - 4.0 * r_eff_ohm * power_w, 0.0)
    # 2P / (E + sqrt(E^2 - 4RP)) avoids cancellation for small P.
    return 2.0 * power_w / (emf_v + np.sqrt(disc))


def current_limits(
    emf_v: np.ndarray,
    r_eff_ohm: np.ndarray,
    params: CircuitParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Largest discharge current (>= 0) and largest charge current magnitude (>= 0) that keep
    the terminal voltage within [v_min, v_max] and the current within the pack ratings."""
    i_dis = np.minimum(params.max_discharge_a, np.maximum((emf_v - params.v_min) / r_eff_ohm, 0.0))
    i_chg = np.minimum(params.max_charge_a, np.maximum((params.v_max - emf_v) / r_eff_ohm, 0.0))
    return i_dis, i_chg


def power_limits(
    emf_v: np.ndarray,
    r_eff_ohm: np.ndarray,
    i_dis_max: np.ndarray,
    i_chg_max: np.ndarray,
    params: CircuitParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Largest discharge power and largest charge/regen power magnitude (W) at the terminals."""
    # Power rises with current up to I = E/(2R); beyond that more current gives less power.
    i_dis = np.minimum(i_dis_max, emf_v / (2.0 * r_eff_ohm))
    p_dis = np.minimum(params.max_discharge_w, (emf_v - i_dis * r_eff_ohm) * i_dis)
    p_chg = np.minimum(params.max_regen_w, (emf_v + i_chg_max * r_eff_ohm) * i_chg_max)
    return np.maximum(p_dis, 0.0), np.maximum(p_chg, 0.0)
