"""A request's `vehicle`: a preset id, a full inline vehicle, or a built-in preset with overrides.

`{"base": "sv1ev3", "pack": {"cells_series": 100}}` is sv1ev3 with those fields replaced:
objects merge field by field, lists and other values replace, `null` clears an optional field
(`thermal_management: null` removes the loop). The result is validated as a whole, like a full
inline vehicle (bounds, then consistency), and errors name the request's fields. Without an `id`
of its own it is named after its base and a hash of its numbers ("sv1ev3~1a2b3c4d", a form no
request can give): a built-in id names only that preset, unchanged.

Either form validates to a VehiclePreset; a preset id stays a string (resolved per request).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, create_model
from pydantic.json_schema import GetJsonSchemaHandler, JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError

from twin_service.presets import (
    ID_RE,
    PRESETS,
    ChargeTaperSpec,
    DrivetrainSpec,
    OcvSpec,
    PackSpec,
    ResistanceMapSpec,
    RoadLoadSpec,
    SensorSpec,
    ThermalManagementSpec,
    VehiclePreset,
    derived_pack_bounds,
)

PRESET_IDS = tuple(sorted(PRESETS))
REQUIRED = ("id", "name", "pack", "drivetrain", "roadload")
_NOT_PHYSICS = {"id", "name", "sources"}
MEMO_MAX_CHARS = 4096  # overrides up to this size (as JSON) are remembered
_KNOWN = ", ".join(PRESET_IDS)
_TYPE_MESSAGE = (
    f"Input should be a preset id (one of {_KNOWN}) or an inline vehicle object: a full "
    'vehicle or {"base": "<preset id>", …overrides}'
)
_SHAPE_MESSAGE = (
    "an inline vehicle needs id, name, pack, drivetrain and roadload (missing: {missing}), "
    'or {{"base": "<preset id>", …overrides}}'
)


def _no_defaults(schema: dict[str, Any]) -> None:
    """An override's omitted field keeps the base's value: no default to show."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


_PATCH_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_no_defaults)


def _patch_of(
    spec: type[BaseModel], doc: str, nested: dict[str, Any], extra: dict[str, Any] | None = None
) -> type[BaseModel]:
    """`spec` with every field optional, bounds kept; `nested` replaces the annotation of the
    fields that are objects themselves (merged field by field, not replaced)."""
    fields: dict[str, Any] = {}
    for name, info in spec.model_fields.items():
        annotation = nested.get(name, info.annotation)
        typed = Annotated[(annotation, *info.metadata)] if info.metadata else annotation
        fields[name] = (typed, Field(None, description=info.description))
    return create_model(
        spec.__name__.replace("Spec", "Override"),
        __config__=_PATCH_CONFIG,
        __doc__=doc,
        __module__=__name__,
        **fields,
        **(extra or {}),
    )


def _derived_fields() -> dict[str, Any]:
    """PackSpec's computed fields, accepted (when they agree) as in a full vehicle."""
    low, high = derived_pack_bounds()
    return {
        name: (
            Annotated[float, Field(ge=low[name], le=high[name])],
            Field(None, description="derived; accepted when it agrees"),
        )
        for name in low
    }


OcvOverride = _patch_of(OcvSpec, "Fields of the base's ocv to replace.", {})
ResistanceMapOverride = _patch_of(ResistanceMapSpec, "Fields of the base's map to replace.", {})
ChargeTaperOverride = _patch_of(ChargeTaperSpec, "Fields of the base's taper to replace.", {})
ThermalManagementOverride = _patch_of(
    ThermalManagementSpec, "Fields of the base's loop to replace (all, if it has none).", {}
)
DrivetrainOverride = _patch_of(DrivetrainSpec, "Fields of the base's drivetrain to replace.", {})
RoadLoadOverride = _patch_of(RoadLoadSpec, "Fields of the base's road load to replace.", {})
SensorOverride = _patch_of(SensorSpec, "Fields of the base's sensor errors to replace.", {})
PackOverride = _patch_of(
    PackSpec,
    "Fields of the base's pack to replace.",
    {
        "ocv": OcvOverride,
        "cell_resistance": ResistanceMapOverride,
        "charge_taper": ChargeTaperOverride | None,
    },
    _derived_fields(),
)


class VehicleOverride(BaseModel):
    """A built-in preset with some fields replaced: objects merge field by field, lists and
    other values replace, null clears an optional field. Without `id`: "<base>~<hash>"."""

    model_config = _PATCH_CONFIG

    base: str = Field(
        description="a preset id from GET /vehicles/presets",
        json_schema_extra={"enum": list(PRESET_IDS)},
    )
    id: Annotated[str, Field(pattern=ID_RE)] | None = Field(
        None, description="default: the base's id when nothing changes, else <base>~<hash>"
    )
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="default: the base's name"
    )
    pack: PackOverride = None  # type: ignore[valid-type]
    drivetrain: DrivetrainOverride = None  # type: ignore[valid-type]
    roadload: RoadLoadOverride = None  # type: ignore[valid-type]
    thermal_management: ThermalManagementOverride | None = Field(  # type: ignore[valid-type]
        None, description="null removes the base's loop"
    )
    sensors: SensorOverride = None  # type: ignore[valid-type]


def _error(kind: str, message: str, loc: tuple[str, ...], value: Any) -> ValidationError:
    detail: InitErrorDetails = {
        "type": PydanticCustomError(kind, message),
        "loc": loc,
        "input": value,
    }
    return ValidationError.from_exception_data("vehicle", [detail])


def not_a_builtin(vehicle: VehiclePreset) -> VehiclePreset:
    """An inline vehicle may carry a built-in preset's id only when it is that preset (name and
    sources aside): telemetry and forecasts know a vehicle's model by its id."""
    builtin = PRESETS.get(vehicle.id)
    if builtin is not None and _physics(vehicle) != _BASE_PHYSICS[builtin.id]:
        raise _error(
            "builtin_id",
            f"id {vehicle.id!r} is a built-in preset's; a vehicle that differs from it needs an "
            "id of its own (or none, with base)",
            ("id",),
            vehicle.id,
        )
    return vehicle


def _physics(vehicle: VehiclePreset) -> str:
    """The vehicle's numbers as canonical JSON (fields in declaration order)."""
    return vehicle.model_dump_json(exclude=_NOT_PHYSICS)


_BASE_DUMPS = {k: p.model_dump(exclude_computed_fields=True) for k, p in PRESETS.items()}
_BASE_PHYSICS = {k: _physics(p) for k, p in PRESETS.items()}


def _merge(base: Any, patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        out[key] = _merge(out.get(key), value) if isinstance(value, dict) else value
    return out


def _paths(patch: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in patch.items():
        if isinstance(value, dict) and value:
            out += _paths(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def apply_override(value: dict[str, Any]) -> VehiclePreset:
    """The vehicle `{"base": ..., overrides}` describes (see the module docstring)."""
    base_id = value.get("base")
    if isinstance(base_id, str) and base_id not in PRESETS:
        raise _error(
            "unknown_preset", f"unknown preset {base_id!r}; known: {_KNOWN}", ("base",), base_id
        )
    override = VehicleOverride.model_validate(value)
    base = PRESETS[override.base]
    patch = override.model_dump(exclude_unset=True, exclude={"base", "id", "name"})
    if not patch and override.id in (None, base.id) and override.name is None:
        return base
    merged = _merge(_BASE_DUMPS[base.id], patch)
    merged["id"] = override.id or base.id
    if override.name is not None:
        merged["name"] = override.name
    if patch:
        note = "replaced by the request: " + ", ".join(_paths(patch))
        merged["sources"] = {**base.sources, "overrides": note[:1000]}
    vehicle = VehiclePreset.model_validate(merged)
    physics = _physics(vehicle)
    if physics == _BASE_PHYSICS[base.id]:
        if override.name is None and override.id in (None, base.id):
            return base
        if override.id is None:
            return vehicle
    elif override.id is None:
        digest = hashlib.sha256(f"{base.id}\n{physics}".encode()).hexdigest()[:8]
        return vehicle.model_copy(update={"id": f"{base.id}~{digest}"})
    return not_a_builtin(vehicle)


@lru_cache(maxsize=256)
def _override_of(key: str) -> VehiclePreset:
    return apply_override(json.loads(key))


def _override(value: dict[str, Any]) -> VehiclePreset:
    """apply_override, remembered for small overrides (a fleet of one modified model)."""
    try:
        key = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON data (a Python caller's objects)
        return apply_override(value)
    return _override_of(key) if len(key) <= MEMO_MAX_CHARS else apply_override(value)


def _vehicle_ref(value: Any) -> str | VehiclePreset:
    if isinstance(value, str):
        return value  # resolved (or refused as unknown) per request
    if isinstance(value, VehiclePreset):
        return not_a_builtin(value)
    if not isinstance(value, dict):
        raise PydanticCustomError("vehicle_type", _TYPE_MESSAGE)
    if "base" in value:
        return _override(value)
    missing = [k for k in REQUIRED if k not in value]
    if missing:
        raise PydanticCustomError(
            "vehicle_shape", _SHAPE_MESSAGE.format(missing=", ".join(missing))
        )
    return not_a_builtin(VehiclePreset.model_validate(value))


class _OneOf:
    """The three forms are exclusive: show them as oneOf."""

    @staticmethod
    def __get_pydantic_json_schema__(
        schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        if "anyOf" in out:
            out["oneOf"] = out.pop("anyOf")
        out.setdefault("description", DESCRIPTION)
        return out


DESCRIPTION = (
    "a preset id; a full vehicle (the shape GET /vehicles/presets returns, computed fields "
    'optional); or {"base": "<preset id>", ...} with the fields to replace'
)


PresetId = Annotated[
    str,
    Field(
        description="a preset id from GET /vehicles/presets",
        json_schema_extra={"enum": list(PRESET_IDS)},
    ),
]
VehicleForms = PresetId | VehiclePreset | VehicleOverride

# A request's `vehicle`; errors are located at the request's fields
# (["body", "vehicle", "pack", "cells_series"]).
VehicleRef = Annotated[
    str | VehiclePreset,
    PlainValidator(_vehicle_ref, json_schema_input_type=VehicleForms),
    _OneOf,
]

__all__ = ["PRESET_IDS", "VehicleOverride", "VehicleRef", "apply_override", "not_a_builtin"]
