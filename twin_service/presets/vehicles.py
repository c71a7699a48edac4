"""The bundled vehicle presets. Every number names its source; "assumed" marks engineering
choices where no public figure was at hand."""

from __future__ import annotations

from typing import Any

from twin_service.presets import DrivetrainSpec, PackSpec, RoadLoadSpec, VehiclePreset

# Sony/Murata US26650FTC1 (3 Ah LFP) discharge DCIR at SOC 0.5, 25 degC: 0.0478 ohm (SimSES data,
# REFERENCES.md), scaled by capacity (R ~ 1/Ah at equal cell design) and split 40 % R0 / 60 % R1
# as in PyBaMM's ECM example.
_REF_CELL_AH = 3.0
_REF_CELL_DCIR_OHM = 0.0478
_R0_SHARE = 0.4
_TAU1_S = 30.0  # PyBaMM ECM example
_EA_RESISTANCE = 20000.0  # J/mol, PyBaMM ECM example (Sony data 10-25 degC gives ~17.4 kJ/mol)
# FASTSim lumped battery thermal model, scaled by pack energy (REFERENCES.md).
_HEAT_CAPACITY_J_K_PER_KWH = 2932.0
_CONDUCTANCE_W_K_PER_KWH = 0.883
# Prismatic LFP limits (REFERENCES.md: 2.5-3.65 V is common).
_CELL_V_MIN = 2.5
_CELL_V_MAX = 3.65
# NREL FASTSim 2022 Tesla Model 3 RWD motor efficiency vs fraction of peak power.
_EFF_LOAD = [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0]
_EFF_VALUE = [0.84, 0.86, 0.88, 0.90, 0.91, 0.92, 0.94, 0.95, 0.95, 0.94, 0.93]


def _cell_resistances(cell_ah: float) -> tuple[float, float]:
    dcir = _REF_CELL_DCIR_OHM * _REF_CELL_AH / cell_ah
    return dcir * _R0_SHARE, dcir * (1.0 - _R0_SHARE)


def _lfp_pack(cells_series: int, cell_ah: float, energy_kwh: float, **limits: Any) -> PackSpec:
    r0, r1 = _cell_resistances(cell_ah)
    return PackSpec(
        cells_series=cells_series,
        cells_parallel=1,
        cell_capacity_ah=cell_ah,
        cell_r0_ohm=r0,
        cell_r1_ohm=r1,
        tau1_s=_TAU1_S,
        activation_energy_j_mol=_EA_RESISTANCE,
        cell_v_min=_CELL_V_MIN,
        cell_v_max=_CELL_V_MAX,
        heat_capacity_j_k=_HEAT_CAPACITY_J_K_PER_KWH * energy_kwh,
        conductance_w_k=_CONDUCTANCE_W_K_PER_KWH * energy_kwh,
        **limits,
    )


SV1EV3 = VehiclePreset(
    id="sv1ev3",
    name="sv1ev3 (Kia EV3 BeamNG mod), LFP 220 Ah / 370 V / 81.4 kWh",
    # Original design: LFP, 220 Ah, 370 V nominal, 81.4 kWh -> 116 cells of 3.2 V in series.
    pack=_lfp_pack(
        cells_series=116,
        cell_ah=220.0,
        energy_kwh=81.4,
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
        "final_drive": "BeamNG Model3_2024 recording",
    },
)

PRESETS: dict[str, VehiclePreset] = {p.id: p for p in (SV1EV3, MODEL3_2024)}
