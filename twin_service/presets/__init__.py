"""Vehicle presets: pack, drivetrain and road-load data, each number with its source.

A preset is also the shape of a full inline `vehicle` in POST /step and the forecasts (inline.py
has the request's forms). Every number has physical bounds (generous enough for a scooter and a
truck, declared in the OpenAPI schema) and the model validators check that the numbers agree
with each other; an error names the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    model_validator,
)

from twin_service.models import cell_data
from twin_service.models.aging import DEFAULT_MODEL, MODEL_NAMES
from twin_service.models.drivetrain import DrivetrainParams
from twin_service.models.laws import MAX_ACTIVE_SUBSTEP_S
from twin_service.models.pack import (
    CircuitParams,
    PackParams,
    PackTables,
    ThermalManagementParams,
    ThermalParams,
)

MAX_TMS_HOLD_S = MAX_ACTIVE_SUBSTEP_S
# A vehicle (and preset) id: 1..64 of these characters, not only dots (`.` and `..` are path
# segments). `(?!\n)`: Python's `$` also matches before a final newline.
ID_PATTERN = r"^(?!\.+$)[A-Za-z0-9._-]{1,64}$(?!\n)"
ID_RE = re.compile(ID_PATTERN)
LFP_NOMINAL_CELL_V = 3.2

# Per-item bounds, shown in the OpenAPI schema.
Fraction = Annotated[float, Field(ge=0, le=1)]
CellVolts = Annotated[float, Field(gt=0, le=5, description="V per cell")]
CellOhms = Annotated[float, Field(ge=1e-6, le=10, description="ohm per cell, fresh")]
TemperatureC = Annotated[float, Field(ge=-60, le=150)]
CRate = Annotated[float, Field(ge=0, le=20)]
Efficiency = Annotated[float, Field(ge=0.01, le=1)]
Label = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _increasing(name: str, values: list[float]) -> None:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{name} must be strictly increasing")


def _same_length(a_name: str, a: list[float], b_name: str, b: list[float]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{a_name} and {b_name} must have the same length ({len(a)} != {len(b)})")


class OcvSpec(_Strict):
    """Cell open-circuit voltage over SOC, interpolated linearly."""

    soc: list[Fraction] = Field(min_length=2, max_length=1000)
    v: list[CellVolts] = Field(min_length=2, max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> OcvSpec:
        _same_length("soc", self.soc, "v", self.v)
        _increasing("soc", self.soc)
        if any(b < a for a, b in zip(self.v, self.v[1:], strict=False)):
            raise ValueError("v must not decrease with soc")
        return self


class ResistanceMapSpec(_Strict):
    """Cell resistance (ohm, fresh) over SOC and temperature: one row of len(soc) values per
    temperature node, for discharge and for charge. Linear between nodes; Arrhenius with the
    pack's activation energy beyond the temperature nodes."""

    soc: list[Fraction] = Field(min_length=2, max_length=200)
    temperature_c: list[TemperatureC] = Field(min_length=1, max_length=50)
    discharge_ohm: list[list[CellOhms]] = Field(min_length=1, max_length=50)
    charge_ohm: list[list[CellOhms]] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _check(self) -> ResistanceMapSpec:
        _increasing("soc", self.soc)
        _increasing("temperature_c", self.temperature_c)
        for name in ("discharge_ohm", "charge_ohm"):
            rows = getattr(self, name)
            if len(rows) != len(self.temperature_c) or any(len(r) != len(self.soc) for r in rows):
                raise ValueError(
                    f"{name} needs one row per temperature_c node, each with one value per soc "
                    f"node ({len(self.temperature_c)} x {len(self.soc)})"
                )
        return self


class ChargeTaperSpec(_Strict):
    """What the battery management accepts while charging (plug or regeneration): a C-rate of
    the nominal capacity over SOC, times a derating factor over the pack temperature."""

    soc: list[Fraction] = Field(min_length=2, max_length=200)
    c_rate: list[CRate] = Field(min_length=2, max_length=200)
    temperature_c: list[TemperatureC] = Field(min_length=1, max_length=200)
    factor: list[Fraction] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _check(self) -> ChargeTaperSpec:
        _same_length("soc", self.soc, "c_rate", self.c_rate)
        _same_length("temperature_c", self.temperature_c, "factor", self.factor)
        _increasing("soc", self.soc)
        _increasing("temperature_c", self.temperature_c)
        return self


class SensorSpec(_Strict):
    """What the pack's sensors are assumed to get wrong, for the state estimator (1 sigma).
    `options.sensors` overrides these per request."""

    voltage_std_v: float = Field(0.5, gt=0, le=100, description="pack voltage noise")
    voltage_bias_v: float = Field(
        0.0, ge=0, le=100, description="unknown constant voltage offset (adds to the noise)"
    )
    current_std_a: float = Field(0.5, ge=0, le=1000, description="current noise")
    current_bias_a: float = Field(
        0.5, ge=0, le=1000, description="unknown current offset, estimated by the filter"
    )
    temperature_std_c: float = Field(0.5, gt=0, le=50, description="temperature noise")
    soc_std: float = Field(0.03, gt=0, le=1, description="error of the BMS's SOC")


class ThermalManagementSpec(_Strict):
    """An active loop: heats below `heat_below_c`, cools above `cool_above_c`, with a heat flow
    of gain x distance from the threshold up to the heating or cooling limit; its electrical
    power (heat / COP, at most `max_electric_kw`) is drawn from the pack while the vehicle is
    active (driving, plugged in, preconditioning). Plugged in or preconditioning, it heats up
    to `precondition_c`."""

    heat_below_c: float = Field(ge=-40, le=60)
    cool_above_c: float = Field(ge=-40, le=80)
    precondition_c: float = Field(ge=-40, le=60, description="heating target for a fast charge")
    gain_w_k: float = Field(gt=0, le=1e6, description="heat flow per K beyond the threshold")
    max_heating_kw: float = Field(ge=0, le=200)
    max_cooling_kw: float = Field(ge=0, le=200)
    max_electric_kw: float = Field(gt=0, le=100)
    heater: Literal["heat_pump", "resistive"] = "heat_pump"
    carnot_fraction: float = Field(gt=0, le=1, description="COP / Carnot COP (heat pump, chiller)")
    max_cop: float = Field(ge=1, le=20)

    @model_validator(mode="after")
    def _check(self) -> ThermalManagementSpec:
        if self.heat_below_c > self.cool_above_c:
            raise ValueError("heat_below_c must not exceed cool_above_c")
        return self


_DERIVED_PACK_FIELDS = ("capacity_ah", "nominal_voltage_v", "nominal_energy_kwh")


def _derived_pack_values(
    cells_series: float, cells_parallel: float, cell_capacity_ah: float
) -> dict[str, float]:
    """What PackSpec's computed fields show for these numbers."""
    capacity = cell_capacity_ah * cells_parallel
    voltage = round(cells_series * LFP_NOMINAL_CELL_V, 3)
    # Six significant digits: a small pack's energy never rounds to 0.
    return {
        "capacity_ah": capacity,
        "nominal_voltage_v": voltage,
        "nominal_energy_kwh": float(f"{capacity * voltage / 1000.0:.6g}"),
    }


def derived_pack_bounds() -> tuple[dict[str, float], dict[str, float]]:
    """The computed fields' ranges: their values at the ends of cells_series (1..1000),
    cells_parallel (1..1000) and cell_capacity_ah (0.1..5000)."""
    return _derived_pack_values(1, 1, 0.1), _derived_pack_values(1000, 1000, 5000)


def _show_derived(schema: dict[str, Any]) -> None:
    """The input schema lists the computed fields as optional (the output one has them)."""
    props = schema.setdefault("properties", {})
    low, high = derived_pack_bounds()
    for name in _DERIVED_PACK_FIELDS:
        props.setdefault(
            name,
            {
                "type": "number",
                "minimum": low[name],
                "maximum": high[name],
                "description": "derived from cells_series, cells_parallel and "
                "cell_capacity_ah; accepted when it agrees",
            },
        )


class PackSpec(_Strict):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_show_derived)

    chemistry: Label = "LFP"
    cells_series: int = Field(ge=1, le=1000)
    cells_parallel: int = Field(1, ge=1, le=1000)
    cell_capacity_ah: float = Field(ge=0.1, le=5000)
    cell_resistance: ResistanceMapSpec = Field(description="cell resistance map (R0 + R1)")
    r0_fraction: float = Field(gt=0, le=1, description="share of the resistance that is ohmic")
    tau1_s: float = Field(ge=1e-3, le=1e5, description="RC-branch time constant")
    activation_energy_j_mol: float = Field(
        ge=0, le=2e5, description="Arrhenius energy of the resistance beyond its map"
    )
    ocv: OcvSpec = Field(
        default_factory=lambda: OcvSpec(soc=list(cell_data.OCV_SOC), v=list(cell_data.OCV_V)),
        description="cell open-circuit voltage",
    )
    hysteresis_v: float = Field(0.0, ge=0, le=0.2, description="OCV hysteresis half-gap, cell")
    hysteresis_rate: float = Field(0.0, ge=0, le=1e4, description="per capacity moved")
    cell_v_min: float = Field(gt=0, le=5)
    cell_v_max: float = Field(gt=0, le=5)
    soc_min: float = Field(0.0, ge=0, lt=1, description="bottom of the usable SOC window")
    soc_max: float = Field(1.0, gt=0, le=1, description="top of the usable SOC window")
    max_discharge_a: float = Field(gt=0, le=1e5)
    max_charge_a: float = Field(gt=0, le=1e5)
    max_discharge_kw: float = Field(gt=0, le=1e5)
    max_regen_kw: float = Field(gt=0, le=1e5, description="largest charging power (regen or plug)")
    charge_taper: ChargeTaperSpec | None = Field(None, description="accepted charge current")
    heat_capacity_j_k: float = Field(ge=1, le=1e9)
    conductance_w_k: float = Field(ge=1e-3, le=1e7, description="h*A to ambient")
    cooling_w_k: float = Field(0.0, ge=0, le=1e7, description="extra passive conductance")
    aging_model: Literal[MODEL_NAMES] = Field(  # type: ignore[valid-type]
        DEFAULT_MODEL, description="the aging model /step uses unless options name one"
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_derived(cls, data: Any) -> Any:
        """Accept the computed fields that GET /vehicles/presets shows, when they agree with
        the numbers they derive from (so that exact object is a valid inline vehicle)."""
        if not isinstance(data, dict) or not any(k in data for k in _DERIVED_PACK_FIELDS):
            return data
        data = dict(data)
        given = {k: data.pop(k) for k in _DERIVED_PACK_FIELDS if k in data}
        try:
            expected = _derived_pack_values(
                float(data["cells_series"]),
                float(data.get("cells_parallel", 1)),
                float(data["cell_capacity_ah"]),
            )
        except (KeyError, TypeError, ValueError):
            return data  # the fields' own errors name the problem
        for name, value in given.items():
            want = expected[name]
            if type(value) not in (int, float) or not math.isclose(value, want, rel_tol=1e-9):
                raise ValueError(
                    f"{name} is derived from cells_series, cells_parallel and "
                    f"cell_capacity_ah ({want:g}); omit it or send that value"
                )
        return data

    @model_validator(mode="after")
    def _check(self) -> PackSpec:
        if self.cell_v_min >= self.cell_v_max:
            raise ValueError("cell_v_min must be below cell_v_max")
        if self.soc_min >= self.soc_max:
            raise ValueError("soc_min must be below soc_max")
        if self.cell_v_min >= self.ocv.v[-1] or self.cell_v_max <= self.ocv.v[0]:
            raise ValueError(
                "cell_v_min must lie below the top of the ocv curve and cell_v_max above its "
                f"bottom ({self.ocv.v[0]:g}..{self.ocv.v[-1]:g} V), or the pack can never "
                "discharge or charge"
            )
        return self

    def _derived(self) -> dict[str, float]:
        return _derived_pack_values(self.cells_series, self.cells_parallel, self.cell_capacity_ah)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def capacity_ah(self) -> float:
        return self._derived()["capacity_ah"]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def nominal_voltage_v(self) -> float:
        return self._derived()["nominal_voltage_v"]  # LFP nominal cell voltage 3.2 V

    @computed_field  # type: ignore[prop-decorator]
    @property
    def nominal_energy_kwh(self) -> float:
        return self._derived()["nominal_energy_kwh"]


class DrivetrainSpec(_Strict):
    motors: list[Label] = Field(min_length=1, max_length=16)
    motor_peak_kw: float = Field(ge=0.1, le=1e4, description="peak power of each motor")
    efficiency_load: list[Fraction] = Field(
        min_length=2, max_length=100, description="fraction of peak power, ascending"
    )
    efficiency_value: list[Efficiency] = Field(
        min_length=2, max_length=100, description="motor + inverter efficiency at that load"
    )
    transmission_efficiency: float = Field(ge=0.01, le=1)
    aux_kw: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _check(self) -> DrivetrainSpec:
        _same_length(
            "efficiency_load", self.efficiency_load, "efficiency_value", self.efficiency_value
        )
        _increasing("efficiency_load", self.efficiency_load)
        return self


class RoadLoadSpec(_Strict):
    mass_kg: float = Field(ge=1, le=1e5)
    cd: float = Field(gt=0, le=3)
    frontal_area_m2: float = Field(gt=0, le=30)
    crr: float = Field(ge=0, le=0.1)
    wheel_radius_m: float = Field(ge=0.05, le=2)
    final_drive_ratio: float = Field(ge=0.1, le=50)
    rotating_mass_factor: float = Field(1.0, ge=1, le=3)
    driven_axle: Label = "rear"


class VehiclePreset(_Strict):
    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1, max_length=200)
    pack: PackSpec
    drivetrain: DrivetrainSpec
    roadload: RoadLoadSpec
    thermal_management: ThermalManagementSpec | None = None
    sensors: SensorSpec = Field(
        default_factory=SensorSpec, description="sensor errors the state estimator assumes"
    )
    sources: dict[Label, Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=100
    )

    @model_validator(mode="after")
    def _check(self) -> VehiclePreset:
        tms = self.thermal_management
        if tms is not None and tms.gain_w_k * MAX_TMS_HOLD_S > self.pack.heat_capacity_j_k:
            raise ValueError(
                "thermal_management.gain_w_k is too stiff for pack.heat_capacity_j_k: the loop "
                f"holds its output up to {MAX_TMS_HOLD_S:g} s, so gain x {MAX_TMS_HOLD_S:g} s "
                "must not exceed the heat capacity"
            )
        return self


def pack_params(preset: VehiclePreset) -> PackParams:
    """Pack-level model parameters from a preset (cells in series add, in parallel divide)."""
    p = preset.pack
    ratio = p.cells_series / p.cells_parallel
    rmap = p.cell_resistance
    taper = p.charge_taper
    tables = PackTables(
        ocv_soc=tuple(p.ocv.soc),
        ocv_v=tuple(p.ocv.v),
        resistance_soc=tuple(rmap.soc),
        resistance_temperature_c=tuple(rmap.temperature_c),
        discharge_ohm=tuple(tuple(r * ratio for r in row) for row in rmap.discharge_ohm),
        charge_ohm=tuple(tuple(r * ratio for r in row) for row in rmap.charge_ohm),
    )
    if taper is not None:
        tables = replace(
            tables,
            taper_soc=tuple(taper.soc),
            taper_a=tuple(c * p.capacity_ah for c in taper.c_rate),
            derate_temperature_c=tuple(taper.temperature_c),
            derate_factor=tuple(taper.factor),
        )
    tm = preset.thermal_management
    tms = None
    if tm is not None:
        tms = ThermalManagementParams(
            heat_below_c=tm.heat_below_c,
            cool_above_c=tm.cool_above_c,
            precondition_c=tm.precondition_c,
            gain_w_k=tm.gain_w_k,
            max_heating_w=tm.max_heating_kw * 1000.0,
            max_cooling_w=tm.max_cooling_kw * 1000.0,
            max_electric_w=tm.max_electric_kw * 1000.0,
            heat_pump=tm.heater == "heat_pump",
            carnot_fraction=tm.carnot_fraction,
            max_cop=tm.max_cop,
        )
    return PackParams(
        cells_series=p.cells_series,
        capacity_ah=p.capacity_ah,
        circuit=CircuitParams(
            r0_fraction=p.r0_fraction,
            tau1_s=p.tau1_s,
            activation_energy_j_mol=p.activation_energy_j_mol,
            v_min=p.cell_v_min * p.cells_series,
            v_max=p.cell_v_max * p.cells_series,
            max_discharge_a=p.max_discharge_a,
            max_charge_a=p.max_charge_a,
            max_discharge_w=p.max_discharge_kw * 1000.0,
            max_regen_w=p.max_regen_kw * 1000.0,
            soc_min=p.soc_min,
            soc_max=p.soc_max,
            hysteresis_v=p.hysteresis_v,
            hysteresis_rate=p.hysteresis_rate,
        ),
        thermal=ThermalParams(
            heat_capacity_j_k=p.heat_capacity_j_k,
            conductance_w_k=p.conductance_w_k + p.cooling_w_k,
        ),
        tables=tables,
        tms=tms,
    )


def on_cycler(preset: VehiclePreset, isothermal: bool = False) -> VehiclePreset:
    """The preset's pack as a cell cycler sees it: the whole SOC range, no charge taper, no
    thermal management (and, if `isothermal`, held at ambient by a stiff passive loop). For
    checks of the aging models against their closed forms, which assume exactly that."""
    pack = preset.pack.model_copy(
        update={"soc_min": 0.0, "soc_max": 1.0, "charge_taper": None}
        | ({"cooling_w_k": 1e6} if isothermal else {})
    )
    return preset.model_copy(
        update={"id": f"{preset.id}-cycler", "pack": pack, "thermal_management": None}
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

# isort: split
from twin_service.presets.inline import VehicleOverride, VehicleRef  # noqa: E402  (needs PRESETS)

__all__ = [
    "ID_PATTERN",
    "ID_RE",
    "PRESETS",
    "VehicleOverride",
    "VehicleRef",
    "ChargeTaperSpec",
    "OcvSpec",
    "ResistanceMapSpec",
    "ThermalManagementSpec",
    "DrivetrainSpec",
    "PackSpec",
    "RoadLoadSpec",
    "VehiclePreset",
    "derived_pack_bounds",
    "drivetrain_params",
    "on_cycler",
    "pack_params",
]
