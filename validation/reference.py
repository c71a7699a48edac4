"""Published reference values and closed forms, written out from the papers' equations.

Deliberately independent of twin_service.models: the report compares the service against
these, so they must not share code with it.

Calendar aging: Naumann et al. 2018, J. Energy Storage 17:153-169,
doi:10.1016/j.est.2018.01.019 (Sony/Murata US26650FTC1, 3 Ah LFP/graphite cell).
Cycle aging: Naumann et al. 2020, J. Power Sources 451:227666,
doi:10.1016/j.jpowsour.2019.227666 (same cell).
Large-format LFP: Gasper et al. 2023, J. Energy Storage 73:109042,
doi:10.1016/j.est.2023.109042 (NREL BLAST-Lite `Lfp_Gr_250AhPrismatic`, a >250 Ah prismatic
LFP/graphite cell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# --- Naumann 2018, calendar aging -------------------------------------------------------------
R_GAS = 8.3144598  # J/(mol K), as in the paper
T_REF = 298.15  # K
# Capacity loss Q_cal = k_T * k_SOC * sqrt(t), t in s
K_REF_CAP = 1.2571e-5  # s^-0.5
EA_CAP = 17126.0  # J/mol
C_SOC = 2.8575  # k_SOC = C (SOC - 0.5)^3 + D
D_SOC = 0.60225
# Resistance increase dR/R0 = k_T,R * k_SOC,R * t
K_REF_RES = 3.4194e-10  # s^-1
EA_RES = 71827.0  # J/mol
A_SOC_RES = -3.3903  # k_SOC,R = A (SOC - 0.5)^2 + B
B_SOC_RES = 1.5604

# Published check value (REFERENCES.md): storage at 25 degC, SOC 0.5, one year (31,536,000 s)
CHECK_YEAR_S = 31_536_000.0
CHECK_SOH = 0.9575
CHECK_RESISTANCE_FACTOR = 1.0168


def k_temperature(temperature_c: float, ea: float, k_ref: float) -> float:
    """Arrhenius factor of Naumann 2018: k_ref * exp(-Ea/R (1/T - 1/T_ref))."""
    t_k = temperature_c + 273.15
    return k_ref * math.exp(-ea / R_GAS * (1.0 / t_k - 1.0 / T_REF))


def calendar_capacity_loss(t_s: float, soc: float, temperature_c: float) -> float:
    """Capacity loss fraction after storage for t_s seconds at constant SOC and temperature."""
    k_t = k_temperature(temperature_c, EA_CAP, K_REF_CAP)
    k_soc = C_SOC * (soc - 0.5) ** 3 + D_SOC
    return k_t * k_soc * math.sqrt(t_s)


def calendar_resistance_increase(t_s: float, soc: float, temperature_c: float) -> float:
    """Relative resistance increase dR/R0 after storage for t_s seconds."""
    k_t = k_temperature(temperature_c, EA_RES, K_REF_RES)
    k_soc = A_SOC_RES * (soc - 0.5) ** 2 + B_SOC_RES
    return k_t * k_soc * t_s


# --- Naumann 2020, cycle aging ----------------------------------------------------------------
# Q_cyc[%] = k_C * k_DOC * sqrt(FEC); k_C = 0.0630 C + 0.0971; k_DOC = 4.0253 (DOC-0.6)^3 + 1.0923
KC_A, KC_B = 0.0630, 0.0971
KDOC_A, KDOC_X0, KDOC_B = 4.0253, 0.6, 1.0923
# R_inc[%] = (-0.0020 C + 0.0021) * (6.8477 (DOC-0.5)^3 + 0.9182) * FEC
RC_A, RC_B = -0.0020, 0.0021
RDOC_A, RDOC_X0, RDOC_B = 6.8477, 0.5, 0.9182


def cycle_capacity_coefficient(c_rate: float, doc: float) -> float:
    """k_C * k_DOC as a fraction per sqrt(FEC)."""
    return (KC_A * c_rate + KC_B) * (KDOC_A * (doc - KDOC_X0) ** 3 + KDOC_B) / 100.0


def cycle_capacity_loss(fec: float, c_rate: float, doc: float) -> float:
    """Capacity loss fraction after `fec` equivalent full cycles at constant C-rate and DOC."""
    return cycle_capacity_coefficient(c_rate, doc) * math.sqrt(fec)


def cycle_resistance_increase(fec: float, c_rate: float, doc: float) -> float:
    """Relative resistance increase after `fec` equivalent full cycles."""
    return (RC_A * c_rate + RC_B) * (RDOC_A * (doc - RDOC_X0) ** 3 + RDOC_B) * fec / 100.0


def cycle_capacity_loss_virtual(half_cycles: list[tuple[float, float]]) -> float:
    """Capacity loss after a sequence of half-cycles (DOC, C-rate) under changing stress:
    continued on virtual FEC, each half-cycle adding DOC/2 FEC (Naumann 2020)."""
    loss = 0.0
    for doc, c_rate in half_cycles:
        k = cycle_capacity_coefficient(c_rate, doc)
        fec_virtual = (loss / k) ** 2 if k > 0 else 0.0
        loss = k * math.sqrt(fec_virtual + doc / 2.0)
    return loss


def cycle_resistance_increase_sequence(half_cycles: list[tuple[float, float]]) -> float:
    """Resistance increase after a sequence of half-cycles (DOC, C-rate): linear in FEC, so the
    half-cycles' contributions add up."""
    return sum(cycle_resistance_increase(doc / 2.0, c_rate, doc) for doc, c_rate in half_cycles)


# --- NREL FASTSim, 2022 Tesla Model 3 RWD over UDDS (REFERENCES.md) ---------------------------
FASTSIM_MODEL3_UDDS_WH_PER_KM = 91.1  # at the battery terminals, auxiliary load included
FASTSIM_MODEL3_UDDS_REGEN_SHARE = 0.37  # regeneration returns 37 % of the discharged energy

# --- The original README's demo timeline (seed model, demo mode, 10,000x) ---------------------
# Only these three entries of the original table are known to this project.
ORIGINAL_DEMO_TIMELINE_PCT = {2: 99.8, 5: 99.5, 60: 95.0}  # wall-clock minutes -> SOH %
ORIGINAL_DEMO_MULTIPLIER = 10_000


# --- NREL large-format LFP/graphite (Gasper et al. 2023) ----------------------------------------
# Gasper et al., J. Energy Storage 73 (2023) 109042, doi:10.1016/j.est.2023.109042; BLAST-Lite
# `Lfp_Gr_250AhPrismatic` (a >250 Ah prismatic cell). Capacity only. t in days, T in K,
# EFC = Ah throughput / (2 nominal Ah).
#   q_loss_t   = k_cal t^0.526,   k_cal = p1 exp(p2/T) exp(p3 Ua/T)
#   q_loss_EFC = k_cyc EFC^0.828, k_cyc = (p4 + p5 DOD + p6 C) (exp(p7/T) + exp(-p8/T))
KELVIN = 273.15
NREL_P1 = 8.37e4  # 1/day^0.526
NREL_P2 = -5.21e3  # K
NREL_P3 = -3.56e3  # K/V
NREL_P_CAL = 0.526
NREL_P4 = 4.38e-8
NREL_P5 = 1.55e-8
NREL_P6 = 1.68e-7  # h
NREL_P7 = 2.19e3  # K
NREL_P8 = 1.55e5  # K
NREL_P_CYC = 0.828
# Stress windows: cut at SOC turning points and at most every 1 day or 1 EFC; the C-rate of a
# window is the time average of |dSOC/dt| (1/h, rest included), rates below 0.01/h count as 0.
NREL_WINDOW_MAX_DAYS = 1.0
NREL_WINDOW_MAX_EFC = 1.0
NREL_C_RATE_FLOOR = 0.01  # 1/h
# Check value: storage at 25 degC, SOC 0.5, 365 days, advanced in daily windows.
NREL_CHECK_DAYS = 365
NREL_CHECK_SOH = 0.98896
NREL_CHECK_SOH_CLOSED_FORM = 0.988984  # k_cal 365^0.526 in one step


def nrel_anode_potential(soc):  # type: ignore[no-untyped-def]
    """Graphite potential vs Li (V) at the lithiation Xa the SOC implies (Safari & Delacourt
    2011, as used by Gasper et al. 2023). Floats or numpy arrays."""
    xa = 8.5e-3 + np.asarray(soc, dtype=float) * (0.78 - 8.5e-3)
    ua = (
        0.6379
        + 0.5416 * np.exp(-305.5309 * xa)
        + 0.044 * np.tanh(-(xa - 0.1958) / 0.1088)
        - 0.1978 * np.tanh((xa - 1.0571) / 0.0854)
        - 0.6875 * np.tanh((xa + 0.0117) / 0.0529)
        - 0.0175 * np.tanh((xa - 0.5692) / 0.0875)
    )
    return float(ua) if ua.ndim == 0 else ua


def nrel_k_cal(soc, temperature_c):  # type: ignore[no-untyped-def]
    """Calendar rate k_cal in 1/day^0.526 (floats or numpy arrays)."""
    t_k = np.asarray(temperature_c, dtype=float) + KELVIN
    k = NREL_P1 * np.exp(NREL_P2 / t_k) * np.exp(NREL_P3 * nrel_anode_potential(soc) / t_k)
    return float(k) if np.ndim(k) == 0 else k


def nrel_temperature_factor(temperature_c):  # type: ignore[no-untyped-def]
    """exp(p7/T) + exp(-p8/T) of the cycle rate."""
    t_k = np.asarray(temperature_c, dtype=float) + KELVIN
    f = np.exp(NREL_P7 / t_k) + np.exp(-NREL_P8 / t_k)
    return float(f) if np.ndim(f) == 0 else f


def nrel_k_cyc(dod: float, c_rate: float, temperature_c: float) -> float:
    """Cycle rate k_cyc in 1/EFC^0.828 at constant temperature."""
    return nrel_k_cyc_from_factor(dod, c_rate, nrel_temperature_factor(temperature_c))


def nrel_k_cyc_from_factor(dod: float, c_rate: float, temperature_factor: float) -> float:
    return (NREL_P4 + NREL_P5 * dod + NREL_P6 * c_rate) * temperature_factor


def nrel_calendar_capacity_loss(days: float, soc: float, temperature_c: float) -> float:
    """Closed form: calendar capacity loss after `days` of storage at constant SOC and T."""
    return nrel_k_cal(soc, temperature_c) * days**NREL_P_CAL


def nrel_cycle_capacity_loss(efc: float, dod: float, c_rate: float, temperature_c: float) -> float:
    """Closed form: cycle capacity loss after `efc` EFC at constant DOD, C-rate and T."""
    return nrel_k_cyc(dod, c_rate, temperature_c) * efc**NREL_P_CYC


def nrel_power_state(y: float, dx: float, k: float, p: float) -> float:
    """y = k x^p advanced over dx by the published state equation: from y = 0 exactly
    (y = k dx^p), else dy = k p (y/k)^((p-1)/p) dx (one explicit Euler step)."""
    if dx <= 0.0 or k <= 0.0:
        return y
    if y == 0.0:
        return k * dx**p
    return y + k * p * (y / k) ** ((p - 1.0) / p) * dx


@dataclass
class NrelWindow:
    """One stress window: what the published update needs."""

    days: float
    efc: float
    dod: float
    c_rate: float  # 1/h, time average of |dSOC/dt|, rest included
    k_cal: float  # time average over the window
    temperature_factor: float  # time average of exp(p7/T) + exp(-p8/T)
    end_s: float  # time at the end of the window since the start of the history

    @property
    def k_cyc(self) -> float:
        return nrel_k_cyc_from_factor(self.dod, self.c_rate, self.temperature_factor)


def _mean_k_cal_on_ramp(soc0: float, soc1: float, temperature_c: float) -> float:
    """Time average of k_cal while the SOC moves linearly from soc0 to soc1 (composite
    Simpson, steps of at most 0.0005 SOC: the anode potential's exp term varies on 0.004)."""
    if soc0 == soc1:
        return nrel_k_cal(soc0, temperature_c)
    n = 2 * max(1, math.ceil(abs(soc1 - soc0) / 0.001))
    k = nrel_k_cal(np.linspace(soc0, soc1, n + 1), temperature_c)
    return float((k[0] + k[-1] + 4.0 * k[1:-1:2].sum() + 2.0 * k[2:-1:2].sum()) / (3.0 * n))


def nrel_windows(
    segments,
    nominal_ah: float,  # type: ignore[no-untyped-def]
    max_days: float = NREL_WINDOW_MAX_DAYS,
    max_efc: float = NREL_WINDOW_MAX_EFC,
) -> list[NrelWindow]:
    """Cut a history into stress windows. `segments`: (dt_s, soc_start, soc_end, ah,
    temperature_c) with the SOC linear in time within a segment (constant current) and `ah`
    the charge moved. A window ends where the SOC turns (between segments), or where it
    reaches `max_days` or `max_efc` (a segment is split there); the last one may be open."""
    windows: list[NrelWindow] = []
    direction = 0.0
    clock = 0.0
    acc = None

    def new_acc(soc: float) -> dict:
        return {"t": 0.0, "kcal": 0.0, "ft": 0.0, "dsoc": 0.0, "efc": 0.0, "lo": soc, "hi": soc}

    def close() -> None:
        nonlocal acc
        if acc is not None and acc["t"] > 0.0:
            hours = acc["t"] / 3600.0
            windows.append(
                NrelWindow(
                    days=acc["t"] / 86400.0,
                    efc=acc["efc"],
                    dod=acc["hi"] - acc["lo"],
                    c_rate=acc["dsoc"] / hours,
                    k_cal=acc["kcal"] / acc["t"],
                    temperature_factor=acc["ft"] / acc["t"],
                    end_s=clock,
                )
            )
        acc = None

    for dt, s0, s1, ah, temp in segments:
        move = s1 - s0
        seg_dir = 0.0 if move == 0.0 else math.copysign(1.0, move)
        if seg_dir != 0.0 and direction != 0.0 and seg_dir != direction:
            close()  # SOC turning point
        if seg_dir != 0.0:
            direction = seg_dir
        rate = abs(move) / (dt / 3600.0)
        done = 0.0  # fraction of the segment booked
        while done < 1.0:
            if acc is None:
                acc = new_acc(s0 + done * move)
            frac = 1.0 - done
            room_t = (max_days * 86400.0 - acc["t"]) / dt
            room_e = (max_efc - acc["efc"]) / (ah / (2.0 * nominal_ah)) if ah > 0 else math.inf
            frac = min(frac, room_t, room_e)
            a, b = s0 + done * move, s0 + (done + frac) * move
            t = frac * dt
            acc["t"] += t
            acc["kcal"] += _mean_k_cal_on_ramp(a, b, temp) * t
            acc["ft"] += nrel_temperature_factor(temp) * t
            if rate >= NREL_C_RATE_FLOOR:
                acc["dsoc"] += abs(b - a)
            acc["efc"] += frac * ah / (2.0 * nominal_ah)
            acc["lo"], acc["hi"] = min(acc["lo"], a, b), max(acc["hi"], a, b)
            clock += t
            done += frac
            if acc["t"] >= max_days * 86400.0 * (1 - 1e-12) or acc["efc"] >= max_efc * (1 - 1e-12):
                close()
            if 1.0 - done < 1e-12:
                break
    close()
    return windows


def nrel_windowed_loss(
    windows: list[NrelWindow], cal0: float = 0.0, cyc0: float = 0.0
) -> tuple[list[float], list[float]]:
    """Calendar and cycle capacity loss after each window, by the published state update."""
    cal, cyc = cal0, cyc0
    cals, cycs = [], []
    for w in windows:
        cal = nrel_power_state(cal, w.days, w.k_cal, NREL_P_CAL)
        cyc = nrel_power_state(cyc, w.efc, w.k_cyc, NREL_P_CYC)
        cals.append(cal)
        cycs.append(cyc)
    return cals, cycs


def nrel_continued_loss(windows: list[NrelWindow]) -> tuple[float, float]:
    """Calendar and cycle loss integrated exactly under each window's stress: y = k x^p
    continued on virtual x, i.e. y^(1/p) grows by k^(1/p) dx (the state equation's exact
    solution, of which the published update is the explicit step)."""
    z_cal = sum(w.k_cal ** (1.0 / NREL_P_CAL) * w.days for w in windows)
    z_cyc = sum(w.k_cyc ** (1.0 / NREL_P_CYC) * w.efc for w in windows)
    return z_cal**NREL_P_CAL, z_cyc**NREL_P_CYC


# NREL BLAST-Lite README, "Caveats": the models estimate cell-level degradation; "a good
# rule-of-thumb is to assume that pack lifetime is 20-30% less than cell lifetime".
NREL_PACK_LIFE_PENALTY = (0.20, 0.30)
