"""The step kernel as one compiled sequential loop (numba), sample by sample, sub-step by
sub-step. It integrates the same discrete equations as the numpy waveform relaxation in
pack.py (the tests hold both to 1e-9) and is the fast path when numba is installed.
"""

from __future__ import annotations

import math

import numpy as np

from twin_service.models.aging import naumann as nm
from twin_service.models.aging import seed as sd
from twin_service.models.aging.half_cycles import REVERSAL_BAND
from twin_service.models.ecm import GAS_CONSTANT, KELVIN, T_REF_K
from twin_service.models.ocv import OCV_SOC, OCV_V

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None

# Parameter vector layout
P_SERIES, P_CAP_AH, P_R0, P_R1, P_TAU, P_EA, P_VMIN, P_VMAX = range(8)
P_IDIS, P_ICHG, P_PDIS, P_PREG, P_HEATCAP, P_COND, P_SOH_FLOOR, P_ACTIVE_C = range(8, 16)
N_PARAMS = 16
# State vector layout
(S_SOC, S_T, S_VRC, S_ELAPSED, S_AGED, S_EDIS, S_ECHG, S_THR, S_CAL, S_CALR, S_CYC, S_CYCR,
 S_SEED, S_HC_DIR, S_HC_START, S_HC_EXT, S_HC_AH, S_HC_ACT, S_HC_LSQ, S_HC_RES) = range(20)
N_STATE = 20
# Output columns per sample
O_SOC, O_V, O_I, O_P, O_T, O_SOH, O_RF, O_LIMITED = range(8)
N_OUT = 8

_OCV_SOC = np.ascontiguousarray(OCV_SOC)
_OCV_V = np.ascontiguousarray(OCV_V)


def _ocv(soc: float) -> float:
    if soc <= _OCV_SOC[0]:
        return _OCV_V[0]
    if soc >= _OCV_SOC[-1]:
        return _OCV_V[-1]
    lo, hi = 0, _OCV_SOC.shape[0] - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _OCV_SOC[mid] <= soc:
            lo = mid
        else:
            hi = mid
    frac = (soc - _OCV_SOC[lo]) / (_OCV_SOC[hi] - _OCV_SOC[lo])
    return _OCV_V[lo] + frac * (_OCV_V[hi] - _OCV_V[lo])


def _naumann_arrhenius(temp_c: float, ea: float) -> float:
    return math.exp(-ea / nm.GAS_CONSTANT * (1.0 / (temp_c + 273.15) - 1.0 / nm.T_REF_K))


def _cycle_capacity_factor(c_rate: float, doc: float) -> float:
    x = doc - nm.CYC_KDOC_CENTER
    return (nm.CYC_KC_SLOPE * c_rate + nm.CYC_KC_OFFSET) * (
        nm.CYC_KDOC_A * x * x * x + nm.CYC_KDOC_B) / 100.0


def _cycle_resistance_factor(c_rate: float, doc: float) -> float:
    x = doc - nm.CYC_R_DOC_CENTER
    k_c = max(nm.CYC_R_C_SLOPE * c_rate + nm.CYC_R_C_OFFSET, 0.0)
    return k_c * (nm.CYC_R_DOC_A * x * x * x + nm.CYC_R_DOC_B) / 100.0


def _mean_c_rate(ah: float, active_s: float, cap_ah: float) -> float:
    return (ah / (active_s / 3600.0)) / cap_ah if active_s > 0.0 else 0.0


def _run(dt_s, power_w, current_a, ambient_c, counts, p, s, seed_model, multiplier, out):
    """Advance state vector `s` in place over all samples; write per-sample rows to `out`."""
    cap_ah = p[P_CAP_AH]
    g_th = p[P_COND]
    band = REVERSAL_BAND
    for k in range(dt_s.shape[0]):
        m = counts[k]
        dt = dt_s[k] / m
        dta = dt * multiplier
        by_current = math.isnan(power_w[k])
        x = dt / p[P_TAU]
        a_rc = math.exp(-x)
        g_rc = -math.expm1(-x) / x
        d_th = math.exp(-dt * g_th / p[P_HEATCAP])
        charge = 0.0
        energy = 0.0
        limited_any = False
        v = 0.0
        for _ in range(m):
            soc = s[S_SOC]
            temp = s[S_T]
            soh = min(1.0, max(0.0, 1.0 - s[S_CAL] - s[S_CYC] - s[S_SEED]))
            rf = 1.0 + s[S_CALR] + s[S_CYCR]
            arr = math.exp(p[P_EA] / GAS_CONSTANT * (1.0 / (temp + KELVIN) - 1.0 / T_REF_K))
            r0 = p[P_R0] * rf * arr
            r1 = p[P_R1] * rf * arr
            emf = p[P_SERIES] * _ocv(soc) - s[S_VRC] * g_rc
            r_eff = r0 + r1 * (1.0 - g_rc)
            i_dis = min(p[P_IDIS], max((emf - p[P_VMIN]) / r_eff, 0.0))
            i_chg = min(p[P_ICHG], max((p[P_VMAX] - emf) / r_eff, 0.0))
            cap_as = cap_ah * 3600.0 * max(soh, p[P_SOH_FLOOR])
            i_dis = min(i_dis, max(soc, 0.0) * cap_as / dt)
            i_chg = min(i_chg, max(1.0 - soc, 0.0) * cap_as / dt)
            i_top = min(i_dis, emf / (2.0 * r_eff))
            p_dis = max(min(p[P_PDIS], (emf - i_top * r_eff) * i_top), 0.0)
            p_chg = max(min(p[P_PREG], (emf + i_chg * r_eff) * i_chg), 0.0)
            if by_current:
                wanted = current_a[k]
                power_limited = False
            else:
                demand = power_w[k]
                pw = min(max(demand, -p_chg), p_dis)
                power_limited = pw != demand
                disc = max(emf * emf - 4.0 * r_eff * pw, 0.0)
                wanted = 2.0 * pw / (emf + math.sqrt(disc))
            cur = min(max(wanted, -i_chg), i_dis)
            if cur != wanted or power_limited:
                limited_any = True
            v = emf - cur * r_eff
            charge += cur * dt
            e_step = v * cur * dt
            energy += e_step
            if e_step > 0.0:
                s[S_EDIS] += e_step / 3.6e6
            else:
                s[S_ECHG] -= e_step / 3.6e6
            s[S_THR] += abs(cur) * dt / 3600.0

            # RC branch, temperature, charge: exact for constant current over the sub-step.
            v_rc_mean = s[S_VRC] * g_rc + cur * r1 * (1.0 - g_rc)
            heat = cur * (cur * r0 + v_rc_mean)
            t_eq = ambient_c[k] + heat / g_th
            s[S_T] = t_eq + (temp - t_eq) * d_th
            s[S_VRC] = s[S_VRC] * a_rc + cur * r1 * (1.0 - a_rc)
            new_soc = soc - cur * dt / cap_as
            s[S_SOC] = new_soc

            # Aging at the sub-step's starting SOC and temperature.
            if seed_model:
                c_rate = abs(cur) / cap_ah
                if soc > sd.HIGH_SOC:
                    f_soc = sd.HIGH_SOC_FACTOR
                elif soc < sd.LOW_SOC:
                    f_soc = sd.LOW_SOC_FACTOR
                else:
                    f_soc = 1.0
                thermal = math.exp((temp - sd.THERMAL_REF_C) / sd.THERMAL_SCALE_C)
                rate = (sd.CYCLE_COEFF * c_rate**sd.CYCLE_EXPONENT
                        + sd.THERMAL_COEFF * thermal + sd.CALENDAR_COEFF * f_soc)
                s[S_SEED] += rate * dta
                continue
            xs = soc - 0.5
            k_cap = nm.CAL_K_REF * _naumann_arrhenius(temp, nm.CAL_EA) * (
                nm.CAL_SOC_C * xs * xs * xs + nm.CAL_SOC_D)
            s[S_CAL] = math.sqrt(s[S_CAL] * s[S_CAL] + k_cap * k_cap * dta)
            k_res = nm.CAL_R_K_REF * _naumann_arrhenius(temp, nm.CAL_R_EA) * (
                nm.CAL_R_SOC_A * xs * xs + nm.CAL_R_SOC_B)
            s[S_CALR] += k_res * dta

            # Half-cycle detection on the sub-step's end SOC.
            d = s[S_HC_DIR]
            if d == 0.0 and new_soc != s[S_HC_START]:
                d = 1.0 if new_soc > s[S_HC_START] else -1.0
                s[S_HC_EXT] = s[S_HC_START]
            if (d < 0.0 and new_soc > s[S_HC_EXT] + band) or (
                d > 0.0 and new_soc < s[S_HC_EXT] - band
            ):
                doc_done = abs(s[S_HC_EXT] - s[S_HC_START])
                c_done = _mean_c_rate(s[S_HC_AH], s[S_HC_ACT], cap_ah)
                kq = _cycle_capacity_factor(c_done, doc_done)
                fec = multiplier * doc_done / 2.0
                s[S_HC_LSQ] += kq * kq * fec
                s[S_HC_RES] += _cycle_resistance_factor(c_done, doc_done) * fec
                d = -d
                s[S_HC_START] = s[S_HC_EXT]
                s[S_HC_AH] = 0.0
                s[S_HC_ACT] = 0.0
            if d < 0.0:
                s[S_HC_EXT] = min(s[S_HC_EXT], new_soc)
            elif d > 0.0:
                s[S_HC_EXT] = max(s[S_HC_EXT], new_soc)
            s[S_HC_DIR] = d
            s[S_HC_AH] += abs(cur) * dt / 3600.0
            if abs(cur) > p[P_ACTIVE_C] * cap_ah:
                s[S_HC_ACT] += dt
            doc = abs(s[S_HC_EXT] - s[S_HC_START]) if d != 0.0 else 0.0
            c_now = _mean_c_rate(s[S_HC_AH], s[S_HC_ACT], cap_ah)
            kq = _cycle_capacity_factor(c_now, doc)
            fec = multiplier * doc / 2.0
            s[S_CYC] = math.sqrt(s[S_HC_LSQ] + kq * kq * fec)
            s[S_CYCR] = s[S_HC_RES] + _cycle_resistance_factor(c_now, doc) * fec
        s[S_ELAPSED] += dt_s[k]
        s[S_AGED] += dt_s[k] * multiplier
        sample_dt = dt_s[k]
        out[k, O_I] = charge / sample_dt
        out[k, O_P] = energy / sample_dt
        # Mean voltage weighted by charge, so V*I*dt is the sample's energy; a lone sub-step
        # (or one with almost no charge) reports its own voltage.
        out[k, O_V] = energy / charge if m > 1 and abs(charge) > 1e-6 * sample_dt else v
        out[k, O_SOC] = s[S_SOC]
        out[k, O_T] = s[S_T]
        out[k, O_SOH] = min(1.0, max(0.0, 1.0 - s[S_CAL] - s[S_CYC] - s[S_SEED]))
        out[k, O_RF] = 1.0 + s[S_CALR] + s[S_CYCR]
        out[k, O_LIMITED] = 1.0 if limited_any else 0.0


def _compile(fn, cache: bool = True):
    """njit with an on-disk cache where one can be written (the package's __pycache__, the
    user cache or NUMBA_CACHE_DIR); without one numba refuses cache=True, so compile per
    process instead."""
    try:
        return njit(cache=cache)(fn)
    except RuntimeError:
        if not cache:
            raise
        return njit(cache=False)(fn)


AVAILABLE = njit is not None
if AVAILABLE:
    _ocv = _compile(_ocv)
    _naumann_arrhenius = _compile(_naumann_arrhenius)
    _cycle_capacity_factor = _compile(_cycle_capacity_factor)
    _cycle_resistance_factor = _compile(_cycle_resistance_factor)
    _mean_c_rate = _compile(_mean_c_rate)
    run = _compile(_run)
else:  # pragma: no cover
    run = None
