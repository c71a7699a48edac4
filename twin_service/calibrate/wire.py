"""POST /calibrate on the wire: the request and response models, and the fitted vehicle.

The samples are /step samples, validated column-wise by twin_service/step/samples.py;
`CalibrateRequest` documents them for OpenAPI, `CalibrateEnvelope` is what the service
validates with pydantic (everything but the samples).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from twin_service.calibrate.fit import PARAMETERS, Fit, scaled_resistance
from twin_service.presets import PRESETS, VehicleOverride, VehiclePreset, VehicleRef
from twin_service.schemas import PackSeed, PackStateWire, Sample, SampleColumns

ParameterName = Literal["capacity_ah", "r0_ohm", "r1_ohm", "tau1_s", "ocv_offset_v", "initial_soc"]
assert get_args(ParameterName) == PARAMETERS
# PackSpec's bounds, which the fitted vehicle must keep to (presets.PackSpec and its maps).
CELL_AH_RANGE = (0.1, 5000.0)
CELL_OHM_RANGE = (1e-6, 10.0)
TAU1_RANGE_S = (1e-3, 1e5)
CELL_V_MAX = 5.0
_OCV_MARGIN_V = 1e-3  # kept from PackSpec's limits on the shifted OCV curve
_DERIVED = ("capacity_ah", "nominal_voltage_v", "nominal_energy_kwh")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


_VEHICLE_DOC = (
    "the vehicle the log was taken from, as in /step: a preset id (default: the service's "
    "default_vehicle), a full vehicle or {base, ...overrides}; the fit starts from its values"
)
_STATE_DOC = (
    "the pack at the log's first sample, as in /step: null, a seed or a full state; its SOC is "
    "fitted (initial_soc) unless `parameters` leaves it out"
)
_PARAMETERS_DOC = (
    "the parameters to fit (default: all); each that the log does not determine is held at "
    "its nominal value with a warning"
)


class CalibrateRequest(_Wire):
    vehicle: VehicleRef | None = Field(None, description=_VEHICLE_DOC)
    state: PackStateWire | PackSeed | None = Field(None, description=_STATE_DOC)
    samples: Annotated[list[Sample], Field(min_length=1)] | SampleColumns = Field(  # type: ignore[valid-type]
        description="/step samples, rows or columns, usually current_a with measured_voltage_v "
        "(and measured_temperature_c, which the model's pack temperature then follows)",
    )
    parameters: list[ParameterName] | None = Field(
        None, min_length=1, max_length=6, description=_PARAMETERS_DOC
    )


class CalibrateEnvelope(_Wire):
    """CalibrateRequest without the samples (validated column-wise)."""

    vehicle: VehicleRef | None = None
    state: dict[str, Any] | None = None
    samples: Any = None
    parameters: list[ParameterName] | None = Field(None, min_length=1, max_length=6)


class FittedParameter(BaseModel):
    value: float
    std: float | None = Field(description="standard error; null where not fitted")
    unit: str
    nominal: float = Field(description="the value before the fit")
    identified: bool = Field(description="false: held at its nominal value (see warnings)")


class CalibrationFit(BaseModel):
    rms_before_v: float = Field(description="rms voltage residual at the nominal parameters")
    rms_after_v: float = Field(description="rms voltage residual at the fitted parameters")
    samples: int = Field(description="samples with a measured voltage")
    parameters: dict[ParameterName, FittedParameter] = Field(
        description="capacity_ah (pack Ah) and r0_ohm, r1_ohm (pack ohm at 25 degC and 50 % "
        "SOC of the map) as the log shows them: times the state's soh and resistance_factor"
    )
    warnings: list[str]


class CalibrateResponse(BaseModel):
    vehicle: VehicleOverride | VehiclePreset = Field(
        description="the fitted vehicle, accepted by /step as it is"
    )
    state: PackStateWire | PackSeed = Field(
        description="the pack at the log's first sample with the fitted SOC: with `vehicle`, "
        "/step replays the log as the fit did"
    )
    fit: CalibrationFit


def clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def spec_bounds(vehicle: VehiclePreset) -> dict[str, tuple[float, float]]:
    """The fit's ranges (capacity and resistances as factors) that keep the fitted vehicle
    inside PackSpec's bounds."""
    pack = vehicle.pack
    rmap = pack.cell_resistance
    values = [r for rows in (rmap.discharge_ohm, rmap.charge_ohm) for row in rows for r in row]
    v = pack.ocv.v
    return {
        "capacity_ah": (CELL_AH_RANGE[0] / pack.cell_capacity_ah,
                        CELL_AH_RANGE[1] / pack.cell_capacity_ah),
        "r0_ohm": (CELL_OHM_RANGE[0] / min(values), CELL_OHM_RANGE[1] / max(values)),
        "r1_ohm": (CELL_OHM_RANGE[0] / min(values), CELL_OHM_RANGE[1] / max(values)),
        "tau1_s": TAU1_RANGE_S,
        "ocv_offset_v": (
            max(_OCV_MARGIN_V - v[0], pack.cell_v_min - v[-1] + _OCV_MARGIN_V),
            min(CELL_V_MAX - v[-1], pack.cell_v_max - v[0] - _OCV_MARGIN_V),
        ),
        "initial_soc": (0.0, 1.0),
    }  # fmt: skip


def fitted_pack(vehicle: VehiclePreset, fit: Fit) -> dict[str, Any]:
    """The pack fields the fit changed (identified parameters only), within PackSpec's
    bounds."""
    pack = vehicle.pack
    done = {name for name, e in fit.estimates.items() if e.identified}
    out: dict[str, Any] = {}
    if "capacity_ah" in done:
        out["cell_capacity_ah"] = clip(pack.cell_capacity_ah * fit.capacity_factor, *CELL_AH_RANGE)
    if done & {"r0_ohm", "r1_ohm"}:
        g, fraction = scaled_resistance(pack.r0_fraction, fit.r0_factor, fit.r1_factor)
        rmap = pack.cell_resistance

        def scaled(rows: list[list[float]]) -> list[list[float]]:
            return [[clip(r * g, *CELL_OHM_RANGE) for r in row] for row in rows]

        out["cell_resistance"] = {
            "soc": list(rmap.soc),
            "temperature_c": list(rmap.temperature_c),
            "discharge_ohm": scaled(rmap.discharge_ohm),
            "charge_ohm": scaled(rmap.charge_ohm),
        }
        out["r0_fraction"] = clip(fraction, 1e-12, 1.0)
    if "tau1_s" in done:
        out["tau1_s"] = clip(fit.tau1_s, *TAU1_RANGE_S)
    if "ocv_offset_v" in done:
        offset = fit.ocv_offset_v
        out["ocv"] = {
            "soc": list(pack.ocv.soc),
            "v": [clip(v + offset, 1e-6, CELL_V_MAX) for v in pack.ocv.v],
        }
    return out


def fitted_vehicle(raw: Any, vehicle: VehiclePreset, pack: dict[str, Any]) -> dict[str, Any]:
    """The request's vehicle in its own form with the fitted pack fields: a preset id (or a
    vehicle equal to a preset) becomes {"base": id, "pack": fields}; an override keeps its
    other fields (and loses an `id`, so the result is named <base>~<hash>); a full vehicle is
    returned whole."""
    if raw is None or isinstance(raw, str) or vehicle.id in PRESETS:  # a built-in preset
        return {"base": vehicle.id, "pack": pack} if pack else {"base": vehicle.id}
    if isinstance(raw, dict) and "base" in raw:
        out = VehicleOverride.model_validate(raw).model_dump(exclude_unset=True)
        out.pop("id", None)
        given = {k: v for k, v in (out.get("pack") or {}).items() if k not in _DERIVED}
        out["pack"] = given | pack
        return out
    full = vehicle.model_dump(exclude_computed_fields=True)
    full["pack"] = full["pack"] | pack
    # Dumped with the computed fields, which /step accepts when they agree.
    return VehiclePreset.model_validate(full).model_dump()


def wire_fit(fit: Fit) -> dict[str, Any]:
    return {
        "rms_before_v": fit.rms_before_v,
        "rms_after_v": fit.rms_after_v,
        "samples": fit.samples,
        "parameters": {
            name: {
                "value": e.value,
                "std": e.std,
                "unit": e.unit,
                "nominal": e.nominal,
                "identified": e.identified,
            }
            for name, e in fit.estimates.items()
        },  # fmt: skip
        "warnings": fit.warnings,
    }
