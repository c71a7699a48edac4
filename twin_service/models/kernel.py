"""The one step loop: a pack advanced sample by sample, sub-step by sub-step (numba).

Each sample holds its input constant over `dt_s`; samples longer than the internal step are
split into equal sub-steps decided from the inputs alone (laws.substep_count). Within a
sub-step the RC branch, the temperature and the charge are integrated exactly for the step's
constant current; the aging model then advances at the sub-step's starting SOC and
temperature.
"""

from __future__ import annotations

from twin_service.models import aging
from twin_service.models.jit import jit
from twin_service.models.laws import (
    SOH_FLOOR,
    arrhenius,
    cell_ocv,
    lumped_temperature,
    operating_limits,
    pack_current,
    rc_factors,
    substep_count,
    thermal_decay,
)
from twin_service.models.state import PACK

# Pack parameter vector (PackParams.kernel_vector)
P_SERIES, P_CAP_AH, P_R0, P_R1, P_TAU, P_EA, P_VMIN, P_VMAX = range(8)
P_IDIS, P_ICHG, P_PDIS, P_PREG, P_HEATCAP, P_COND = range(8, 14)
N_PARAMS = 14
# Pack fields of the state vector (the pack block sits at offset 0)
SOC, TEMP, V_RC, AMBIENT, ELAPSED, AGED, DIST, E_DIS, E_CHG, THROUGHPUT = (
    PACK.index(n) for n in ("soc", "temperature_c", "v_rc_v", "ambient_c", "elapsed_s",
                            "aged_s", "total_distance_km", "energy_discharged_kwh",
                            "energy_charged_kwh", "throughput_ah"))  # fmt: skip
# Output columns per sample
O_SOC, O_V, O_I, O_P, O_T, O_SOH, O_RF, O_LIMITED, O_FLAGS = range(9)
N_OUT = 9
PULSE_S = 10.0  # reported power limits are 10 s pulse limits (HPPC convention)


@jit
def total_substeps(dt_s, power_w, current_a):
    n = 0
    for k in range(dt_s.shape[0]):
        n += substep_count(dt_s[k], power_w[k], current_a[k])
    return n


@jit
def _limits(p, s, soh, rf, soc, temp, g_rc, dt):
    """EMF and effective resistance over a step of dt with RC weight g_rc, and the limits."""
    arr = arrhenius(temp, -p[P_EA])
    r0 = p[P_R0] * rf * arr
    r1 = p[P_R1] * rf * arr
    emf = p[P_SERIES] * cell_ocv(soc) - s[V_RC] * g_rc
    r_eff = r0 + r1 * (1.0 - g_rc)
    cap_as = p[P_CAP_AH] * 3600.0 * max(soh, SOH_FLOOR)
    i_dis, i_chg, p_dis, p_chg = operating_limits(
        emf,
        r_eff,
        soc,
        cap_as,
        dt,
        p[P_VMIN],
        p[P_VMAX],
        p[P_IDIS],
        p[P_ICHG],
        p[P_PDIS],
        p[P_PREG],
    )
    return emf, r0, r1, r_eff, cap_as, i_dis, i_chg, p_dis, p_chg


@jit
def pulse_limits(p, s, capacity_terms, resistance_terms):
    """10 s discharge and charge power limits (W) at state `s`."""
    _, g_rc = rc_factors(PULSE_S, p[P_TAU])
    soh = aging.state_of_health(s, capacity_terms)
    rf = aging.resistance_factor(s, resistance_terms)
    out = _limits(p, s, soh, rf, s[SOC], s[TEMP], g_rc, PULSE_S)
    return out[7], out[8]


@jit
def run(dt_s, power_w, current_a, ambient_c, distance_m, p, s, model_id, off, capacity_terms,
        resistance_terms, multiplier, out):  # fmt: skip
    """Advance state vector `s` in place over all samples; one row of `out` per sample. The
    aging model `model_id` keeps its block at s[off:]; SOH and resistance factor sum the
    terms of every model (models.aging.CAPACITY_TERMS, RESISTANCE_TERMS).

    Exactly one of power_w[k] (terminal power, discharge > 0) and current_a[k] is not NaN.
    """
    cap_ah = p[P_CAP_AH]
    g_th = p[P_COND]
    soh = aging.state_of_health(s, capacity_terms)
    rf = aging.resistance_factor(s, resistance_terms)
    for k in range(dt_s.shape[0]):
        m = substep_count(dt_s[k], power_w[k], current_a[k])
        dt = dt_s[k] / m
        dta = dt * multiplier
        a_rc, g_rc = rc_factors(dt, p[P_TAU])
        d_th = thermal_decay(dt, g_th, p[P_HEATCAP])
        charge = 0.0
        energy = 0.0
        limited_any = False
        flags = 0
        v = 0.0
        for _ in range(m):
            soc = s[SOC]
            temp = s[TEMP]
            emf, r0, r1, r_eff, cap_as, i_dis, i_chg, p_dis, p_chg = _limits(
                p, s, soh, rf, soc, temp, g_rc, dt
            )
            cur, limited = pack_current(
                power_w[k], current_a[k], emf, r_eff, i_dis, i_chg, p_dis, p_chg
            )
            limited_any = limited_any or limited
            v = emf - cur * r_eff
            charge += cur * dt
            e_step = v * cur * dt
            energy += e_step
            if e_step > 0.0:
                s[E_DIS] += e_step / 3.6e6
            else:
                s[E_CHG] -= e_step / 3.6e6
            s[THROUGHPUT] += abs(cur) * dt / 3600.0

            # RC branch, temperature, charge: exact for constant current over the sub-step.
            v_rc_mean = s[V_RC] * g_rc + cur * r1 * (1.0 - g_rc)
            heat = cur * (cur * r0 + v_rc_mean)
            s[TEMP] = lumped_temperature(temp, ambient_c[k], heat, g_th, d_th)
            s[V_RC] = s[V_RC] * a_rc + cur * r1 * (1.0 - a_rc)
            new_soc = soc - cur * dt / cap_as
            s[SOC] = new_soc
            flags |= aging.step(
                model_id, s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah
            )
            soh = aging.state_of_health(s, capacity_terms)
            rf = aging.resistance_factor(s, resistance_terms)
        sample_dt = dt_s[k]
        s[ELAPSED] += sample_dt
        s[AGED] += sample_dt * multiplier
        s[DIST] += distance_m[k] / 1000.0
        s[AMBIENT] = ambient_c[k]
        out[k, O_I] = charge / sample_dt
        out[k, O_P] = energy / sample_dt
        # Mean voltage weighted by charge, so V*I*dt is the sample's energy; a lone sub-step
        # (or one with almost no charge) reports its own voltage.
        out[k, O_V] = energy / charge if m > 1 and abs(charge) > 1e-6 * sample_dt else v
        out[k, O_SOC] = s[SOC]
        out[k, O_T] = s[TEMP]
        out[k, O_SOH] = soh
        out[k, O_RF] = rf
        out[k, O_LIMITED] = 1.0 if limited_any else 0.0
        out[k, O_FLAGS] = flags
