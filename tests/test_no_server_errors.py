"""Inputs that once gave a 500: each now gets a 4xx naming the field, and nothing is stored."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.presets import PRESETS
from twin_service.schemas import FleetForecastResponse, PackStateWire
from twin_service.settings import Settings

GOOD = {"dt_s": 1.0, "power_kw": 10.0}
_ids = iter(range(1_000_000))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as c:
        yield c


def new_id() -> str:
    return f"nse-{next(_ids)}"


def inline(base: str = "sv1ev3", vehicle_id: str = "inline-nse") -> dict[str, Any]:
    v = PRESETS[base].model_dump(exclude_computed_fields=True)
    v["id"] = vehicle_id
    return v


def rejected(
    client: TestClient, resp: Any, status: int, loc_prefix: list[Any], vehicle_id: str | None
) -> dict[str, Any]:
    """The response is `status` with an error located at `loc_prefix`, and (for a /step of
    `vehicle_id`) the store holds nothing for it."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    locs = [item["loc"] for item in body["detail"]]
    assert any(loc[: len(loc_prefix)] == loc_prefix for loc in locs), locs
    if vehicle_id is not None:
        assert client.get(f"/vehicles/{vehicle_id}").status_code == 404
    return body


def post_step(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/step", json=body)


def test_json_nested_deeper_than_the_parser_takes_gets_a_422(client: TestClient) -> None:
    vid = new_id()
    deep = b"[" * 1025 + b"]" * 1025
    body = b'{"vehicle_id": "' + vid.encode() + b'", "samples": ' + deep + b"}"
    resp = client.post("/step", content=body, headers={"content-type": "application/json"})
    detail = rejected(client, resp, 422, ["body"], vid)["detail"]
    assert detail[0]["type"] == "json_too_deep" and "1024" in detail[0]["msg"]
    # Non-standard literals take the recursive fallback parser: the same answer.
    body = b'{"vehicle_id": "' + vid.encode() + b'", "x": NaN, "samples": ' + deep + b"}"
    resp = client.post("/step", content=body, headers={"content-type": "application/json"})
    assert rejected(client, resp, 422, ["body"], vid)["detail"][0]["type"] == "json_too_deep"


@pytest.mark.parametrize("path", ["/forecast", "/forecast/fleet"])
def test_deep_json_to_the_forecasts_gets_a_422(client: TestClient, path: str) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    body = b'{"items": [{"usage": ' + deep + b"}]}"
    resp = client.post(path, content=body, headers={"content-type": "application/json"})
    assert rejected(client, resp, 422, ["body"], None)["detail"][0]["type"] == "json_too_deep"


def test_a_recursion_error_is_a_422_not_a_500() -> None:
    """The app's last resort, should any other parser recurse as deep as the stack goes."""
    app = create_app(Settings())

    def recurse(depth: int = 0) -> int:
        return recurse(depth + 1)

    app.add_api_route("/recurse", recurse)
    with TestClient(app, raise_server_exceptions=False) as c:
        resp = c.get("/recurse")
    assert resp.status_code == 422 and resp.json()["detail"][0]["type"] == "json_too_deep"


def test_inline_activation_energy_beyond_its_bound(client: TestClient) -> None:
    vid, v = new_id(), inline()
    v["pack"]["activation_energy_j_mol"] = 1e308
    resp = post_step(client, {"vehicle_id": vid, "vehicle": v, "samples": [GOOD]})
    rejected(client, resp, 422, ["body", "vehicle", "pack", "activation_energy_j_mol"], vid)


@pytest.mark.parametrize("n_samples", [1, 16, 17])
def test_zero_drivetrain_efficiency_with_motors(client: TestClient, n_samples: int) -> None:
    """Both sample paths (plain Python up to 16 samples, columns beyond)."""
    vid, v = new_id(), inline()
    v["drivetrain"]["efficiency_load"] = [0.0, 1.0]
    v["drivetrain"]["efficiency_value"] = [0.0, 0.0]
    sample = {"dt_s": 1.0, "motors": [{"torque_nm": 100.0, "speed_rad_s": 300.0}]}
    resp = post_step(client, {"vehicle_id": vid, "vehicle": v, "samples": [sample] * n_samples})
    rejected(client, resp, 422, ["body", "vehicle", "drivetrain", "efficiency_value"], vid)


@pytest.mark.parametrize("name", ["%00.js", "a%00b.css", "x" * 5000 + ".js"])
def test_static_names_the_file_system_cannot_take_are_404(client: TestClient, name: str) -> None:
    rejected(client, client.get(f"/static/{name}"), 404, ["path", "name"], None)


def test_a_subnormal_dt_with_a_large_current(client: TestClient) -> None:
    vid = new_id()
    samples = [GOOD, {"dt_s": 5e-324, "current_a": 99999.0}]
    for batch in (samples, samples * 10):  # the small and the column path
        resp = post_step(client, {"vehicle_id": vid, "samples": batch})
        rejected(client, resp, 422, ["body", "samples", 1, "dt_s"], vid)


def test_fleet_forecast_of_a_tiny_pack_conforms_to_its_schema(client: TestClient) -> None:
    """A 0.32 Wh pack: its nominal energy once rounded to 0 kWh and the forecast gave null."""
    v = inline()
    v["pack"].update(cells_series=1, cell_capacity_ah=0.1)
    usage = {"daily_km": 2000, "wh_per_km": 2000, "charge_c_rate": 5, "dc_fast_share": 1}
    resp = client.post(
        "/forecast/fleet",
        json={"items": [{"vehicle": v, "usage": usage}], "include_points": True},
    )
    assert resp.status_code == 200, resp.text
    result = FleetForecastResponse.model_validate(resp.json()).results[0]
    assert result.points is not None
    numbers = [result.soh_in_2_years, result.fade_pct_per_year]
    numbers += [x for p in result.points for x in (p.soh, p.resistance_factor)]
    assert all(isinstance(x, float) and math.isfinite(x) for x in numbers)


@pytest.mark.parametrize("version", [True, 3.0, 1.0, "3"])
def test_schema_version_must_be_the_integer(client: TestClient, version: Any) -> None:
    vid = new_id()
    ok = post_step(client, {"vehicle_id": new_id(), "samples": [GOOD]})
    state = ok.json()["state"]
    state.pop("rev", None)
    with pytest.raises(ValueError, match="schema_version"):
        PackStateWire.model_validate({**state, "schema_version": version})
    resp = post_step(
        client,
        {"vehicle_id": vid, "state": {**state, "schema_version": version}, "samples": [GOOD]},
    )
    rejected(client, resp, 422, ["body", "state", "schema_version"], vid)


def test_state_numbers_are_numbers(client: TestClient) -> None:
    state = post_step(client, {"vehicle_id": new_id(), "samples": [GOOD]}).json()["state"]
    state.pop("rev", None)
    for path in (["soc"], ["aging", "naumann", "half_cycle", "direction"]):
        bad = copy.deepcopy(state)
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = True
        with pytest.raises(ValueError, match=path[-1]):
            PackStateWire.model_validate(bad)
    resp = post_step(client, {"vehicle_id": new_id(), "state": {"soc": True}, "samples": [GOOD]})
    rejected(client, resp, 422, ["body", "state", "soc"], None)


def test_an_inline_vehicle_may_not_take_a_builtin_id(client: TestClient) -> None:
    vid, v = new_id(), inline(vehicle_id="sv1ev3")
    v["pack"]["cell_capacity_ah"] = 10.0
    resp = post_step(client, {"vehicle_id": vid, "vehicle": v, "samples": [GOOD]})
    body = rejected(client, resp, 422, ["body", "vehicle"], vid)
    assert "built-in" in body["detail"][0]["msg"] and "sv1ev3" in body["detail"][0]["msg"]
    # The exact object GET /vehicles/presets returns (computed fields included) is accepted.
    exact = client.get("/vehicles/presets").json()["sv1ev3"]
    resp = post_step(client, {"vehicle_id": vid, "vehicle": exact, "samples": [GOOD]})
    assert resp.status_code == 200, resp.text
    # A computed field that disagrees is named.
    exact["pack"]["capacity_ah"] = 1.0
    resp = post_step(client, {"vehicle_id": new_id(), "vehicle": exact, "samples": [GOOD]})
    assert (
        "capacity_ah" in rejected(client, resp, 422, ["body", "vehicle"], None)["detail"][0]["msg"]
    )


@pytest.mark.parametrize(
    ("path", "value", "loc_tail"),
    [
        (("pack", "cell_v_min"), 3.7, ["pack"]),  # above cell_v_max
        (("drivetrain", "efficiency_value", 0), 50.0, ["drivetrain", "efficiency_value", 0]),
        (("drivetrain", "efficiency_value", 0), -1.0, ["drivetrain", "efficiency_value", 0]),
        (("drivetrain", "transmission_efficiency"), 1.5, ["drivetrain", "transmission_efficiency"]),
        (("drivetrain", "efficiency_load"), [0.0, 0.5, 1.0], ["drivetrain"]),  # 3 vs 11 values
        (("drivetrain", "efficiency_load"), [1.0, 0.5], ["drivetrain"]),  # descending
        (("pack", "ocv", "v"), [3.3, 3.2], ["pack", "ocv"]),  # OCV falling with SOC
        (("pack", "cells_series"), 5000, ["pack", "cells_series"]),
        (("pack", "cell_capacity_ah"), 1e-9, ["pack", "cell_capacity_ah"]),
        (("roadload", "mass_kg"), 1e9, ["roadload", "mass_kg"]),
    ],
)
def test_inconsistent_or_unphysical_inline_vehicles(
    client: TestClient, path: tuple[Any, ...], value: Any, loc_tail: list[Any]
) -> None:
    vid, v = new_id(), inline()
    if path[-1] == "efficiency_load" and value == [1.0, 0.5]:
        v["drivetrain"]["efficiency_value"] = [0.9, 0.9]
    if path[:2] == ("pack", "ocv"):
        v["pack"]["ocv"] = {"soc": [0.0, 1.0], "v": [3.2, 3.3]}
    node: Any = v
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    resp = post_step(client, {"vehicle_id": vid, "vehicle": v, "samples": [GOOD]})
    body = rejected(client, resp, 422, ["body", "vehicle", *loc_tail], vid)
    named = str(path[-1]) if not isinstance(path[-1], int) else str(path[-2])
    assert any(named in str(item["loc"]) + item["msg"] for item in body["detail"]), body


@pytest.mark.parametrize("vehicle_id", [".", "..", "...", "ev\n"])
def test_vehicle_ids_of_dots_only_are_rejected(client: TestClient, vehicle_id: str) -> None:
    resp = post_step(client, {"vehicle_id": vehicle_id, "samples": [GOOD]})
    rejected(client, resp, 422, ["body", "vehicle_id"], None)
    resp = post_step(
        client, {"vehicle_id": vehicle_id, "samples": [GOOD], "options": {"trace": False}}
    )
    rejected(client, resp, 422, ["body", "vehicle_id"], None)
    v = inline(vehicle_id=vehicle_id)
    resp = post_step(client, {"vehicle_id": new_id(), "vehicle": v, "samples": [GOOD]})
    rejected(client, resp, 422, ["body", "vehicle", "id"], None)


def test_dot_ids_in_paths_are_rejected(client: TestClient) -> None:
    # %2E is not collapsed by the client or the router: the id pattern refuses it.
    assert client.get("/vehicles/%2E%2E%2E").status_code == 422
