"""The typed Python client: request shapes and errors (scripted transport), then the real
service process."""

from __future__ import annotations

import json
import struct
from datetime import datetime, timedelta

import httpx
import msgpack
import pytest
from support.processes import ServiceProcess, free_port
from support.wire import request_body

from clients.python import (
    AsyncTwinClient,
    TwinAuthError,
    TwinClient,
    TwinConnectionError,
    TwinNotFound,
    TwinServerError,
    TwinValidationError,
    find_preset,
    preset_ids,
)

SAMPLE = {
    "dt_s": 1.0,
    "motors": [{"torque_nm": 100.0, "speed_rad_s": 300.0}],
    "wheel_speed_m_s": 10.0,
}


# -- scripted transport ----------------------------------------------------------------------


def _recording_client(status: int = 200, body: object = None, **kwargs: object):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body if body is not None else {})

    return TwinClient("http://twin.test/", transport=httpx.MockTransport(handler), **kwargs), seen


def _body(request: httpx.Request) -> object:
    return request_body(request, as_rows=False)


SAMPLE_COLUMNS = {
    "dt_s": [1.0],
    "motors": [{"torque_nm": [100.0], "speed_rad_s": [300.0]}],
    "wheel_speed_m_s": [10.0],
}


@pytest.mark.parametrize(
    ("batch_format", "content_type", "samples"),
    [
        ("msgpack", "application/msgpack", SAMPLE_COLUMNS),
        ("columns", "application/json", SAMPLE_COLUMNS),
        ("rows", "application/json", [SAMPLE]),
    ],
)
def test_step_body_and_write_key(batch_format: str, content_type: str, samples: object) -> None:
    client, seen = _recording_client(api_key="w", read_key="r", batch_format=batch_format)
    client.step(
        [SAMPLE],
        vehicle_id="ev-1",
        vehicle="Model3_2024",
        state={"soc": 0.5},
        options={"demo_mode": True},
    )
    client.presets()
    step, presets = seen
    assert step.method == "POST" and step.url.path == "/step"
    assert step.headers["authorization"] == "Bearer w"
    assert step.headers["content-type"] == content_type
    if batch_format == "msgpack":  # numbers as float64 bytes
        raw = msgpack.unpackb(step.content)["samples"]
        assert raw["dt_s"] == struct.pack("<d", 1.0)
        assert raw["motors"][0]["torque_nm"] == struct.pack("<d", 100.0)
    assert _body(step) == {
        "vehicle_id": "ev-1",
        "state": {"soc": 0.5},
        "samples": samples,
        "vehicle": "Model3_2024",
        "options": {"demo_mode": True},
    }
    assert presets.headers["authorization"] == "Bearer r"


def test_one_key_serves_reads_and_writes_and_no_key_sends_nothing() -> None:
    client, seen = _recording_client(api_key="k")
    client.health()
    assert seen[0].headers["authorization"] == "Bearer k"
    anonymous, seen = _recording_client()
    anonymous.step([SAMPLE])
    assert "authorization" not in seen[0].headers
    assert _body(seen[0])["state"] is None  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (401, TwinAuthError, False),
        (404, TwinNotFound, False),
        (422, TwinValidationError, False),
        (413, TwinValidationError, False),
        (500, TwinServerError, True),
        (503, TwinServerError, True),
    ],
)
def test_errors_carry_the_json_body(status: int, error: type, retryable: bool) -> None:
    body = {"detail": [{"loc": ["body", "samples", 2, "dt_s"], "msg": "bad"}]}
    client, _ = _recording_client(status, body)
    with pytest.raises(error) as caught:
        client.step([SAMPLE])
    assert caught.value.status_code == status
    assert caught.value.body == body and caught.value.detail == body["detail"]
    assert caught.value.retryable is retryable
    assert "samples" in str(caught.value)


def test_unreachable_service_is_a_connection_error() -> None:
    with TwinClient(f"http://127.0.0.1:{free_port()}", timeout_s=2.0) as client:
        with pytest.raises(TwinConnectionError):
            client.health()


def test_find_preset_accepts_mapping_list_and_wrapped() -> None:
    preset = {"id": "ev", "roadload": {"mass_kg": 1}}
    assert find_preset({"ev": {"roadload": {"mass_kg": 1}}}, "ev") == preset
    assert find_preset([preset], "ev") == preset
    assert find_preset({"presets": [preset]}, "ev") == preset
    with pytest.raises(KeyError):
        find_preset([preset], "other")


def test_preset_ids_read_the_same_shapes() -> None:
    preset = {"id": "ev", "name": "EV", "roadload": {"mass_kg": 1}}
    assert preset_ids({"ev": {"roadload": {"mass_kg": 1}}, "ev2": {}}) == ["ev", "ev2"]
    assert preset_ids([preset, {"name": "no id"}]) == ["ev"]
    assert preset_ids({"presets": [preset]}) == preset_ids({"items": {"ev": preset}}) == ["ev"]
    assert preset_ids("ev") == []


def test_forecast_needs_state_or_vehicle_id() -> None:
    client, seen = _recording_client()
    with pytest.raises(ValueError):
        client.forecast()
    client.forecast(vehicle_id="ev-1", usage={"daily_km": 40}, years=5)
    assert json.loads(seen[0].content) == {
        "vehicle_id": "ev-1",
        "usage": {"daily_km": 40},
        "years": 5,
    }


def test_websocket_urls() -> None:
    assert TwinClient("http://h:1").ws_url("ev 1") == "ws://h:1/ws/vehicles/ev%201"
    assert TwinClient("https://h/").ws_url() == "wss://h/ws/fleet"


# -- the real service --------------------------------------------------------------------


def test_step_then_read_back(twin: ServiceProcess) -> None:
    with TwinClient(twin.url) as client:
        assert client.health()
        first = client.step([SAMPLE] * 10, vehicle_id="client-1", vehicle="Model3_2024")
        assert first["vehicle_id"] == "client-1"
        second = client.step(
            [SAMPLE] * 10, vehicle_id="client-1", vehicle="Model3_2024", state=first["state"]
        )
        assert second["rev"] == first["rev"] + 1
        assert second["state"]["elapsed_s"] == pytest.approx(20.0)
        assert second["state"]["soc"] < first["state"]["soc"]
        latest = client.vehicle("client-1")
        assert latest["rev"] == second["rev"] and latest["state"] == second["state"]
        history = client.history("client-1", limit=10)
        assert history[-1]["soc"] == pytest.approx(second["telemetry"]["soc"])
        assert client.vehicle("client-1", rev=first["rev"])["state"] == first["state"]
        at = datetime.fromisoformat(first["telemetry"]["timestamp"])
        assert client.vehicle("client-1", at=at)["rev"] >= first["rev"]
        since = at - timedelta(hours=1)
        ranged = client.history("client-1", since=since, until=since + timedelta(days=1))
        assert ranged[-1]["rev"] == second["rev"]
        buckets = client.history("client-1", since=since, every=60)
        assert sum(b["count"] for b in buckets) == len(ranged)
        assert buckets[-1]["rev"] == second["rev"]
        known = client.vehicles()
        ids = [t["vehicle_id"] for t in (known.values() if isinstance(known, dict) else known)]
        assert "client-1" in ids
        assert client.preset("Model3_2024")["roadload"]["mass_kg"] == 1752.0


@pytest.mark.parametrize(
    ("batch_format", "loc"),
    [
        ("msgpack", ["body", "samples", "dt_s", 1]),  # columns: the field, then the index
        ("columns", ["body", "samples", "dt_s", 1]),
        ("rows", ["body", "samples", 1, "dt_s"]),
    ],
)
def test_service_errors_name_field_and_index(
    twin: ServiceProcess, batch_format: str, loc: list[object]
) -> None:
    with TwinClient(twin.url, batch_format=batch_format) as client:
        bad = [SAMPLE, {**SAMPLE, "dt_s": -1.0}]
        with pytest.raises(TwinValidationError) as caught:
            client.step(bad, vehicle_id="client-bad")
        assert caught.value.status_code == 422
        assert [e["loc"] for e in caught.value.detail] == [loc]
        with pytest.raises(TwinNotFound):
            client.vehicle("never-stepped")


async def test_async_client(twin: ServiceProcess) -> None:
    async with AsyncTwinClient(twin.url) as client:
        reply = await client.step([SAMPLE] * 5, vehicle_id="client-async")
        assert reply["state"]["elapsed_s"] == pytest.approx(5.0)
        assert (await client.vehicle("client-async"))["rev"] == reply["rev"]
        assert "Model3_2024" in json.dumps(await client.presets())
        with pytest.raises(TwinValidationError):
            await client.step([{"dt_s": 1.0}])


def test_recent_asks_for_the_latest_updated_vehicles() -> None:
    client, seen = _recording_client(body=[])
    assert client.recent(3) == []
    (request,) = seen
    assert request.url.path == "/vehicles"
    assert dict(request.url.params) == {"order": "recent", "limit": "3"}
