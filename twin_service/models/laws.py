"""The pack's physical laws, each written once as a small scalar function that numba compiles.

The step loop (kernel.py), the pulse limits and the drivetrain all call these; nothing else
re-derives them. Units: V, A, ohm, W, s, degC unless a name says otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from twin_service.models.constants import GAS_CONSTANT, KELVIN, T_REF_K
from twin_service.models.jit import jit

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
def cell_ocv(soc: float, soc_nodes: np.ndarray, v_nodes: np.ndarray) -> float:
    """Cell open-circuit voltage (V) at state of charge `soc` (0..1), from a table."""
    return interp(soc, soc_nodes, v_nodes)


@jit
def resistance_blend(
    temperature_c: float, temperature_nodes: np.ndarray, activation_energy_j_mol: float
) -> tuple[int, int, float, float]:
    """How the resistance map's rows make the value at `temperature_c`: (row a, row b, weight
    of b, scale): linear between the nodes (scale 1), Arrhenius with `activation_energy_j_mol`
    from the nearest node beyond them (a == b)."""
    nt = temperature_nodes.shape[0]
    if temperature_c <= temperature_nodes[0] or nt == 1:
        node = 0
    elif temperature_c >= temperature_nodes[nt - 1]:
        node = nt - 1
    else:
        hi = 1
        while temperature_nodes[hi] < temperature_c:
            hi += 1
        w = (temperature_c - temperature_nodes[hi - 1]) / (
            temperature_nodes[hi] - temperature_nodes[hi - 1]
        )
        return hi - 1, hi, w, 1.0
    t_k = temperature_c + KELVIN
    t_node = temperature_nodes[node] + KELVIN
    scale = math.exp(activation_energy_j_mol / GAS_CONSTANT * (1.0 / t_k - 1.0 / t_node))
    return node, node, 0.0, scale


@jit
def cell_resistance(
    soc: float,
    temperature_c: float,
    soc_nodes: np.ndarray,
    temperature_nodes: np.ndarray,
    table: np.ndarray,
    activation_energy_j_mol: float,
) -> float:
    """Resistance from a map over SOC and temperature (`table` holds one row of len(soc_nodes)
    values per temperature node, flattened): linear in SOC, and across temperature as
    resistance_blend says."""
    ns = soc_nodes.shape[0]
    a, b, w, scale = resistance_blend(temperature_c, temperature_nodes, activation_energy_j_mol)
    r = interp(soc, soc_nodes, table[a * ns : (a + 1) * ns])
    if a == b:
        return r * scale
    hi_r = interp(soc, soc_nodes, table[b * ns : (b + 1) * ns])
    return r + (hi_r - r) * w


@jit
def resistance_row(
    temperature_c: float,
    n_soc: int,
    temperature_nodes: np.ndarray,
    table: np.ndarray,
    activation_energy_j_mol: float,
    factor: float,
    out: np.ndarray,
) -> None:
    """out[j] = factor x the map's value at SOC node j and `temperature_c` (cell_resistance
    at every node; linear between them in SOC like it)."""
    a, b, w, scale = resistance_blend(temperature_c, temperature_nodes, activation_energy_j_mol)
    for j in range(n_soc):
        r = table[a * n_soc + j]
        if a == b:
            out[j] = factor * (r * scale)
        else:
            out[j] = factor * (r + (table[b * n_soc + j] - r) * w)


@jit
def charge_acceptance(
    soc: float,
    temperature_c: float,
    taper_soc: np.ndarray,
    taper_a: np.ndarray,
    derate_temperature: np.ndarray,
    derate_factor: np.ndarray,
) -> float:
    """The largest charge current (A) the battery management accepts: a taper over SOC times a
    derating over the pack temperature (lithium plating in the cold, wear in the heat)."""
    return interp(soc, taper_soc, taper_a) * interp(
        temperature_c, derate_temperature, derate_factor
    )


@jit
def hysteresis_update(
    h_v: float, current_a: float, dt_s: float, capacity_as: float, half_gap_v: float, rate: float
) -> float:
    """One-state OCV hysteresis (Plett, J. Power Sources 134 (2004) 262): dh/dq = -rate/Q *
    (h + M sign(I)), solved exactly for a constant current over dt. Discharge (I > 0) drives h
    towards -M, charge towards +M; at rest it holds."""
    if current_a == 0.0 or half_gap_v == 0.0:
        return h_v
    target = -half_gap_v if current_a > 0.0 else half_gap_v
    return target + (h_v - target) * math.exp(-rate * abs(current_a) * dt_s / capacity_as)


@jit
def carnot_cop(pack_k: float, lift_k: float, carnot_fraction: float, max_cop: float) -> float:
    """COP of moving heat into or out of a pack at `pack_k` against a lift of `lift_k` (K, the
    hot side minus the cold side): carnot_fraction x pack_k / lift, at most max_cop (and
    max_cop when the ambient already helps, lift <= 0)."""
    if lift_k <= 0.0:
        return max_cop
    return min(max_cop, carnot_fraction * pack_k / lift_k)


@jit
def tms_power(
    temperature_c: float,
    ambient_c: float,
    heat_below_c: float,
    cool_above_c: float,
    gain_w_k: float,
    max_heating_w: float,
    max_cooling_w: float,
    max_electric_w: float,
    heat_pump: bool,
    carnot_fraction: float,
    max_cop: float,
) -> tuple[float, float]:
    """Thermal management: (electrical power drawn, heat into the pack), both W. Below
    `heat_below_c` it heats, above `cool_above_c` it cools, with a heat flow proportional to the
    distance from the threshold up to the heating or cooling limit, and electrical power =
    heat / COP within `max_electric_w`. A heat pump or chiller has COP = carnot_fraction x the
    Carnot COP between pack and ambient, at most `max_cop`; a resistive heater has COP 1."""
    t_k = temperature_c + KELVIN
    a_k = ambient_c + KELVIN
    if temperature_c < heat_below_c:
        q = min(gain_w_k * (heat_below_c - temperature_c), max_heating_w)
        # a heat pump is never worse than a resistive heater
        cop = max(carnot_cop(t_k, t_k - a_k, carnot_fraction, max_cop), 1.0) if heat_pump else 1.0
        sign = 1.0
    elif temperature_c > cool_above_c:
        q = min(gain_w_k * (temperature_c - cool_above_c), max_cooling_w)
        cop = carnot_cop(t_k, a_k - t_k, carnot_fraction, max_cop)
        sign = -1.0
    else:
        return 0.0, 0.0
    electric = q / cop
    if electric > max_electric_w:
        electric = max_electric_w
        q = electric * cop
    return electric, sign * q


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
    r_dis_ohm: float,
    r_chg_ohm: float,
    soc: float,
    capacity_as: float,
    dt_s: float,
    v_min: float,
    v_max: float,
    soc_min: float,
    soc_max: float,
    max_discharge_a: float,
    max_charge_a: float,
    max_discharge_w: float,
    max_charge_w: float,
) -> tuple[float, float, float, float]:
    """Largest discharge and charge current magnitudes, then powers, over a step of dt: the
    terminal voltage stays within [v_min, v_max] (effective resistance `r_dis_ohm` while
    discharging, `r_chg_ohm` while charging), the current and power within the ratings, and
    the charge moved within the usable SOC window [soc_min, soc_max]."""
    i_dis = min(max_discharge_a, max((emf_v - v_min) / r_dis_ohm, 0.0))
    i_chg = min(max_charge_a, max((v_max - emf_v) / r_chg_ohm, 0.0))
    i_dis = min(i_dis, max(soc - soc_min, 0.0) * capacity_as / dt_s)
    i_chg = min(i_chg, max(soc_max - soc, 0.0) * capacity_as / dt_s)
    # Power rises with current up to I = E/(2R); beyond that more current gives less power.
    i_top = min(i_dis, emf_v / (2.0 * r_dis_ohm))
    p_dis = max(min(max_discharge_w, (emf_v - i_top * r_dis_ohm) * i_top), 0.0)
    p_chg = max(min(max_charge_w, (emf_v + i_chg * r_chg_ohm) * i_chg), 0.0)
    return i_dis, i_chg, p_dis, p_chg


@jit
def pack_current(
    power_w: float,
    current_a: float,
    emf_v: float,
    r_dis_ohm: float,
    r_chg_ohm: float,
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
        wanted = current_from_power(pw, emf_v, r_dis_ohm if pw > 0.0 else r_chg_ohm)
    cur = min(max(wanted, -i_chg), i_dis)
    return cur, cur != wanted or power_cut


@jit
def sample_active(power_w: float, current_a: float, mode: int) -> bool:
    """A sample with a demand, or plugged in or preconditioning (`mode` != 0): current may flow
    and thermal management runs. Otherwise the pack rests."""
    return mode != 0 or (current_a != 0.0 if math.isnan(power_w) else power_w != 0.0)


@jit
def substep_count(dt_s: float, active: bool) -> int:
    """Sub-steps of a sample, decided from its inputs alone (`active`: sample_active), so a
    batch and the same samples sent one by one are split alike."""
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
