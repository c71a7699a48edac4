"""A step's batch reaches the vehicle's live feed as a downsampled trace, so live charts draw
the whole drive and not one point per request; the fleet feed, snapshots and history stay
telemetry only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.settings import Settings

POINTS = 50


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(live_trace_points=POINTS))) as c:
        yield c


def post(client: TestClient, vehicle_id: str, samples: list[dict], trace: bool = False) -> dict:
    body = {"vehicle_id": vehicle_id, "state": None, "samples": samples,
            "options": {"replace": True, "trace": trace}}  # fmt: skip
    resp = client.post("/step", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_the_vehicle_feed_carries_the_batch_and_the_fleet_feed_does_not(
    client: TestClient,
) -> None:
    samples = [{"dt_s": 1.0, "power_kw": 10.0 + (k % 30)} for k in range(1000)]
    with (
        client.websocket_connect("/ws/vehicles/lt-1") as vehicle_ws,
        client.websocket_connect("/ws/fleet") as fleet_ws,
    ):
        reply = post(client, "lt-1", samples, trace=True)
        message = vehicle_ws.receive_json()
        fleet = fleet_ws.receive_json()
    trace = message["trace"]
    assert set(trace) == {"elapsed_s", "soc", "soh", "voltage", "current", "power_kw",
                          "temperature"}  # fmt: skip
    assert len({len(column) for column in trace.values()}) == 1
    assert len(trace["elapsed_s"]) == POINTS
    full = reply["trace"]  # every sample
    assert trace["elapsed_s"][0] == pytest.approx(full[0]["t_s"])
    assert trace["elapsed_s"] == sorted(trace["elapsed_s"])
    telemetry = message["telemetry"]
    assert trace["elapsed_s"][-1] == pytest.approx(telemetry["elapsed_seconds"])
    assert trace["soc"][-1] == pytest.approx(telemetry["soc"], abs=1e-4)
    assert trace["power_kw"][-1] == pytest.approx(telemetry["power_kw"], abs=1e-3)
    # Sample k of the full trace is the point whose time it has.
    by_time = {round(r["t_s"], 3): r for r in full}
    for t, soc, power in zip(trace["elapsed_s"], trace["soc"], trace["power_kw"], strict=True):
        row = by_time[round(t, 3)]
        assert soc == pytest.approx(row["soc"] * 100, abs=1e-4)
        assert power == pytest.approx(row["power_kw"], abs=1e-3)
    assert "trace" not in fleet and fleet["telemetry"] == telemetry
    assert "trace" not in client.get("/vehicles/lt-1").json()["telemetry"]
    assert all("trace" not in r for r in client.get("/vehicles/lt-1/history").json())


def test_a_single_sample_step_publishes_telemetry_only(client: TestClient) -> None:
    with client.websocket_connect("/ws/vehicles/lt-2") as ws:
        post(client, "lt-2", [{"dt_s": 1.0, "power_kw": 5.0}])
        message = ws.receive_json()
    assert message["type"] == "state" and "trace" not in message


def test_short_batches_send_every_sample(client: TestClient) -> None:
    with client.websocket_connect("/ws/vehicles/lt-3") as ws:
        post(client, "lt-3", [{"dt_s": 0.5, "power_kw": 5.0}] * 7)
        message = ws.receive_json()
    assert message["trace"]["elapsed_s"] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
