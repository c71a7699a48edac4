"""Bad input to POST /step: a 4xx JSON error naming the field, nothing stored, no 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.settings import Settings

GOOD = {"dt_s": 1.0, "power_kw": 10.0}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(max_samples_per_request=1000, max_body_bytes=200_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def post_raw(client: TestClient, body: bytes) -> Any:
    return client.post("/step", content=body, headers={"content-type": "application/json"})


def assert_error(resp: Any, status: int, loc_prefix: list[Any]) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    locs = [item["loc"] for item in body["detail"]]
    assert any(loc[: len(loc_prefix)] == loc_prefix for loc in locs), locs
    assert all(item["msg"] for item in body["detail"])
    return body


@pytest.mark.parametrize(
    ("sample", "loc"),
    [
        ({"dt_s": -1.0, "power_kw": 1.0}, ["body", "samples", 1, "dt_s"]),
        ({"dt_s": 0.0, "power_kw": 1.0}, ["body", "samples", 1, "dt_s"]),
        ({"dt_s": 86400.5, "power_kw": 1.0}, ["body", "samples", 1, "dt_s"]),
        ({"dt_s": "1", "power_kw": 1.0}, ["body", "samples", 1, "dt_s"]),
        ({"power_kw": 1.0}, ["body", "samples", 1, "dt_s"]),
        ({"dt_s": 1.0}, ["body", "samples", 1]),
        ({"dt_s": 1.0, "power_kw": 1.0, "current_a": 2.0}, ["body", "samples", 1]),
        ({"dt_s": 1.0, "motors": [], "power_kw": 1.0}, ["body", "samples", 1]),
        ({"dt_s": 1.0, "motors": [{"torque_nm": 1.0}]}, ["body", "samples", 1, "motors", 0]),
        ({"dt_s": 1.0, "motors": "fast"}, ["body", "samples", 1, "motors"]),
        ({"dt_s": 1.0, "power_kw": 1.0, "throttle": 2.0}, ["body", "samples", 1, "throttle"]),
        ({"dt_s": 1.0, "power_kw": 1.0, "ambient_c": 500.0}, ["body", "samples", 1, "ambient_c"]),
        ({"dt_s": 1.0, "power_kw": 1.0, "charging": "yes"}, ["body", "samples", 1, "charging"]),
        ({"dt_s": 1.0, "current_a": 1.0, "aux_kw": 1.0}, ["body", "samples", 1, "aux_kw"]),
        ({"dt_s": 1.0, "power_kw": 1.0, "speed": 3.0}, ["body", "samples", 1, "speed"]),
        ({"dt_s": 1.0, "power_kw": True}, ["body", "samples", 1, "power_kw"]),
    ],
)
def test_bad_sample_names_field_and_index(
    client: TestClient, sample: dict[str, Any], loc: list[Any]
) -> None:
    resp = client.post("/step", json={"vehicle_id": "bad", "samples": [GOOD, sample]})
    assert_error(resp, 422, loc)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_rejected(client: TestClient, literal: str) -> None:
    body = (
        f'{{"samples": [{{"dt_s": 1.0, "power_kw": 1.0}}, {{"dt_s": 1.0, "power_kw": {literal}}}]}}'
    )
    assert_error(post_raw(client, body.encode()), 422, ["body", "samples", 1, "power_kw"])


def test_non_finite_motor_torque(client: TestClient) -> None:
    body = b'{"samples": [{"dt_s": 1.0, "motors": [{"torque_nm": NaN, "speed_rad_s": 1.0}]}]}'
    assert_error(post_raw(client, body), 422, ["body", "samples", 0, "motors", 0, "torque_nm"])


@pytest.mark.parametrize(
    ("state", "loc"),
    [
        ({"soc": 1.5}, ["body", "state", "soc"]),
        ({"soc": -0.1}, ["body", "state", "soc"]),
        ({"soc": 0.5, "colour": "red"}, ["body", "state", "colour"]),
        ({"schema_version": 99, "soc": 0.5}, ["body", "state", "schema_version"]),
    ],
)
def test_bad_state(client: TestClient, state: dict[str, Any], loc: list[Any]) -> None:
    resp = client.post("/step", json={"vehicle_id": "bad", "state": state, "samples": [GOOD]})
    assert_error(resp, 422, loc)


def test_full_state_out_of_range(client: TestClient) -> None:
    ok = client.post("/step", json={"vehicle_id": "full", "samples": [GOOD]})
    state = ok.json()["state"]
    state["soc"] = 1.2
    resp = client.post("/step", json={"vehicle_id": "full", "state": state, "samples": [GOOD]})
    assert_error(resp, 422, ["body", "state", "soc"])
    state["soc"] = 0.5
    del state["aging"]
    resp = client.post("/step", json={"vehicle_id": "full", "state": state, "samples": [GOOD]})
    assert_error(resp, 422, ["body", "state", "aging"])


def test_unknown_preset_and_aging_model(client: TestClient) -> None:
    resp = client.post("/step", json={"vehicle": "tesla-roadster-1908", "samples": [GOOD]})
    body = assert_error(resp, 422, ["body", "vehicle"])
    assert "sv1ev3" in body["detail"][0]["msg"]
    resp = client.post("/step", json={"samples": [GOOD], "options": {"aging_model": "magic"}})
    assert_error(resp, 422, ["body", "options", "aging_model"])
    resp = client.post("/step", json={"samples": [GOOD], "options": {"time_multiplier": 0}})
    assert_error(resp, 422, ["body", "options", "time_multiplier"])


def test_bad_envelope(client: TestClient) -> None:
    assert_error(
        client.post("/step", json={"vehicle_id": "a b", "samples": [GOOD]}),
        422,
        ["body", "vehicle_id"],
    )
    assert_error(client.post("/step", json={"samples": []}), 422, ["body", "samples"])
    assert_error(client.post("/step", json={"samples": 5}), 422, ["body", "samples"])
    assert_error(client.post("/step", json={}), 422, ["body", "samples"])
    assert_error(client.post("/step", json=[GOOD]), 422, ["body"])
    assert_error(client.post("/step", json={"samples": [GOOD], "extra": 1}), 422, ["body", "extra"])


def test_malformed_json(client: TestClient) -> None:
    assert_error(post_raw(client, b'{"samples": [{"dt_s": 1.0,'), 422, ["body"])
    assert_error(post_raw(client, b"\xff\xfe"), 422, ["body"])


def test_too_many_samples(client: TestClient) -> None:
    resp = client.post("/step", json={"samples": [GOOD] * 1001})
    body = assert_error(resp, 413, ["body", "samples"])
    assert "1000" in body["detail"][0]["msg"]


def test_oversized_body(client: TestClient) -> None:
    body = json.dumps({"samples": [GOOD] * 900, "pad": "x" * 250_000}).encode()
    assert_error(post_raw(client, body), 413, ["body"])


def test_integration_too_long(client: TestClient) -> None:
    samples = [{"dt_s": 86400.0, "power_kw": 0.001}] * 600  # 8640 sub-steps each
    assert_error(client.post("/step", json={"samples": samples}), 422, ["body", "samples"])


def test_rejected_requests_leave_nothing_behind(client: TestClient) -> None:
    bad = {"vehicle_id": "ghost", "samples": [GOOD, {"dt_s": -1, "power_kw": 1}]}
    assert client.post("/step", json=bad).status_code == 422
    live = client.app.state.live  # type: ignore[attr-defined]
    assert client.portal.call(live.snapshot, "ghost") is None  # type: ignore[union-attr]
    ok = client.post("/step", json={"vehicle_id": "ghost", "samples": [GOOD]})
    assert ok.status_code == 200 and ok.json()["rev"] == 1
