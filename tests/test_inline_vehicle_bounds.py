"""Inline vehicles (SPEC §6): every number has physical bounds in the OpenAPI schema, and a step
with any vehicle inside them and any valid samples gives finite outputs or a 4xx, never a
server error."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from twin_service.errors import ApiError
from twin_service.openapi_export import openapi_document
from twin_service.presets import PRESETS, VehiclePreset
from twin_service.step.service import run_step

# Node arrays that must stay strictly increasing: the fuzzing keeps their shape.
NODE_ARRAYS = {"soc", "temperature_c", "efficiency_load"}


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _numbers(
    schema: dict[str, Any], doc: dict[str, Any], path: str, seen: set[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, schema) of every number or integer reachable from `schema`."""
    ref = schema.get("$ref")
    if ref is not None:
        if ref in seen:
            return
        seen = seen | {ref}
    schema = _resolve(schema, doc)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from _numbers(sub, doc, path, seen)
    kind = schema.get("type")
    if kind in ("number", "integer"):
        yield path, schema
    elif kind == "array":
        yield from _numbers(schema.get("items", {}), doc, f"{path}[]", seen)
    elif kind == "object":
        for name, sub in schema.get("properties", {}).items():
            yield from _numbers(sub, doc, f"{path}.{name}", seen)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            yield from _numbers(extra, doc, f"{path}.*", seen)


@pytest.mark.parametrize("name", ["VehiclePreset", "VehiclePreset-Input", "VehicleOverride"])
def test_every_number_of_an_inline_vehicle_has_bounds_in_the_openapi_schema(name: str) -> None:
    """In /step's StepRequest and in the forecast requests; full vehicles and overrides."""
    doc = openapi_document()
    found = list(_numbers({"$ref": f"#/components/schemas/{name}"}, doc, "vehicle", set()))
    assert len(found) >= 40
    lows, highs = {"minimum", "exclusiveMinimum"}, {"maximum", "exclusiveMaximum"}
    unbounded = [path for path, s in found if not (lows & s.keys() and highs & s.keys())]
    assert unbounded == []


def test_the_builtin_presets_are_inside_the_bounds() -> None:
    for preset in PRESETS.values():
        dumped = preset.model_dump()  # with the computed fields, as GET /vehicles/presets
        assert VehiclePreset.model_validate(dumped) == preset


# -- fuzzing at the corners of the bounds --------------------------------------------------------

_SCHEMA = VehiclePreset.model_json_schema()


def _bounds(schema: dict[str, Any]) -> tuple[float, float]:
    """The closed interval inside a number's bounds (exclusive ones nudged inside)."""
    low = schema.get("minimum")
    if low is None:
        ex = schema["exclusiveMinimum"]
        low = ex + max(abs(ex) * 1e-9, 1e-9)
    high = schema.get("maximum")
    if high is None:
        ex = schema["exclusiveMaximum"]
        high = ex - max(abs(ex) * 1e-9, 1e-9)
    if schema.get("type") == "integer":
        return float(math.ceil(low)), float(math.floor(high))
    return float(low), float(high)


def _leaf_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The number schema of a property (or of an array's items, also nested), else None."""
    schema = _deref(schema)
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, []):
            found = _leaf_schema(sub)
            if found is not None:
                return found
    if schema.get("type") in ("number", "integer"):
        return schema
    if schema.get("type") == "array":
        return _leaf_schema(schema.get("items", {}))
    return None


def _deref(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return _SCHEMA["$defs"][ref.rsplit("/", 1)[1]] if ref else schema


def _object_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    schema = _deref(schema)
    for sub in schema.get("anyOf", []):
        found = _object_schema(sub)
        if found is not None:
            return found
    return schema if schema.get("type") == "object" else None


def _fill(value: Any, number: float, integer: bool) -> Any:
    if isinstance(value, list):
        return [_fill(v, number, integer) for v in value]
    return int(number) if integer else number


@st.composite
def corner_vehicles(draw: st.DrawFn) -> dict[str, Any]:
    """A built-in preset with some numbers moved to the ends of their bounds."""
    v = PRESETS[draw(st.sampled_from(sorted(PRESETS)))].model_dump(exclude_computed_fields=True)
    v["id"] = "corner"
    if draw(st.booleans()):
        v["thermal_management"] = None
    if draw(st.booleans()):
        v["pack"]["charge_taper"] = None

    def walk(node: dict[str, Any], schema: dict[str, Any]) -> None:
        for name, sub in schema.get("properties", {}).items():
            if name not in node or node[name] is None:
                continue
            obj = _object_schema(sub)
            if obj is not None and isinstance(node[name], dict) and "properties" in obj:
                walk(node[name], obj)
                continue
            leaf = _leaf_schema(sub)
            if leaf is None or name in NODE_ARRAYS or draw(st.integers(0, 5)) > 0:
                continue
            low, high = _bounds(leaf)
            end = draw(st.sampled_from([low, high]))
            node[name] = _fill(node[name], end, leaf.get("type") == "integer")

    walk(v, _SCHEMA)
    return v


def _motor() -> st.SearchStrategy[dict[str, float]]:
    ends = st.sampled_from([-1e5, 0.0, 1e5])
    return st.fixed_dictionaries({"torque_nm": ends, "speed_rad_s": ends})


_DT = st.sampled_from([1e-6, 1.0, 600.0, 86400.0])
_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "ambient_c": st.sampled_from([-60.0, 80.0]),
    "charging": st.booleans(),
    "precondition": st.booleans(),
    "wheel_speed_m_s": st.sampled_from([-150.0, 150.0]),
}
SAMPLES = st.one_of(
    st.fixed_dictionaries(
        {"dt_s": _DT, "current_a": st.sampled_from([-1e5, 0.0, 1e5])}, optional=_OPTIONAL
    ),
    st.fixed_dictionaries(
        {"dt_s": _DT, "power_kw": st.sampled_from([-1e4, 0.0, 1e4])},
        optional={**_OPTIONAL, "aux_kw": st.sampled_from([0.0, 100.0])},
    ),
    st.fixed_dictionaries(
        {"dt_s": _DT, "motors": st.lists(_motor(), max_size=16)},
        optional={**_OPTIONAL, "aux_kw": st.sampled_from([0.0, 100.0])},
    ),
)
STATES = st.sampled_from(
    [
        None,
        {"soc": 0.0},
        {"soc": 1.0, "temperature_c": 150.0},
        {"soc": 0.5, "temperature_c": -60.0, "soh": 1e-9, "resistance_factor": 10.0},
    ]
)


def _finite(x: Any) -> bool:
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


@pytest.mark.slow
@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    vehicle=corner_vehicles(),
    samples=st.lists(SAMPLES, min_size=1, max_size=20),
    aging_model=st.sampled_from(["naumann", "nrel_lfp250", "seed"]),
    time_multiplier=st.sampled_from([1.0, 1e6]),
    state=STATES,
)
def test_a_step_inside_the_bounds_is_finite_or_a_4xx(
    vehicle: dict[str, Any],
    samples: list[dict[str, Any]],
    aging_model: str,
    time_multiplier: float,
    state: dict[str, Any] | None,
) -> None:
    try:
        VehiclePreset.model_validate(vehicle)
    except ValidationError:
        return  # corners that contradict each other: the 422s are tested elsewhere
    options = {"aging_model": aging_model, "time_multiplier": time_multiplier, "trace": True}
    body = {"vehicle_id": "corner", "vehicle": vehicle, "state": copy.deepcopy(state),
            "samples": samples, "options": options}  # fmt: skip
    try:
        out = run_step(body, "sv1ev3", 1000)
    except ApiError as exc:  # refused (the pack ages past its end of life, ...): a 4xx
        assert 400 <= exc.status_code < 500
        return
    assert _finite(out.state) and _finite(out.telemetry) and _finite(out.trace)
