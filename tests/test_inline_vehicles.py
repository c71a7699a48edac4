"""Inline vehicles in requests: the presets round-trip, a preset with overrides (`base`), one
clear error for a vehicle of the wrong shape, and the three forms in the OpenAPI schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from support.processes import start_service

from twin_service.app import create_app
from twin_service.openapi_export import openapi_document
from twin_service.presets import PRESETS, VehiclePreset, inline
from twin_service.schemas import ForecastItem, StepEnvelope
from twin_service.settings import Settings

GOOD = {"dt_s": 1.0, "power_kw": 10.0}
# A short drive with regeneration, a charge and a cold spell: the pack, drivetrain, road load
# and thermal management all take part.
DRIVE = [
    {"dt_s": 10.0, "motors": [{"torque_nm": 200.0, "speed_rad_s": 500.0}], "ambient_c": -5.0},
    {"dt_s": 10.0, "power_kw": -30.0, "ambient_c": -5.0},
    {"dt_s": 60.0, "current_a": -100.0, "charging": True, "ambient_c": 35.0},
    {"dt_s": 5.0, "motors": [{"torque_nm": 150.0, "speed_rad_s": 400.0}], "wheel_speed_m_s": 20},
]
IDS = sorted(PRESETS)
DERIVED_ID = re.compile(r"^(?P<base>[A-Za-z0-9._-]+)~[0-9a-f]{8}$")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as c:
        yield c


def step(client: TestClient, vehicle: Any, samples: list[dict[str, Any]] = DRIVE) -> Any:
    return client.post(
        "/step",
        json={"vehicle_id": "inline", "vehicle": vehicle, "samples": samples,
              "options": {"store": False}},
    )  # fmt: skip


def physics(telemetry: dict[str, Any]) -> dict[str, Any]:
    """A step's telemetry without what names the vehicle or the time of the request."""
    return {k: v for k, v in telemetry.items() if k not in ("timestamp", "vehicle_model")}


def errors(resp: Any) -> list[tuple[list[Any], str, str]]:
    assert resp.status_code == 422, resp.text
    return [(e["loc"], e["msg"], e["type"]) for e in resp.json()["detail"]]


def full_with(base: str, vehicle_id: str, changes: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """The full inline vehicle: preset `base` with the values at those paths replaced."""
    v = PRESETS[base].model_dump(exclude_computed_fields=True)
    v["id"] = vehicle_id
    for path, value in changes.items():
        node = v
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return v


def resolved(vehicle: Any) -> Any:
    return StepEnvelope.model_validate({"vehicle": vehicle}).vehicle


# -- the presets round-trip ---------------------------------------------------------------------


@pytest.mark.parametrize("preset_id", IDS)
def test_the_listed_preset_object_is_accepted_and_is_that_preset(
    client: TestClient, preset_id: str
) -> None:
    listed = client.get("/vehicles/presets").json()[preset_id]
    assert {"capacity_ah", "nominal_voltage_v", "nominal_energy_kwh"} <= listed["pack"].keys()
    by_id, by_object = step(client, preset_id), step(client, listed)
    assert by_id.status_code == by_object.status_code == 200, by_object.text
    assert by_object.json()["telemetry"]["vehicle_model"] == preset_id
    assert physics(by_object.json()["telemetry"]) == physics(by_id.json()["telemetry"])
    assert by_object.json()["state"] == by_id.json()["state"]
    for body in ({"vehicle": listed}, {"vehicle": listed, "compare_models": True}):
        resp = client.post("/forecast", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json() == client.post("/forecast", json={**body, "vehicle": preset_id}).json()
    fleet = client.post("/forecast/fleet", json={"items": [{"vehicle": listed}] * 2})
    assert fleet.status_code == 200, fleet.text
    by_id_fleet = client.post("/forecast/fleet", json={"items": [{"vehicle": preset_id}] * 2})
    assert fleet.json() == by_id_fleet.json()


# -- a preset with overrides --------------------------------------------------------------------


@pytest.mark.parametrize("preset_id", IDS)
def test_a_base_without_overrides_is_the_preset_itself(preset_id: str) -> None:
    assert resolved({"base": preset_id}) is PRESETS[preset_id]
    assert resolved({"base": preset_id, "pack": {}, "id": preset_id}) is PRESETS[preset_id]
    same = PRESETS[preset_id].pack.cells_series
    assert resolved({"base": preset_id, "pack": {"cells_series": same}}) is PRESETS[preset_id]
    named = resolved({"base": preset_id, "name": "my car"})
    assert (named.id, named.name) == (preset_id, "my car")
    assert named.model_dump(exclude={"name"}) == PRESETS[preset_id].model_dump(exclude={"name"})


LOWER_OCV = [PRESETS["Model3_2024"].pack.ocv.v[0] - 0.05, *PRESETS["Model3_2024"].pack.ocv.v[1:]]
OVERRIDES: list[tuple[str, dict[str, Any], dict[tuple[str, ...], Any]]] = [
    ("sv1ev3", {"pack": {"cells_series": 100}}, {("pack", "cells_series"): 100}),
    (  # a list inside an object (ocv.v) replaces that list; the rest of the object stays
        "Model3_2024",
        {"pack": {"cell_capacity_ah": 150.0, "ocv": {"v": LOWER_OCV}, "charge_taper": None}},
        {
            ("pack", "cell_capacity_ah"): 150.0,
            ("pack", "ocv", "v"): LOWER_OCV,
            ("pack", "charge_taper"): None,
        },
    ),
    (
        "sv1ev3",
        {
            "drivetrain": {"efficiency_load": [0.0, 1.0], "efficiency_value": [0.8, 0.9]},
            "roadload": {"mass_kg": 2500.0, "cd": 0.35},
            "thermal_management": {"heat_below_c": 5.0, "max_cooling_kw": 3.0},
        },
        {
            ("drivetrain", "efficiency_load"): [0.0, 1.0],
            ("drivetrain", "efficiency_value"): [0.8, 0.9],
            ("roadload", "mass_kg"): 2500.0,
            ("roadload", "cd"): 0.35,
            ("thermal_management", "heat_below_c"): 5.0,
            ("thermal_management", "max_cooling_kw"): 3.0,
        },
    ),
    ("Model3_2024", {"thermal_management": None}, {("thermal_management",): None}),
]


@pytest.mark.parametrize(("base", "override", "changes"), OVERRIDES)
def test_an_override_replaces_only_the_fields_it_gives(
    client: TestClient, base: str, override: dict[str, Any], changes: dict[Any, Any]
) -> None:
    """The override steps exactly like the full vehicle written out by hand."""
    vehicle = resolved({"base": base, **override})
    match = DERIVED_ID.match(vehicle.id)
    assert match is not None and match["base"] == base, vehicle.id
    written = full_with(base, "by-hand", changes)
    expect = VehiclePreset.model_validate(written)
    assert vehicle.model_dump(exclude={"id", "sources"}) == expect.model_dump(
        exclude={"id", "sources"}
    )
    assert vehicle.sources.items() >= PRESETS[base].sources.items()
    by_override = step(client, {"base": base, **override})
    by_hand = step(client, written)
    assert by_override.status_code == by_hand.status_code == 200, by_override.text
    assert by_override.json()["telemetry"]["vehicle_model"] == vehicle.id
    assert physics(by_override.json()["telemetry"]) == physics(by_hand.json()["telemetry"])
    for body in ({"vehicle": {"base": base, **override}}, {"vehicle": written}):
        resp = client.post("/forecast", json=body)
        assert resp.status_code == 200, resp.text
    forecasts = [
        client.post("/forecast", json={"vehicle": v}).json()
        for v in ({"base": base, **override}, written)
    ]
    assert forecasts[0] == forecasts[1]


def test_the_derived_id_is_deterministic_and_names_the_numbers() -> None:
    one = resolved({"base": "sv1ev3", "pack": {"cells_series": 100}}).id
    assert resolved({"base": "sv1ev3", "pack": {"cells_series": 100.0}}).id == one
    assert resolved({"base": "sv1ev3", "pack": {"cells_series": 100}, "name": "x"}).id == one
    others = {
        resolved({"base": "sv1ev3", "pack": {"cells_series": 101}}).id,
        resolved({"base": "sv1ev3", "pack": {"cells_series": 100}, "roadload": {"cd": 0.3}}).id,
        resolved({"base": "Model3_2024", "pack": {"cells_series": 100}}).id,
    }
    assert one not in others and len(others) == 3
    # A large override (not remembered between requests) is named the same way.
    soc = [i / 999 for i in range(1000)]
    big = {"base": "sv1ev3", "pack": {"ocv": {"soc": soc, "v": [3.0 + 0.3 * x for x in soc]}}}
    first, second = resolved(big), resolved(big)
    assert first is not second and first.id == second.id and DERIVED_ID.match(first.id)
    assert (
        first.pack.ocv.soc == soc and first.pack.cells_series == PRESETS["sv1ev3"].pack.cells_series
    )
    # An id of its own is kept.
    own = resolved({"base": "sv1ev3", "pack": {"cells_series": 100}, "id": "my-ev3"})
    assert own.id == "my-ev3"


def test_no_request_can_give_a_derived_id(client: TestClient) -> None:
    derived = resolved({"base": "sv1ev3", "pack": {"cells_series": 100}}).id
    full = full_with("sv1ev3", derived, {("pack", "cells_series"): 100})
    resp = step(client, full)
    assert [loc for loc, _, _ in errors(resp)] == [["body", "vehicle", "id"]]
    resp = step(client, {"base": "sv1ev3", "id": derived, "pack": {"cells_series": 100}})
    assert [loc for loc, _, _ in errors(resp)] == [["body", "vehicle", "id"]]


@pytest.mark.parametrize(
    "vehicle",
    [
        {"base": "sv1ev3", "id": "sv1ev3", "pack": {"cells_series": 100}},
        {"base": "sv1ev3", "id": "Model3_2024"},
        full_with("sv1ev3", "sv1ev3", {("pack", "cells_series"): 100}),
    ],
)
def test_a_builtin_id_names_only_that_preset(client: TestClient, vehicle: dict[str, Any]) -> None:
    [(loc, msg, kind)] = errors(step(client, vehicle))
    assert (loc, kind) == (["body", "vehicle", "id"], "builtin_id")
    assert repr(vehicle["id"]) in msg and "built-in" in msg


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expect"),
    [
        (
            {"pack": {"cells_series": 5000}},
            [(["pack", "cells_series"], "less_than_equal")],
        ),
        (
            {"pack": {"cells_series": 0, "cell_capacity_ah": "big"}, "roadload": {"cd": 9}},
            [
                (["pack", "cells_series"], "greater_than_equal"),
                (["pack", "cell_capacity_ah"], "float_parsing"),
                (["roadload", "cd"], "less_than_equal"),
            ],
        ),
        ({"pack": {"cells": 100}}, [(["pack", "cells"], "extra_forbidden")]),
        ({"sources": {}}, [(["sources"], "extra_forbidden")]),
        ({"pack": None}, [(["pack"], "model_type")]),
        ({"pack": {"cells_series": None}}, [(["pack", "cells_series"], "int_type")]),
        ({"pack": {"ocv": {"v": [3.0, 3.1, 3.2]}}}, [(["pack", "ocv"], "value_error")]),
        ({"pack": {"cell_v_min": 3.7}}, [(["pack"], "value_error")]),  # above cell_v_max
        ({"pack": {"capacity_ah": 1.0}}, [(["pack"], "value_error")]),  # disagrees
        ({"thermal_management": {"gain_w_k": 1e6}}, [([], "value_error")]),  # too stiff
        ({"id": "a b"}, [(["id"], "string_pattern_mismatch")]),
        ({"name": ""}, [(["name"], "string_too_short")]),
    ],
)
def test_override_errors_name_the_request_fields(
    client: TestClient, override: dict[str, Any], expect: list[tuple[list[Any], str]]
) -> None:
    vehicle = {"base": "sv1ev3", **override}
    want = [(["body", "vehicle", *loc], kind) for loc, kind in expect]
    got = errors(step(client, vehicle))
    assert [(loc, kind) for loc, _, kind in got] == want, got
    resp = client.post("/forecast", json={"vehicle": vehicle})
    assert [(loc, kind) for loc, _, kind in errors(resp)] == want
    items = [{"vehicle": "sv1ev3"}, {"vehicle": vehicle}]
    resp = client.post("/forecast/fleet", json={"items": items})
    fleet_want = [(["body", "items", 1, "vehicle", *loc], kind) for loc, kind in expect]
    assert [(loc, kind) for loc, _, kind in errors(resp)] == fleet_want


def test_an_unknown_base_is_one_error_naming_the_presets(client: TestClient) -> None:
    vehicle = {"base": "tesla-roadster-1908", "pack": {"cells_series": 5000, "cells": 1}}
    for resp in (step(client, vehicle), client.post("/forecast", json={"vehicle": vehicle})):
        [(loc, msg, kind)] = errors(resp)
        assert (loc, kind) == (["body", "vehicle", "base"], "unknown_preset")
        assert "tesla-roadster-1908" in msg and all(p in msg for p in IDS)
    [(loc, _, kind)] = errors(step(client, {"base": 5}))
    assert (loc, kind) == (["body", "vehicle", "base"], "string_type")


@pytest.mark.parametrize(
    ("vehicle", "missing"),
    [
        ({"pack": {"cells_series": 100}}, "id, name, drivetrain, roadload"),
        ({}, "id, name, pack, drivetrain, roadload"),
        ({"id": "x", "name": "x", "pack": {}, "drivetrain": {}}, "roadload"),
    ],
)
def test_an_object_of_neither_form_is_one_error_saying_what_is_expected(
    client: TestClient, vehicle: dict[str, Any], missing: str
) -> None:
    want = (
        "an inline vehicle needs id, name, pack, drivetrain and roadload "
        f'(missing: {missing}), or {{"base": "<preset id>", …overrides}}'
    )
    for resp in (
        step(client, vehicle),
        step(client, vehicle, [GOOD] * 20),
        client.post("/forecast", json={"vehicle": vehicle}),
    ):
        assert errors(resp) == [(["body", "vehicle"], want, "vehicle_shape")]


@pytest.mark.parametrize("vehicle", [5, 1.5, True, [1], ["sv1ev3"]])
def test_a_vehicle_of_the_wrong_type_is_one_error(client: TestClient, vehicle: Any) -> None:
    for resp in (step(client, vehicle), client.post("/forecast", json={"vehicle": vehicle})):
        [(loc, msg, kind)] = errors(resp)
        assert (loc, kind) == (["body", "vehicle"], "vehicle_type")
        assert msg.startswith("Input should be a preset id (one of Model3_2024, sv1ev3)")
        assert "inline vehicle object" in msg and '"base"' in msg


def test_a_full_vehicle_still_names_each_bad_field(client: TestClient) -> None:
    v = full_with(
        "sv1ev3",
        "mine",
        {("pack", "cells_series"): 5000, ("roadload", "mass_kg"): 0.0, ("drivetrain", "x"): 1},
    )
    got = [(loc, kind) for loc, _, kind in errors(step(client, v))]
    assert got == [
        (["body", "vehicle", "pack", "cells_series"], "less_than_equal"),
        (["body", "vehicle", "drivetrain", "x"], "extra_forbidden"),
        (["body", "vehicle", "roadload", "mass_kg"], "greater_than_equal"),
    ]


def test_a_preset_id_is_still_resolved_per_request(client: TestClient) -> None:
    [(loc, msg, kind)] = errors(step(client, "tesla-roadster-1908"))
    assert (loc, kind) == (["body", "vehicle"], "unknown_preset")
    assert all(p in msg for p in IDS)
    assert ForecastItem.model_validate({"vehicle": "sv1ev3"}).vehicle == "sv1ev3"


# -- the OpenAPI schema ---------------------------------------------------------------------------


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


@pytest.mark.parametrize("request_model", ["StepRequest", "ForecastRequest", "ForecastItem"])
def test_the_schema_shows_the_three_forms_and_they_describe_what_is_accepted(
    client: TestClient, request_model: str
) -> None:
    doc = openapi_document()
    prop = doc["components"]["schemas"][request_model]["properties"]["vehicle"]
    [forms] = [s["oneOf"] for s in prop["anyOf"] if "oneOf" in s]
    assert forms[0]["type"] == "string" and forms[0]["enum"] == IDS
    assert forms[1]["$ref"].split("/")[-1].startswith("VehiclePreset")
    assert forms[2]["$ref"] == "#/components/schemas/VehicleOverride"
    check = _validator(doc, prop)
    listed = client.get("/vehicles/presets").json()
    accepted = [*IDS, *listed.values(), *({"base": b, **o} for b, o, _ in OVERRIDES)]
    for vehicle in accepted:
        assert check.is_valid(vehicle), vehicle
        assert resolved(vehicle) is not None
    refused = [5, [1], {"pack": {"cells_series": 100}}, {"base": "sv1ev3", "pack": {"x": 1}},
               {"base": "sv1ev3", "pack": {"cells_series": 5000}}, {"base": "nope"}]  # fmt: skip
    for vehicle in refused:
        assert not check.is_valid(vehicle), vehicle
        assert errors(client.post("/forecast", json={"vehicle": vehicle}))


# -- a real process -------------------------------------------------------------------------------


def test_inline_vehicles_in_a_real_service() -> None:
    """Over real HTTP, in a process with its own hash seed: the same derived id."""
    override = {"base": "sv1ev3", "pack": {"cells_series": 100}}
    derived = resolved(override).id
    with start_service() as url, httpx.Client(base_url=url, timeout=30.0) as http:
        listed = http.get("/vehicles/presets").json()
        for preset_id, vehicle in listed.items():
            resp = http.post("/step", json={"vehicle_id": f"rt-{preset_id}", "vehicle": vehicle,
                                            "samples": DRIVE})  # fmt: skip
            assert resp.status_code == 200, resp.text
            assert resp.json()["telemetry"]["vehicle_model"] == preset_id
        resp = http.post("/step", json={"vehicle_id": "ov", "vehicle": override, "samples": DRIVE})
        assert resp.status_code == 200, resp.text
        assert resp.json()["telemetry"]["vehicle_model"] == derived
        assert http.get("/vehicles/ov").json()["telemetry"]["vehicle_model"] == derived
        resp = http.post("/forecast", json={"vehicle": {"pack": {"cells_series": 100}}})
        assert resp.status_code == 422 and len(resp.json()["detail"]) == 1


def test_an_object_the_base_lacks_is_built_from_the_override_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over a base without thermal management the override's loop must be complete."""
    bare = PRESETS["sv1ev3"].model_copy(update={"id": "bare", "thermal_management": None})
    monkeypatch.setitem(PRESETS, "bare", bare)
    monkeypatch.setitem(inline._BASE_DUMPS, "bare", bare.model_dump(exclude_computed_fields=True))
    monkeypatch.setitem(inline._BASE_PHYSICS, "bare", inline._physics(bare))
    loop = PRESETS["sv1ev3"].thermal_management
    assert loop is not None
    try:
        with pytest.raises(ValidationError) as info:
            resolved({"base": "bare", "thermal_management": {"heat_below_c": 5.0}})
        missing = {e["loc"] for e in info.value.errors() if e["type"] == "missing"}
        required = [k for k, f in type(loop).model_fields.items() if f.is_required()]
        want = {("vehicle", "thermal_management", k) for k in required}
        assert missing == want - {("vehicle", "thermal_management", "heat_below_c")}
        full = resolved({"base": "bare", "thermal_management": loop.model_dump()})
        assert full.thermal_management == loop and DERIVED_ID.match(full.id)
        assert resolved({"base": "bare"}) is bare
    finally:
        inline._override_of.cache_clear()
