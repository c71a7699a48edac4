"""Vehicle presets: pack, drivetrain and road-load data, each number with its source.

A preset is also the shape of an inline `vehicle` object in POST /step.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from twin_service.models.aging import DEFAULT_MODEL, MODEL_NAMES
from twin_service.models.drivetrain import DrivetrainParams
from twin_service.models.pack import CircuitParams, PackParams, ThermalParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PackSpec(_Strict):
    chemistry: str = "LFP"
    cells_series: int = Field(gt=0, le=1000)
    cells_parallel: int = Field(1, gt=0, le=1000)
    cell_capacity_ah: float = Field(gt=0)
    cell_r0_ohm: float = Field(gt=0, description="cell ohmic resistance at 25 degC")
    cell_r1_ohm: float = Field(gt=0, description="cell RC-branch resistance at 25 degC")
    tau1_s: float = Field(gt=0, description="RC-branch time constant")
    activation_energy_j_mol: float = Field(ge=0, description="Arrhenius energy of resistance")
    cell_v_min: float = Field(gt=0)
    cell_v_max: float = Field(gt=0)
    max_discharge_a: float = Field(gt=0)
    max_charge_a: float = Field(gt=0)
    max_discharge_kw: float = Field(gt=0)
    max_regen_kw: float = Field(gt=0, description="largest charging power (regen or plug)")
    heat_capacity_j_k: float = Field(gt=0)
    conductance_w_k: float = Field(gt=0, description="h*A to ambient")
    cooling_w_k: float = Field(0.0, ge=0, description="extra conductance of a cooling loop")
    aging_model: Literal[MODEL_NAMES] = Field(  # type: ignore[valid-type]
        DEFAULT_MODEL, description="the aging model /step uses unless options name one"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def capacity_ah(self) -> float:
        return self.cell_capacity_ah * self.cells_parallel

    @computed_field  # type: ignore[prop-decorator]
    @property
    def nominal_voltage_v(self) -> float:
        return round(self.cells_series * 3.2, 3)  # LFP nominal cell voltage 3.2 V

    @computed_field  # type: ignore[prop-decorator]
    @property
    def nominal_energy_kwh(self) -> float:
        return round(self.capacity_ah * self.nominal_voltage_v / 1000.0, 3)


class DrivetrainSpec(_Strict):
    motors: list[str] = Field(min_length=1)
    motor_peak_kw: float = Field(gt=0, description="peak power of each motor")
    efficiency_load: list[float] = Field(min_length=2, description="fraction of peak power")
    efficiency_value: list[float] = Field(min_length=2)
    transmission_efficiency: float = Field(gt=0, le=1)
    aux_kw: float = Field(ge=0)


class RoadLoadSpec(_Strict):
    mass_kg: float = Field(gt=0)
    cd: float = Field(gt=0)
    frontal_area_m2: float = Field(gt=0)
    crr: float = Field(ge=0)
    wheel_radius_m: float = Field(gt=0)
    final_drive_ratio: float = Field(gt=0)
    rotating_mass_factor: float = Field(1.0, ge=1)
    driven_axle: str = "rear"


class VehiclePreset(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    name: str
    pack: PackSpec
    drivetrain: DrivetrainSpec
    roadload: RoadLoadSpec
    sources: dict[str, str] = Field(default_factory=dict)


def pack_params(preset: VehiclePreset) -> PackParams:
    """Pack-level model parameters from a preset (cells in series add, in parallel divide)."""
    p = preset.pack
    ratio = p.cells_series / p.cells_parallel
    return PackParams(
        cells_series=p.cells_series,
        capacity_ah=p.capacity_ah,
        circuit=CircuitParams(
            r0_ohm=p.cell_r0_ohm * ratio,
            r1_ohm=p.cell_r1_ohm * ratio,
            tau1_s=p.tau1_s,
            activation_energy_j_mol=p.activation_energy_j_mol,
            v_min=p.cell_v_min * p.cells_series,
            v_max=p.cell_v_max * p.cells_series,
            max_discharge_a=p.max_discharge_a,
            max_charge_a=p.max_charge_a,
            max_discharge_w=p.max_discharge_kw * 1000.0,
            max_regen_w=p.max_regen_kw * 1000.0,
        ),
        thermal=ThermalParams(
            heat_capacity_j_k=p.heat_capacity_j_k,
            conductance_w_k=p.conductance_w_k + p.cooling_w_k,
        ),
    )


def drivetrain_params(preset: VehiclePreset) -> DrivetrainParams:
    d = preset.drivetrain
    return DrivetrainParams(
        motor_peak_w=d.motor_peak_kw * 1000.0,
        efficiency_load=tuple(d.efficiency_load),
        efficiency_value=tuple(d.efficiency_value),
        transmission_efficiency=d.transmission_efficiency,
        aux_w=d.aux_kw * 1000.0,
    )


from twin_service.presets.vehicles import PRESETS  # noqa: E402  (data needs the classes)

__all__ = [
    "PRESETS",
    "DrivetrainSpec",
    "PackSpec",
    "RoadLoadSpec",
    "VehiclePreset",
    "drivetrain_params",
    "pack_params",
]
