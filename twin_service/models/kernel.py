"""The one step loop: a pack advanced sample by sample, sub-step by sub-step (numba).

Each sample holds its input constant over `dt_s`; samples longer than the internal step are
split into equal sub-steps decided from the inputs alone (laws.substep_count). Within a
sub-step the RC branch, the temperature and the charge are integrated exactly for the step's
constant current; the aging model then advances at the sub-step's starting SOC and
temperature.
"""

from __future__ import annotations

import math

from twin_service.models import aging
from twin_service.models.jit import entry, jit
from twin_service.models.laws import (
    SOH_FLOOR,
    cell_ocv,
    cell_resistance,
    charge_acceptance,
    hysteresis_update,
    lumped_temperature,
    operating_limits,
    pack_current,
    rc_factors,
    sample_active,
    substep_count,
    thermal_decay,
    tms_power,
)
from twin_service.models.state import PACK

# Pack parameter vector (PackParams.kernel_vector)
P_SERIES, P_CAP_AH, P_R0_FRAC, P_TAU, P_EA, P_VMIN, P_VMAX = range(7)
P_IDIS, P_ICHG, P_PDIS, P_PREG, P_HEATCAP, P_COND = range(7, 13)
P_SOC_MIN, P_SOC_MAX, P_HYST_V, P_HYST_RATE = range(13, 17)
# thermal management (P_TMS 0: none)
P_TMS, P_HEAT_BELOW, P_COOL_ABOVE, P_PRECOND, P_GAIN, P_QHEAT, P_QCOOL = range(17, 24)
P_PELEC, P_HEAT_PUMP, P_CARNOT, P_COP_MAX = range(24, 28)
N_PARAMS = 28
# Pack tables (PackParams.kernel_tables): OCV(SOC) per cell; pack resistance (fresh, ohm)
# over SOC x temperature for discharge and charge; accepted charge current (A) over SOC and
# its derating over temperature.
T_OCV_SOC, T_OCV_V, T_R_SOC, T_R_TEMP, T_R_DIS, T_R_CHG = range(6)
T_TAPER_SOC, T_TAPER_A, T_DERATE_T, T_DERATE_F = range(6, 10)
N_TABLES = 10
# Sample modes (bits): plugged in, preconditioning for a fast charge
MODE_CHARGING, MODE_PRECONDITION = 1, 2
# Pack fields of the state vector (the pack block sits at offset 0)
SOC, TEMP, V_RC, AMBIENT, ELAPSED, AGED, DIST, E_DIS, E_CHG, THROUGHPUT, HYST, E_TMS = (
    PACK.index(n) for n in ("soc", "temperature_c", "v_rc_v", "ambient_c", "elapsed_s",
                            "aged_s", "total_distance_km", "energy_discharged_kwh",
                            "energy_charged_kwh", "throughput_ah", "hysteresis_v",
                            "tms_energy_kwh"))  # fmt: skip
# Output columns per sample
O_SOC, O_V, O_I, O_P, O_T, O_SOH, O_RF, O_LIMITED, O_FLAGS, O_TMS = range(10)
N_OUT = 10
PULSE_S = 10.0  # reported power limits are 10 s pulse limits (HPPC convention)


@entry
def total_substeps(dt_s, power_w, current_a, mode):
    n = 0
    for k in range(dt_s.shape[0]):
        n += substep_count(dt_s[k], sample_active(power_w[k], current_a[k], mode[k]))
    return n


@jit
def _resistance(p, tab, rf, soc, temp, charging):
    """Total pack resistance (ohm) at `soc`, `temp`: the charge or the discharge map."""
    table = tab[T_R_CHG] if charging else tab[T_R_DIS]
    return rf * cell_resistance(soc, temp, tab[T_R_SOC], tab[T_R_TEMP], table, p[P_EA])


@jit
def _acceptance(tab, soc, temp):
    return charge_acceptance(
        soc, temp, tab[T_TAPER_SOC], tab[T_TAPER_A], tab[T_DERATE_T], tab[T_DERATE_F]
    )


@jit
def _terms(p, tab, s, soh, soc, g_rc):
    """At the start of a step with RC weight g_rc: the cell OCV, the EMF, the share of the
    resistance that acts over the step and the capacity (As)."""
    share = p[P_R0_FRAC] + (1.0 - p[P_R0_FRAC]) * (1.0 - g_rc)
    ocv = cell_ocv(soc, tab[T_OCV_SOC], tab[T_OCV_V])
    emf = p[P_SERIES] * (ocv + s[HYST]) - s[V_RC] * g_rc
    cap_as = p[P_CAP_AH] * 3600.0 * max(soh, SOH_FLOOR)
    return ocv, emf, share, cap_as


@jit
def rest_voltage(p, tab, s):
    """Terminal voltage at state `s` with no current: the EMF, the RC branch as it stands."""
    return _terms(p, tab, s, 1.0, s[SOC], 1.0)[1]


@jit
def _limits(p, emf, r_dis_eff, r_chg_eff, soc, cap_as, dt, accept):
    """Current and power limits over a step of dt (laws.operating_limits)."""
    return operating_limits(
        emf,
        r_dis_eff,
        r_chg_eff,
        soc,
        cap_as,
        dt,
        p[P_VMIN],
        p[P_VMAX],
        p[P_SOC_MIN],
        p[P_SOC_MAX],
        p[P_IDIS],
        min(p[P_ICHG], accept),
        p[P_PDIS],
        p[P_PREG],
    )


@entry
def pulse_limits(p, tab, s, capacity_terms, resistance_terms):
    """10 s discharge and charge power limits (W) at state `s`."""
    _, g_rc = rc_factors(PULSE_S, p[P_TAU])
    soh = aging.state_of_health(s, capacity_terms)
    rf = aging.resistance_factor(s, resistance_terms)
    soc, temp = s[SOC], s[TEMP]
    _, emf, share, cap_as = _terms(p, tab, s, soh, soc, g_rc)
    r_dis = _resistance(p, tab, rf, soc, temp, False) * share
    r_chg = _resistance(p, tab, rf, soc, temp, True) * share
    out = _limits(p, emf, r_dis, r_chg, soc, cap_as, PULSE_S, _acceptance(tab, soc, temp))
    return out[2], out[3]


@jit
def _tms(p, temp, ambient, mode):
    """Thermal management at pack temperature `temp`: (electrical W, heat into the pack W).
    Plugged in or preconditioning, it heats up to the preconditioning target."""
    heat_below = p[P_HEAT_BELOW]
    if mode != 0:
        heat_below = max(heat_below, p[P_PRECOND])
    return tms_power(temp, ambient, heat_below, p[P_COOL_ABOVE], p[P_GAIN], p[P_QHEAT],
                     p[P_QCOOL], p[P_PELEC], p[P_HEAT_PUMP] != 0.0, p[P_CARNOT],
                     p[P_COP_MAX])  # fmt: skip


# Sensitivities of a sample's end state to the estimator's parameters, accumulated over its
# sub-steps while estimating (models.estimator builds the transition matrix from them).
SN_SOC_CAP, SN_SOC_BIAS, SN_A, SN_VRC_RF, SN_VRC_BIAS, SN_HYST, SN_D, SN_T_RF = range(8)
SN_CUR, SN_REFF, SN_CHARGING, SN_SHARE = range(8, 12)
N_SENS = 12


NO_FACTORS = (math.nan, 0.0, 0.0, 0.0)  # decay factors for no sub-step length yet


@jit
def _decay_factors(dt, p, cached):
    """(dt, RC decay, RC weight, thermal decay) of a sub-step of dt: `cached` if it holds
    those of the same dt (they depend on dt only)."""
    if dt == cached[0]:
        return cached
    a_rc, g_rc = rc_factors(dt, p[P_TAU])
    return dt, a_rc, g_rc, thermal_decay(dt, p[P_COND], p[P_HEATCAP])


@jit
def _sample(k, dt_s, power_w, current_a, ambient_c, distance_m, mode, p, tab, s, model_id, off,
            capacity_terms, resistance_terms, multiplier, out, soh, rf, fixed, sens,
            factors):  # fmt: skip
    """Advance `s` over sample k and write its row of `out`; returns (soh, rf, factors)
    after it.

    `soh` and `rf` are the capacity fraction and resistance factor the sample runs with. The
    aging model updates them after every sub-step unless `fixed` (the estimator's values are
    held over the sample; the row then reports the aging model's own), and then `sens` gets
    the sample's sensitivities (SN_*; not touched otherwise). `factors`: _decay_factors of
    the previous sample (NO_FACTORS at first)."""
    cap_ah = p[P_CAP_AH]
    g_th = p[P_COND]
    active = sample_active(power_w[k], current_a[k], mode[k])
    m = substep_count(dt_s[k], active)
    tms_on = p[P_TMS] != 0.0 and active
    dt = dt_s[k] / m
    dta = dt * multiplier
    factors = _decay_factors(dt, p, factors)
    a_rc, g_rc, d_th = factors[1], factors[2], factors[3]
    charge = 0.0
    energy = 0.0
    tms_energy = 0.0
    limited_any = False
    flags = 0
    v = 0.0
    for _ in range(m):
        soc = s[SOC]
        temp = s[TEMP]
        p_tms = 0.0
        q_tms = 0.0
        demand = power_w[k]
        if tms_on:
            p_tms, q_tms = _tms(p, temp, ambient_c[k], mode[k])
            if not math.isnan(demand):
                demand = demand + p_tms
        # Only the branch the demand takes matters: the charge map and the acceptance while
        # charging, the discharge map otherwise (the current keeps the demand's sign).
        charging = (current_a[k] if math.isnan(demand) else demand) < 0.0
        ocv, emf, share, cap_as = _terms(p, tab, s, soh, soc, g_rc)
        r_tot = _resistance(p, tab, rf, soc, temp, charging)
        r_eff = r_tot * share
        accept = _acceptance(tab, soc, temp) if charging else math.inf
        i_dis, i_chg, p_dis, p_chg = _limits(p, emf, r_eff, r_eff, soc, cap_as, dt, accept)
        cur, limited = pack_current(
            demand, current_a[k], emf, r_eff, r_eff, i_dis, i_chg, p_dis, p_chg
        )
        if cur != 0.0:
            # The OCV at the sub-step's mid-SOC: its mean over the sub-step where the table is
            # linear, so steep parts of the curve do not depend on the sample rate.
            mid = cell_ocv(soc - 0.5 * cur * dt / cap_as, tab[T_OCV_SOC], tab[T_OCV_V])
            if mid != ocv:
                emf += p[P_SERIES] * (mid - ocv)
                i_dis, i_chg, p_dis, p_chg = _limits(p, emf, r_eff, r_eff, soc, cap_as, dt, accept)
                cur, limited = pack_current(
                    demand, current_a[k], emf, r_eff, r_eff, i_dis, i_chg, p_dis, p_chg
                )
        limited_any = limited_any or limited
        r0 = r_tot * p[P_R0_FRAC]
        r1 = r_tot - r0
        v = emf - cur * r_eff
        charge += cur * dt
        e_step = v * cur * dt
        energy += e_step
        if e_step > 0.0:
            s[E_DIS] += e_step / 3.6e6
        else:
            s[E_CHG] -= e_step / 3.6e6
        s[THROUGHPUT] += abs(cur) * dt / 3600.0
        tms_energy += p_tms * dt

        # RC branch, temperature, charge: exact for constant current over the sub-step.
        v_rc_mean = s[V_RC] * g_rc + cur * r1 * (1.0 - g_rc)
        heat = cur * (cur * r0 + v_rc_mean) + q_tms
        s[TEMP] = lumped_temperature(temp, ambient_c[k], heat, g_th, d_th)
        s[V_RC] = s[V_RC] * a_rc + cur * r1 * (1.0 - a_rc)
        h_before = s[HYST]
        s[HYST] = hysteresis_update(h_before, cur, dt, cap_as, p[P_HYST_V], p[P_HYST_RATE])
        new_soc = soc - cur * dt / cap_as
        s[SOC] = new_soc
        flags |= aging.step(model_id, s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah)
        if fixed:
            sens[SN_SOC_CAP] += cur * dt / cap_as
            sens[SN_SOC_BIAS] += dt / cap_as
            sens[SN_A] *= a_rc
            sens[SN_VRC_RF] = sens[SN_VRC_RF] * a_rc + (1.0 - a_rc) * cur * r1
            sens[SN_VRC_BIAS] = sens[SN_VRC_BIAS] * a_rc + (1.0 - a_rc) * r1
            if cur != 0.0 and p[P_HYST_V] != 0.0:
                # the decay hysteresis_update applied: (h - target) shrank by it
                target = -p[P_HYST_V] if cur > 0.0 else p[P_HYST_V]
                if h_before != target:
                    sens[SN_HYST] *= (s[HYST] - target) / (h_before - target)
                else:
                    sens[SN_HYST] *= math.exp(-p[P_HYST_RATE] * abs(cur) * dt / cap_as)
            sens[SN_D] *= d_th
            sens[SN_T_RF] = sens[SN_T_RF] * d_th + (1.0 - d_th) * (heat - q_tms) / g_th
            sens[SN_CUR] = cur
            sens[SN_REFF] = r_eff
            sens[SN_CHARGING] = 1.0 if charging else 0.0
            sens[SN_SHARE] = share
        else:
            soh = aging.state_of_health(s, capacity_terms)
            rf = aging.resistance_factor(s, resistance_terms)
    sample_dt = dt_s[k]
    s[ELAPSED] += sample_dt
    s[AGED] += sample_dt * multiplier
    s[DIST] += distance_m[k] / 1000.0
    s[AMBIENT] = ambient_c[k]
    s[E_TMS] += tms_energy / 3.6e6
    out[k, O_I] = charge / sample_dt
    out[k, O_P] = energy / sample_dt
    # Mean voltage weighted by charge, so V*I*dt is the sample's energy; a lone sub-step (or
    # one with almost no charge) reports its own voltage.
    out[k, O_V] = energy / charge if m > 1 and abs(charge) > 1e-6 * sample_dt else v
    out[k, O_SOC] = s[SOC]
    out[k, O_T] = s[TEMP]
    if fixed:
        out[k, O_SOH] = aging.state_of_health(s, capacity_terms)
        out[k, O_RF] = aging.resistance_factor(s, resistance_terms)
    else:
        out[k, O_SOH] = soh
        out[k, O_RF] = rf
    out[k, O_LIMITED] = 1.0 if limited_any else 0.0
    out[k, O_FLAGS] = flags
    out[k, O_TMS] = tms_energy / sample_dt
    return soh, rf, factors


@entry
def run(dt_s, power_w, current_a, ambient_c, distance_m, mode, p, tab, s, model_id, off,
        capacity_terms, resistance_terms, multiplier, out):  # fmt: skip
    """Advance state vector `s` in place over all samples; one row of `out` per sample. The
    aging model `model_id` keeps its block at s[off:]; SOH and resistance factor sum the
    terms of every model (models.aging.CAPACITY_TERMS, RESISTANCE_TERMS).

    Exactly one of power_w[k] (terminal power demand of the vehicle's loads, discharge > 0)
    and current_a[k] (the pack's whole current) is not NaN. Thermal management (if p[P_TMS])
    runs in active samples; its controller output is held over each sub-step (at most
    MAX_ACTIVE_SUBSTEP_S) and its electrical power adds to a power demand.
    """
    soh = aging.state_of_health(s, capacity_terms)
    rf = aging.resistance_factor(s, resistance_terms)
    factors = NO_FACTORS
    no_sens = p[:0]  # not touched: the aging model moves soh and rf
    for k in range(dt_s.shape[0]):
        soh, rf, factors = _sample(k, dt_s, power_w, current_a, ambient_c, distance_m, mode, p,
                                   tab, s, model_id, off, capacity_terms, resistance_terms,
                                   multiplier, out, soh, rf, False, no_sens,
                                   factors)  # fmt: skip
