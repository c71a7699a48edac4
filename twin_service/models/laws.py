"""The pack's physical laws, each written once as a small scalar function that numba compiles.

The step loop (kernel.py), the pulse limits and the drivetrain all call these; nothing else
re-derives them. Units: V, A, ohm, W, s, degC unless a name says otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from twin_service.models.constants import GAS_CONSTANT, KELVIN, T_REF_K
from twin_service.models.jit import jit

# Cell open-circuit voltage: PyBaMM `Prada2013` A123-type 2.3 Ah LFP cell, OCV = U_p - U_n over
# its stoichiometry window (REFERENCES.md). The 0 % point is a linear extrapolation of the
# 5-10 % segment.
OCV_SOC = np.array([0.0, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.00])
OCV_V = np.array(
    [2.5925, 2.7853, 2.9781, 3.1685, 3.2058, 3.2525, 3.2660, 3.2688, 3.2740, 3.3097, 3.3142,
     3.3164, 3.6000]
)  # fmt: skip

MAX_ACTIVE_SUBSTEP_S = 10.0  # sub-step length while current flows (OCV and R change)
MAX_REST_SUBSTEP_S = 3600.0  # sub-step length at rest (temperature relaxes, aging continues)
SOH_FLOOR = 0.05  # capacity never used below this fraction, to keep SOC finite


@jit
def interp(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """Piecewise-linear interpolation, clamped at the ends: the value `np.interp` gives."""
    n = xp.shape[0]
    if x >= xp[n - 1]:
        return fp[n - 1]
    if x <= xp[0]:
        return fp[0]
    lo, hi = 0, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xp[mid] <= x:
            lo = mid
        else:
            hi = mid
    if xp[lo] == x:
        return fp[lo]
    slope = (fp[hi] - fp[lo]) / (xp[hi] - xp[lo])
    return slope * (x - xp[lo]) + fp[lo]


@jit
def cell_ocv(soc: float) -> float:
    """Cell open-circuit voltage (V) at state of charge `soc` (0..1)."""
    return interp(soc, OCV_SOC, OCV_V)


@jit
def arrhenius(temperature_c: float, activation_energy_j_mol: float) -> float:
    """Rate multiplier relative to 25 degC: exp(-Ea/R * (1/T - 1/T_ref)). A resistance, which
    falls as the temperature rises, takes -Ea. Takes floats or arrays."""
    t_k = temperature_c + KELVIN
    return np.exp(-activation_energy_j_mol / GAS_CONSTANT * (1.0 / t_k - 1.0 / T_REF_K))


@jit
def rc_factors(dt_s: float, tau_s: float) -> tuple[float, float]:
    """An RC branch under constant current over dt: the decay a = exp(-dt/tau) of its voltage
    and the weight g = tau/dt * (1 - a) of the initial voltage in the step average."""
    x = dt_s / tau_s
    return math.exp(-x), -math.expm1(-x) / x


@jit
def thermal_decay(dt_s: float, conductance_w_k: float, heat_capacity_j_k: float) -> float:
    """Fraction of the temperature excess over equilibrium that survives a step of dt."""
    return math.exp(-dt_s * conductance_w_k / heat_capacity_j_k)


@jit
def lumped_temperature(
    temperature_c: float, ambient_c: float, heat_w: float, conductance_w_k: float, decay: float
) -> float:
    """C dT/dt = Q - G (T - T_amb), solved exactly over a step of constant Q and T_amb."""
    t_eq = ambient_c + heat_w / conductance_w_k
    return t_eq + (temperature_c - t_eq) * decay


@jit
def current_from_power(power_w: float, emf_v: float, r_eff_ohm: float) -> float:
    """The smaller-magnitude root of P = (E - I R) I (discharge > 0). Demands beyond E^2/(4R)
    give the current at that maximum; callers clip the power to the limits first."""
    disc = max(emf_v * emf_v - 4.0 * r_eff_ohm * power_w, 0.0)
    # 2P / (E + sqrt(E^2 - 4RP)) avoids cancellation for small P.
    return 2.0 * power_w / (emf_v + math.sqrt(disc))


@jit
def operating_limits(
    emf_v: float,
    r_eff_ohm: float,
    soc: float,
    capacity_as: float,
    dt_s: float,
    v_min: float,
    v_max: float,
    max_discharge_a: float,
    max_charge_a: float,
    max_discharge_w: float,
    max_charge_w: float,
) -> tuple[float, float, float, float]:
    """Largest discharge and charge current magnitudes, then powers, over a step of dt: the
    terminal voltage stays within [v_min, v_max], the current and power within the ratings,
    and the charge moved within what the pack holds (SOC stays in 0..1)."""
    i_dis = min(max_discharge_a, max((emf_v - v_min) / r_eff_ohm, 0.0))
    i_chg = min(max_charge_a, max((v_max - emf_v) / r_eff_ohm, 0.0))
    i_dis = min(i_dis, max(soc, 0.0) * capacity_as / dt_s)
    i_chg = min(i_chg, max(1.0 - soc, 0.0) * capacity_as / dt_s)
    # Power rises with current up to I = E/(2R); beyond that more current gives less power.
    i_top = min(i_dis, emf_v / (2.0 * r_eff_ohm))
    p_dis = max(min(max_discharge_w, (emf_v - i_top * r_eff_ohm) * i_top), 0.0)
    p_chg = max(min(max_charge_w, (emf_v + i_chg * r_eff_ohm) * i_chg), 0.0)
    return i_dis, i_chg, p_dis, p_chg


@jit
def pack_current(
    power_w: float,
    current_a: float,
    emf_v: float,
    r_eff_ohm: float,
    i_dis: float,
    i_chg: float,
    p_dis: float,
    p_chg: float,
) -> tuple[float, bool]:
    """The current a power demand (or, where power is NaN, a current demand) gets within the
    limits, and whether a limit cut the demand."""
    if math.isnan(power_w):
        wanted = current_a
        power_cut = False
    else:
        pw = min(max(power_w, -p_chg), p_dis)
        power_cut = pw != power_w
        wanted = current_from_power(pw, emf_v, r_eff_ohm)
    cur = min(max(wanted, -i_chg), i_dis)
    return cur, cur != wanted or power_cut


@jit
def substep_count(dt_s: float, power_w: float, current_a: float) -> int:
    """Sub-steps of a sample, decided from its inputs alone (so a batch and the same samples
    sent one by one are split alike)."""
    active = current_a != 0.0 if math.isnan(power_w) else power_w != 0.0
    max_dt = MAX_ACTIVE_SUBSTEP_S if active else MAX_REST_SUBSTEP_S
    return max(int(math.ceil(dt_s / max_dt)), 1)


@jit
def motor_electrical_power(
    mech_w: float,
    motor_peak_w: float,
    efficiency_load: np.ndarray,
    efficiency_value: np.ndarray,
    transmission_efficiency: float,
) -> float:
    """Electrical power of one motor: mech / eta when motoring, mech * eta when regenerating,
    eta the motor efficiency at its load (fraction of peak) times the transmission's."""
    load = min(abs(mech_w) / motor_peak_w, 1.0)
    eta = interp(load, efficiency_load, efficiency_value) * transmission_efficiency
    return mech_w / eta if mech_w >= 0.0 else mech_w * eta


REVERSAL_BAND = 0.005  # SOC fraction a run must move back from its extreme to end


@jit
def run_start(
    direction: float, start_soc: float, extreme_soc: float, soc: float
) -> tuple[float, float]:
    """A run of SOC in one direction (a half-cycle) takes its direction from the first move
    away from where it started: (direction, extreme) after `soc`."""
    if direction == 0.0 and soc != start_soc:
        return (1.0 if soc > start_soc else -1.0), start_soc
    return direction, extreme_soc


@jit
def run_reversed(direction: float, extreme_soc: float, soc: float) -> bool:
    """The run ended at its extreme: SOC moved back from it by more than REVERSAL_BAND, so
    regeneration blips inside a discharge do not split it."""
    return (direction < 0.0 and soc > extreme_soc + REVERSAL_BAND) or (
        direction > 0.0 and soc < extreme_soc - REVERSAL_BAND
    )


@jit
def run_extreme(direction: float, extreme_soc: float, soc: float) -> float:
    """The run's extreme SOC after `soc`."""
    if direction < 0.0:
        return min(extreme_soc, soc)
    if direction > 0.0:
        return max(extreme_soc, soc)
    return extreme_soc
