"""Published reference values and closed forms, written out from the papers' equations.

Deliberately independent of twin_service.models: the report compares the service against
these, so they must not share code with it.

Calendar aging: Naumann et al. 2018, J. Energy Storage 17:153-169,
doi:10.1016/j.est.2018.01.019 (Sony/Murata US26650FTC1, 3 Ah LFP/graphite cell).
Cycle aging: Naumann et al. 2020, J. Power Sources 451:227666,
doi:10.1016/j.jpowsour.2019.227666 (same cell).
"""

from __future__ import annotations

import math

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
