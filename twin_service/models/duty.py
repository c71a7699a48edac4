"""The pack's duty on the forecast's repeating day: C-rates and temperatures of driving and of
AC and DC charging, from the usage, the pack's resistance map, its lumped thermal model and
its thermal management (the laws the step uses). The forecast's aging models take them as
`Usage.drive_c_rate`, `dc_c_rate`, `op_fraction` and `op_temp_c`.

Assumptions (stated, not fitted):
- driving: the day's distance at DRIVE_SPEED_KMH in TRIPS_PER_DAY trips; the battery power
  while driving is exponentially distributed about its mean (wh_per_km x speed), the
  maximum-entropy law for a positive quantity of known mean, so a power cap P_cap leaves the
  mean m (1 - e^-x) and the mean square 2 m^2 (1 - e^-x (1 + x)), x = P_cap / m; the
  distance is covered more slowly, at the same energy per km;
- charging: the day's energy is put back, a share `dc_fast_share` of it by DC fast charging at
  the pack's accepted current (taper over the swing, derated at the pack temperature, at most
  DC_FAST_C_RATE), the rest by AC at `charge_c_rate` (at most the accepted current), in one
  session per swing that starts from the driven pack (plugged in on arrival);
- each period's mean temperature is that of the lumped pack, C dT/dt = I^2 R - G (T - T_0),
  from T_0 over the period (a charge's AC and DC parts: at their currents over the session);
  while active, thermal management heats at most at its heating limit up to its lower set
  point (for a DC charge: the preconditioning target) and holds the pack near its upper set
  point; with `preconditioning`, the pack reaches a DC charger at the
  preconditioning target; the rest of the day the pack is at ambient. (The step's thermal
  management heats any plugged-in pack to the preconditioning target; the forecast does so for
  DC charging only, since a BMS heats for AC charging only as far as charging needs, and hours
  of AC charging at that target would book calendar aging a parked car does not see.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin_service.models.forecast import DC_FAST_C_RATE, DRIVE_SPEED_KMH, swing
from twin_service.models.jit import jit
from twin_service.models.laws import cell_resistance, interp
from twin_service.models.pack import PackParams

TRIPS_PER_DAY = 2.0
AC, DC, DRIVE = range(3)  # the operating periods (columns of op_fraction, op_temp_c)
PERIODS = ("ac_charging", "dc_charging", "driving")
_TAPER_POINTS = 9  # SOC points the taper is averaged over within the swing


@dataclass(frozen=True)
class Duty:
    """Per vehicle: (V,) C-rates and (V, 3) shares of the day and pack temperatures."""

    drive_c_rate: np.ndarray
    ac_c_rate: np.ndarray  # the usage's charge_c_rate, at most what the pack accepts
    dc_c_rate: np.ndarray
    op_fraction: np.ndarray
    op_temp_c: np.ndarray


@jit
def pack_resistance(soc, temperature_c, charging, tab_soc, tab_t, r_dis, r_chg, ea):
    """The fresh pack's resistance (ohm) from its map, as the step's `cell_resistance`."""
    if charging:
        return cell_resistance(soc, temperature_c, tab_soc, tab_t, r_chg, ea)
    return cell_resistance(soc, temperature_c, tab_soc, tab_t, r_dis, ea)


@jit
def period_temperature(t0, heat_w, hours, heat_cap, cond, tms, low_c, high_c, gain, q_heat,
                       q_cool):  # fmt: skip
    """Mean temperature of the lumped pack over a period of `hours` with `heat_w` generated,
    starting at `t0`; with thermal management (`tms`), heated at most at `q_heat` towards
    `low_c` and cooled at most at `q_cool` towards `high_c` (a proportional loop of `gain`
    W/K holds it just above)."""
    if hours <= 0.0:
        return t0
    x = hours * 3600.0 * cond / heat_cap
    phi = 1.0 - (-math.expm1(-x)) / x if x > 1e-9 else 0.5 * x
    t = t0 + heat_w / cond * phi
    if tms:
        if t < low_c:
            t = min(low_c, t + q_heat * hours * 3600.0 / (2.0 * heat_cap))
        q = max(heat_w, 0.0)
        ceiling = high_c + min(q, q_cool) / gain + max(q - q_cool, 0.0) / cond
        if t > ceiling:
            t = max(ceiling, t - q_cool * hours * 3600.0 / (2.0 * heat_cap))
    return t


@jit
def _derating(t_start, t_mean, derate_t, derate_f):
    """The charge derating over the pack temperature (as in laws.charge_acceptance), averaged
    over a session that rises linearly from `t_start` about `t_mean` (Simpson's rule)."""
    t_end = 2.0 * t_mean - t_start
    return (interp(t_start, derate_t, derate_f) + 4.0 * interp(t_mean, derate_t, derate_f)
            + interp(t_end, derate_t, derate_f)) / 6.0  # fmt: skip


@jit
def _duty(daily_km, wh_per_km, soc_min, soc_max, ambient_c, ac_c, share, cap_w, precondition,
          soh, energy_kwh, q_ah, heat_cap, cond, tms, heat_below, cool_above, precond_c, gain,
          q_heat, q_cool, max_charge_a, tab_soc, tab_t, r_dis, r_chg, ea, taper_soc, taper_a,
          derate_t, derate_f, drive_c_out, ac_out, dc_c_out, frac_out, temp_out):  # fmt: skip
    v_nom = energy_kwh * 1000.0 / q_ah
    for v in range(daily_km.shape[0]):
        amb = ambient_c[v]
        daily_kwh = daily_km[v] * wh_per_km[v] / 1000.0
        window = soc_max[v] - soc_min[v]
        doc, swings = swing(energy_kwh, daily_kwh, window, soh[v])
        moved = doc * swings  # SOC moved each way per day
        mid = soc_max[v] - 0.5 * doc
        for j in range(3):
            frac_out[v, j] = 0.0
            temp_out[v, j] = amb
        # Driving.
        mean_w = wh_per_km[v] * DRIVE_SPEED_KMH
        drive_c_out[v] = mean_w / (energy_kwh * 1000.0)
        t_drive = amb
        if daily_km[v] > 0.0 and mean_w > 0.0:
            x = cap_w[v] / mean_w
            ex = math.exp(-x)
            capped = max(mean_w * -math.expm1(-x), 1e-9 * mean_w)
            square = 2.0 * mean_w * mean_w * (1.0 - ex * (1.0 + x))
            drive_c_out[v] = capped / (energy_kwh * 1000.0)
            hours = daily_km[v] / DRIVE_SPEED_KMH * mean_w / capped
            trip_h = hours / TRIPS_PER_DAY
            for _ in range(2):  # the resistance at the period's temperature
                r = pack_resistance(mid, t_drive, False, tab_soc, tab_t, r_dis, r_chg, ea)
                t_drive = period_temperature(amb, square / (v_nom * v_nom) * r, trip_h,
                                             heat_cap, cond, tms, heat_below, cool_above, gain,
                                             q_heat, q_cool)  # fmt: skip
            frac_out[v, DRIVE] = hours / 24.0
            temp_out[v, DRIVE] = t_drive
        # Charging: AC within the thermal management's normal band; DC heated towards the
        # preconditioning target (fast charging needs a warm pack).
        low = max(heat_below, precond_c)
        dc_nominal = DC_FAST_C_RATE
        taper = 0.0
        for k in range(_TAPER_POINTS):
            soc = soc_max[v] - doc + doc * k / (_TAPER_POINTS - 1)
            taper += interp(soc, taper_soc, taper_a) / q_ah
        dc_nominal = min(dc_nominal, taper / _TAPER_POINTS, max_charge_a / q_ah)
        dc_c_out[v] = dc_nominal
        ac_out[v] = min(ac_c[v], dc_nominal)
        if moved <= 0.0:
            continue
        # One charging session per swing: its AC part at the AC rate (no more than the pack
        # accepts), its DC part at the DC rate; each part's mean temperature is that of the
        # pack charged at its current over the session's length.
        has_ac = share[v] < 1.0 and ac_c[v] > 0.0
        has_dc = share[v] > 0.0
        c_ac = min(ac_c[v], dc_nominal)
        c_dc = dc_nominal
        t_start = t_drive  # plugged in on arrival
        if has_dc and precondition[v] and tms:
            t_start = max(t_drive, precond_c)
        t_ac = t_drive
        t_dc = t_start
        h_ac = 0.0
        h_dc = 0.0
        for _ in range(3):  # derating and heat at the session's temperatures
            if has_ac:
                c = min(ac_c[v], dc_nominal * _derating(t_drive, t_ac, derate_t, derate_f))
                c_ac = max(c, 0.05 * min(ac_c[v], dc_nominal))
                h_ac = (1.0 - share[v]) * moved / c_ac
            if has_dc:
                c_dc = max(dc_nominal * _derating(t_start, t_dc, derate_t, derate_f),
                           0.05 * dc_nominal)  # fmt: skip
                h_dc = share[v] * moved / c_dc
            session_h = (h_ac + h_dc) / swings
            if has_ac:
                r = pack_resistance(mid, t_ac, True, tab_soc, tab_t, r_dis, r_chg, ea)
                i = c_ac * q_ah
                t_ac = period_temperature(t_drive, i * i * r, session_h, heat_cap, cond, tms,
                                          heat_below, cool_above, gain, q_heat,
                                          q_cool)  # fmt: skip
            if has_dc:
                r = pack_resistance(mid, t_dc, True, tab_soc, tab_t, r_dis, r_chg, ea)
                i = c_dc * q_ah
                t_dc = period_temperature(t_start, i * i * r, session_h, heat_cap, cond, tms,
                                          low, cool_above, gain, q_heat, q_cool)  # fmt: skip
        ac_out[v] = c_ac
        if has_ac:
            frac_out[v, AC] = h_ac / 24.0
            temp_out[v, AC] = t_ac
        if has_dc:
            dc_c_out[v] = c_dc
            frac_out[v, DC] = h_dc / 24.0
            temp_out[v, DC] = t_dc
        total = frac_out[v, AC] + frac_out[v, DC] + frac_out[v, DRIVE]
        if total > 1.0:  # a day holds 24 hours
            for j in range(3):
                frac_out[v, j] /= total


def pack_duty(
    params: PackParams,
    energy_kwh: float,
    usage: dict[str, np.ndarray],
    soh: np.ndarray,
    max_discharge_w: np.ndarray,
    preconditioning: np.ndarray,
) -> Duty:
    """The duty of V vehicles of one pack design (`usage`: Usage's first seven fields as (V,)
    arrays, by name)."""
    n = soh.shape[0]
    drive_c, ac_rate, dc_c = np.empty(n), np.empty(n), np.empty(n)
    frac, temp = np.empty((n, 3)), np.empty((n, 3))
    t = params.tms
    tab = params.kernel_tables
    f = [np.ascontiguousarray(np.broadcast_to(np.asarray(usage[k], dtype=float), (n,)))
         for k in ("daily_km", "wh_per_km", "soc_min", "soc_max", "ambient_c", "charge_c_rate",
                   "dc_fast_share")]  # fmt: skip
    daily_km, wh_per_km, soc_min, soc_max, ambient_c, ac_c, share = f
    _duty(
        daily_km, wh_per_km, soc_min, soc_max, ambient_c, ac_c, share,
        np.ascontiguousarray(np.broadcast_to(max_discharge_w, (n,)), dtype=float),
        np.ascontiguousarray(np.broadcast_to(preconditioning, (n,)), dtype=np.bool_),
        np.ascontiguousarray(soh, dtype=float),
        float(energy_kwh), params.capacity_ah, params.thermal.heat_capacity_j_k,
        params.thermal.conductance_w_k, t is not None,
        t.heat_below_c if t else -math.inf, t.cool_above_c if t else math.inf,
        t.precondition_c if t else -math.inf, t.gain_w_k if t else 1.0,
        t.max_heating_w if t else 0.0, t.max_cooling_w if t else 0.0,
        params.circuit.max_charge_a,
        tab[2], tab[3], tab[4], tab[5], params.circuit.activation_energy_j_mol,
        tab[6], tab[7], tab[8], tab[9],
        drive_c, ac_rate, dc_c, frac, temp,
    )  # fmt: skip
    return Duty(drive_c, ac_rate, dc_c, frac, temp)
