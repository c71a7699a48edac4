"""The bundled vehicle presets. Every number names its source; "assumed" marks engineering
choices where no public figure was at hand."""

from __future__ import annotations

from typing import Any

from twin_service.models import cell_data
from twin_service.presets import (
    ChargeTaperSpec,
    DrivetrainSpec,
    PackSpec,
    ResistanceMapSpec,
    RoadLoadSpec,
    ThermalManagementSpec,
    VehiclePreset,
)

# Cell resistance: the Sony/Murata US26650FTC1 (3 Ah LFP) map over SOC and temperature (SimSES
# data, models/cell_data.py), scaled by capacity (R ~ 1/Ah at equal cell design) and split 40 %
# R0 / 60 % R1 with tau1 = 30 s as in PyBaMM's ECM example. Beyond the map's 10-40 degC the
# resistance follows Arrhenius with 20 kJ/mol (PyBaMM ECM example; the map's own 10-25 degC
# slope is ~17 kJ/mol).
_R0_SHARE = 0.4
_TAU1_S = 30.0
_EA_RESISTANCE = 20000.0
# FASTSim lumped battery thermal model, scaled by pack energy (REFERENCES: 2932 J/K and
# 0.883 W/K per kWh; for the 54 kWh Model 3 this is FASTSim's 158,336 J/K and 47.7 W/K).
_HEAT_CAPACITY_J_K_PER_KWH = 2932.0
_CONDUCTANCE_W_K_PER_KWH = 0.883
# Prismatic LFP limits (REFERENCES.md: 2.5-3.65 V is common).
_CELL_V_MIN = 2.5
_CELL_V_MAX = 3.65
# OCV hysteresis: LFP's charge and discharge branches sit 10-30 mV apart on the plateau
# (REFERENCES.md); assumed 20 mV (half-gap 10 mV) and a rate that moves 95 % of the way
# between the branches within 5 % of the capacity (exp(-60 x 0.05) = 0.05).
_HYSTERESIS_V = 0.010
_HYSTERESIS_RATE = 60.0
# Charge derating over pack temperature: no charging at or below 0 degC (lithium plating), cut
# hard below ~10 degC, full from 20 to 45 degC, cut above ~45-50 degC, none from 60 degC
# (REFERENCES.md, fast-charge behaviour); the shape between those points is assumed.
_DERATE_T = [0.0, 5.0, 10.0, 15.0, 20.0, 45.0, 50.0, 55.0, 60.0]
_DERATE_F = [0.0, 0.1, 0.25, 0.6, 1.0, 1.0, 0.6, 0.25, 0.0]
# NREL FASTSim 2022 Tesla Model 3 RWD motor efficiency vs fraction of peak power.
_EFF_LOAD = [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0]
_EFF_VALUE = [0.84, 0.86, 0.88, 0.90, 0.91, 0.92, 0.94, 0.95, 0.95, 0.94, 0.93]


def _resistance_map(cell_ah: float) -> ResistanceMapSpec:
    scale = cell_data.SONY_CELL_AH / cell_ah
    return ResistanceMapSpec(
        soc=list(cell_data.RESISTANCE_SOC),
        temperature_c=list(cell_data.RESISTANCE_TEMPERATURE_C),
        discharge_ohm=[[r * scale for r in row] for row in cell_data.RESISTANCE_DISCHARGE_OHM],
        charge_ohm=[[r * scale for r in row] for row in cell_data.RESISTANCE_CHARGE_OHM],
    )


def _lfp_pack(
    cells_series: int, cell_ah: float, energy_kwh: float, taper: ChargeTaperSpec, **limits: Any
) -> PackSpec:
    return PackSpec(
        cells_series=cells_series,
        cells_parallel=1,
        cell_capacity_ah=cell_ah,
        cell_resistance=_resistance_map(cell_ah),
        r0_fraction=_R0_SHARE,
        tau1_s=_TAU1_S,
        activation_energy_j_mol=_EA_RESISTANCE,
        hysteresis_v=_HYSTERESIS_V,
        hysteresis_rate=_HYSTERESIS_RATE,
        cell_v_min=_CELL_V_MIN,
        cell_v_max=_CELL_V_MAX,
        charge_taper=taper,
        heat_capacity_j_k=_HEAT_CAPACITY_J_K_PER_KWH * energy_kwh,
        conductance_w_k=_CONDUCTANCE_W_K_PER_KWH * energy_kwh,
        **limits,
    )


def _fastsim_tms(scale: float) -> ThermalManagementSpec:
    """NREL FASTSim 3.1 `2022 Tesla Model 3 RWD thrml` battery HVAC, limits x `scale`: set point
    22 degC with a 15 K dead band (heats below 7, cools above 37 degC), at most 15 kW of heat
    moved and 5 kW of electrical power, heat pump, COP = 0.167 x Carnot. Assumed: a stiff
    proportional loop (full heat flow 3 K past the band) in place of FASTSim's PID, COP at most
    5, preconditioning to 30 degC (packs are preconditioned to ~25-40 degC)."""
    return ThermalManagementSpec(
        heat_below_c=7.0,
        cool_above_c=37.0,
        precondition_c=30.0,
        gain_w_k=5000.0 * scale,
        max_heating_kw=15.0 * scale,
        max_cooling_kw=15.0 * scale,
        max_electric_kw=5.0 * scale,
        heater="heat_pump",
        carnot_fraction=0.1673,
        max_cop=5.0,
    )


SV1EV3 = VehiclePreset(
    id="sv1ev3",
    name="sv1ev3 (Kia EV3 BeamNG mod), LFP 220 Ah / 370 V / 81.4 kWh",
    # Original design: LFP, 220 Ah, 370 V nominal, 81.4 kWh -> 116 cells of 3.2 V in series.
    pack=_lfp_pack(
        cells_series=116,
        cell_ah=220.0,
        energy_kwh=81.4,
        # Assumed: 1.5C (the 330 A rating) to 60 % SOC, then a taper shaped like the Model 3's
        # (Kia quotes 31 min for 10-80 % on the EV3 long range).
        taper=ChargeTaperSpec(
            soc=[0.0, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0],
            c_rate=[1.5, 1.5, 1.1, 0.8, 0.45, 0.25, 0.1],
            temperature_c=_DERATE_T,
            factor=_DERATE_F,
        ),
        soc_min=0.03,  # assumed BMS window
        soc_max=0.97,
        max_discharge_a=660.0,  # assumed 3C
        max_charge_a=330.0,  # assumed 1.5C
        max_discharge_kw=170.0,  # assumed: 150 kW motor / ~0.9 drive efficiency
        max_regen_kw=120.0,  # assumed
    ),
    drivetrain=DrivetrainSpec(
        motors=["frontMotor"],  # BeamNG recording: one motor without a parent device
        motor_peak_kw=150.0,  # Kia EV3 long range front motor (manufacturer figure)
        efficiency_load=_EFF_LOAD,  # FASTSim Model 3 curve, assumed similar
        efficiency_value=_EFF_VALUE,
        transmission_efficiency=0.98,  # as FASTSim Model 3
        aux_kw=0.25,  # as FASTSim Model 3
    ),
    thermal_management=_fastsim_tms(81.4 / 54.0),  # assumed: the Model 3's, by pack energy
    roadload=RoadLoadSpec(
        mass_kg=1950.0,  # assumed: ~1.85 t kerb weight plus driver
        cd=0.263,  # Kia EV3 manufacturer figure
        frontal_area_m2=2.45,  # assumed for a compact SUV
        crr=0.008,  # assumed
        wheel_radius_m=0.334,  # 215/55 R17 tyre
        final_drive_ratio=7.94,  # BeamNG sv1ev3 recording (torsionReactorF gearRatio)
        rotating_mass_factor=1.05,  # assumed
        driven_axle="front",
    ),
    sources={
        "pack": "original design (220 Ah, 370 V, 81.4 kWh); cell data per REFERENCES.md",
        "thermal_management": "assumed: FASTSim's Model 3 battery HVAC scaled by pack energy",
        "roadload": "BeamNG recording for the final drive; other values assumed",
    },
)

MODEL3_2024 = VehiclePreset(
    id="Model3_2024",
    name="Tesla Model 3 RWD (LFP, 54 kWh), NREL FASTSim 2022 Model 3 RWD data",
    # 106 LFP cells in series (published teardown figure for this pack); capacity set so the
    # nominal energy equals FASTSim's 54 kWh.
    pack=_lfp_pack(
        cells_series=106,
        cell_ah=round(54000.0 / (106 * 3.2), 2),
        energy_kwh=54.0,
        # Assumed taper: about 170 kW peak that falls away above ~50 % SOC, 10-80 % in about
        # 25-30 min (REFERENCES.md, fast-charge behaviour of a 2022+ Model 3 RWD LFP).
        taper=ChargeTaperSpec(
            soc=[0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0],
            c_rate=[2.9, 2.9, 2.0, 1.4, 1.0, 0.7, 0.4, 0.25, 0.1],
            temperature_c=_DERATE_T,
            factor=_DERATE_F,
        ),
        soc_min=0.05,  # FASTSim SOC window
        soc_max=0.98,
        max_discharge_a=900.0,  # assumed
        max_charge_a=600.0,  # assumed
        max_discharge_kw=201.0,  # FASTSim max battery power
        max_regen_kw=201.0,  # FASTSim max battery power (symmetric)
    ),
    drivetrain=DrivetrainSpec(
        motors=["rearMotor"],  # BeamNG Model3_2024 recording
        motor_peak_kw=239.0,  # FASTSim
        efficiency_load=_EFF_LOAD,  # FASTSim
        efficiency_value=_EFF_VALUE,
        transmission_efficiency=0.98,  # FASTSim
        aux_kw=0.25,  # FASTSim
    ),
    thermal_management=_fastsim_tms(1.0),
    roadload=RoadLoadSpec(
        mass_kg=1752.0,  # FASTSim total mass
        cd=0.23,  # FASTSim
        frontal_area_m2=2.22,  # FASTSim
        crr=0.007,  # FASTSim
        wheel_radius_m=0.33435,  # FASTSim
        final_drive_ratio=7.94,  # BeamNG Model3_2024 recording (differential_R gearRatio)
        rotating_mass_factor=1.05,  # assumed
        driven_axle="rear",
    ),
    sources={
        "vehicle": "NREL FASTSim 2022 Tesla Model 3 RWD",
        "thermal_management": "NREL FASTSim 3.1 2022 Tesla Model 3 RWD thrml battery HVAC",
        "final_drive": "BeamNG Model3_2024 recording",
    },
)

PRESETS: dict[str, VehiclePreset] = {p.id: p for p in (SV1EV3, MODEL3_2024)}
