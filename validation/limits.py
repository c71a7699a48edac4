"""Section 6: limits of the models, stated plainly. Pack figures come from GET /vehicles/presets."""

from __future__ import annotations

import numpy as np

from twin_service.models.forecast import DC_FAST_C_RATE, DRIVE_SPEED_KMH, STEP_DAYS
from validation.common import Section, Twin

CALIBRATION_CELL = "Sony/Murata US26650FTC1, a 3 Ah cylindrical LFP/graphite cell"


def compute(twin: Twin) -> dict:
    presets = twin.presets()
    packs = {}
    for pid, p in presets.items():
        pk = p["pack"]
        rmap = pk["cell_resistance"]
        row = rmap["discharge_ohm"][rmap["temperature_c"].index(25.0)]
        r_cell = float(np.interp(0.5, rmap["soc"], row))
        r_pack = r_cell * pk["cells_series"] / pk["cells_parallel"]
        g = pk["conductance_w_k"] + pk["cooling_w_k"]
        i_1c = pk["capacity_ah"]
        tms = p.get("thermal_management")
        packs[pid] = {
            "capacity_ah": pk["capacity_ah"],
            "cells_series": pk["cells_series"],
            "cell_ah": pk["cell_capacity_ah"],
            "r0_share": pk["r0_fraction"],
            "tau1_s": pk["tau1_s"],
            "ea_kj": pk["activation_energy_j_mol"] / 1000.0,
            "hysteresis_mv": pk["hysteresis_v"] * 2000.0,
            "window": (pk["soc_min"], pk["soc_max"]),
            "tms": tms,
            "tau_thermal_h": pk["heat_capacity_j_k"] / g / 3600.0,
            "dt_1c_k": i_1c**2 * r_pack / g,  # passive steady rise at 1C, R at 25 degC, SOC 0.5
        }
    return packs


def render(packs: dict) -> Section:
    sv = packs.get("sv1ev3") or next(iter(packs.values()))
    cells = ", ".join(
        f"`{pid}` {p['cells_series']} × {p['cell_ah']:g} Ah" for pid, p in packs.items()
    )
    dt1c = ", ".join(f"`{pid}` {p['dt_1c_k']:.0f} K" for pid, p in packs.items())
    items = [
        f"**Calibration cell.** The default aging model was fitted on the {CALIBRATION_CELL} "
        f"(Naumann et al. 2018, 2020). The presets' packs are series strings of large cells "
        f"({cells}); the twin assumes each of them ages exactly like the 3 Ah cell, at the same "
        "relative stress, and that all cells age alike: no cell-to-cell spread, no weakest "
        "cell limiting the pack, no format effects (prismatic vs cylindrical, tab cooling, "
        "current density). The `nrel_lfp250` model (Gasper et al. 2023) was fitted on a "
        ">250 Ah prismatic LFP cell, closer in format, but it too is one average cell, "
        "capacity only (no resistance growth), fitted on 80–100 % DOD cycles charged at up to "
        "0.65C between 10 and 45 °C; section 8 shows how far the two models disagree.",
        "**No lithium plating.** The presets' charge taper refuses charge at or below 0 °C and "
        "cuts it below ~10 °C, as a BMS does, but nothing in the aging models responds to "
        "charging at low temperature or high C-rate (sent as `current_a`, or with an inline "
        "vehicle without a taper), which is the main cause of rapid fade in cold fast charging. "
        "With the default model a pack fast-charged at 0 °C ages no faster (in fact slower, "
        "through the Arrhenius calendar term) than at 25 °C; the `nrel_lfp250` cycle term "
        "grows in the cold (exp(2190/T) is about twice as large at 0 °C as at 25 °C), but as "
        "a fitted trend outside its 10–45 °C data, not a plating mechanism.",
        "**No low-temperature cycling data.** The cycle law of Naumann 2020 has no temperature "
        "term at all; it depends only on C-rate and depth of cycle, and the calendar law's "
        "Arrhenius factors come from storage, not cycling. Cycling in the cold, and any "
        "interaction of temperature with cycling, is outside the data. The `nrel_lfp250` "
        "cycle law has a temperature term, which its authors expect to extrapolate poorly "
        "outside the 10–45 °C it was fitted on.",
        "**Range of the fits.** The cycle laws come from constant-current tests at moderate "
        "C-rates; the resistance term's C-rate factor becomes negative above 1.05C and is held "
        f"at zero by the service. DC fast charging (the forecast assumes {DC_FAST_C_RATE:g}C) "
        "and high-power driving pulses are extrapolations. Capacity fade follows square-root "
        "laws in time and FEC (Naumann) or power laws t^0.526 and EFC^0.828 (NREL), which "
        'cannot show the late-life "knee" (accelerated fade) many cells show; calendar and '
        "cycle losses simply add.",
        f"**Equivalent circuit.** One RC pair (τ = {sv['tau1_s']:g} s) on a dense OCV table of "
        "a different LFP cell (PyBaMM `Prada2013`, A123-type), with a one-state hysteresis "
        f"({sv['hysteresis_mv']:.0f} mV between the branches, constant over SOC and "
        "temperature, an assumption within the published 10–30 mV). Resistance is the Sony "
        "cell's map over SOC and temperature (SimSES data, charge and discharge) scaled by "
        "capacity (R ∝ 1/Ah at equal cell design), independent of current; the **DCIR split** "
        f"{sv['r0_share'] * 100:.0f} % R0 / {(1 - sv['r0_share']) * 100:.0f} % R1 is an "
        "assumption taken from PyBaMM's ECM example, as is the activation energy that carries "
        f"the map beyond 10–40 °C ({sv['ea_kj']:g} kJ/mol). Voltage, current and power limits, "
        "the BMS windows and the charge tapers are preset values, partly assumed.",
        "**Lumped thermal.** One temperature for the whole pack: no gradients between cells or "
        "from core to surface, no coolant loop dynamics. Heat capacity and conductance to "
        "ambient are FASTSim's per-kWh values (passive time constant "
        f"{sv['tau_thermal_h']:.1f} h). Thermal management is a proportional loop held over "
        "each sub-step (FASTSim's battery HVAC limits; FASTSim itself uses a PID loop); it runs "
        "only while the vehicle is active (driving, plugged in, preconditioning), not while "
        "parked. Without it, a steady 1C would settle this far above ambient (resistance at "
        f"25 °C, SOC 0.5): {dt1c}. No cabin, and its heat pump is not shared with one.",
        "**Forecast's assumed daily pattern.** `/forecast` repeats one idealised day: driving "
        f"at an assumed {DRIVE_SPEED_KMH:g} km/h mean speed, one charge a day back to "
        "`soc_max`, half the rest at each end of the swing, constant ambient, the pack at "
        f"ambient temperature (no self-heating), in {STEP_DAYS:g}-day steps; DC fast charging at "
        f"an assumed {DC_FAST_C_RATE:g}C. It inherits every limit of the aging laws above.",
        "**Vehicle energy.** The bridge's road-load model uses flat roads, a constant auxiliary "
        "load (no cabin HVAC; battery heating and cooling come from the pack's thermal "
        "management), one efficiency curve vs load for motor and inverter "
        "and FASTSim's regenerative-braking split. The Model 3 comparison is against FASTSim, "
        "itself a model with the same input data, not against dynamometer measurements; the "
        "`sv1ev3` road-load data are partly assumed.",
        "**Time multiplier.** `time_multiplier` accelerates aging only. It scales calendar time "
        "and also cycle aging (each half-cycle counts as `time_multiplier` half-cycles), which "
        'suits demos and "what if this drive were repeated" questions, not a faithful '
        "compression of a real history.",
        "**Seed model.** The `seed` aging model (demo mode) is the original design's "
        "illustration, kept exactly for continuity; it is not calibrated against any cell.",
    ]
    body = "\n".join(f"- {item}" for item in items)
    return Section("limits", "12. Limits of the models", body, [], [])
