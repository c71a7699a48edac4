"""The in-process hub and store through the HTTP and WebSocket API (TestClient, no processes),
plus the building blocks: bounded history, per-client queues, metrics text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from twin_service.app import create_app
from twin_service.live import Live, create_live
from twin_service.live.fanout import Fanout, KickReason, Message
from twin_service.live.history import BoundedHistory
from twin_service.metrics import Metrics
from twin_service.settings import Settings

SAMPLE = {"dt_s": 1.0, "power_kw": 20.0}


def step(client: TestClient, vehicle_id: str, state: dict[str, Any] | None = None) -> dict:
    """One sample; a new pack (`state` None) replaces whatever twin the store holds."""
    options = {"replace": state is None}
    resp = client.post(
        "/step",
        json={"vehicle_id": vehicle_id, "state": state, "samples": [SAMPLE], "options": options},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(history_recent=20, history_tail=10, ws_queue_size=64)
    with TestClient(create_app(settings)) as c:
        yield c


def test_revs_are_contiguous_and_the_snapshot_is_the_last_step(client: TestClient) -> None:
    state = None
    for expected in (1, 2, 3):
        out = step(client, "mem-a", state)
        state = out["state"]
        assert out["rev"] == expected == out["telemetry"]["rev"]
    snapshot = client.get("/vehicles/mem-a").json()
    assert snapshot == out


def test_vehicles_lists_latest_telemetry_of_each(client: TestClient) -> None:
    step(client, "mem-list-2")
    last = step(client, "mem-list-1")
    listed = {t["vehicle_id"]: t for t in client.get("/vehicles").json()}
    assert listed["mem-list-1"] == last["telemetry"]
    assert listed["mem-list-2"]["rev"] == 1
    ids = [t["vehicle_id"] for t in client.get("/vehicles").json()]
    assert ids == sorted(ids)


def test_unknown_vehicle_is_404_json(client: TestClient) -> None:
    for path in ("/vehicles/nobody", "/vehicles/nobody/history"):
        resp = client.get(path)
        assert resp.status_code == 404
        assert resp.json()["detail"][0]["loc"] == ["path", "vehicle_id"]


@pytest.mark.parametrize("bad", ["bad!id", "a" * 65, "sp%20ace", "%C3%A9"])
def test_invalid_vehicle_id_is_422(client: TestClient, bad: str) -> None:
    for path in (f"/vehicles/{bad}", f"/vehicles/{bad}/history"):
        resp = client.get(path)
        assert resp.status_code == 422, (path, resp.text)
        assert resp.json()["detail"][0]["loc"][:2] == ["path", "vehicle_id"]


def test_presets_route_still_wins_over_vehicle_ids(client: TestClient) -> None:
    presets = client.get("/vehicles/presets").json()
    assert "sv1ev3" in presets


def test_history_is_oldest_first_bounded_and_limited(client: TestClient) -> None:
    for _ in range(100):
        step(client, "mem-hist")
    full = client.get("/vehicles/mem-hist/history?limit=1000").json()
    revs = [t["rev"] for t in full]
    assert revs == sorted(revs) and len(revs) <= 30
    assert revs[-20:] == list(range(81, 101))  # the recent window at full resolution
    assert revs[0] == 1  # the downsampled tail reaches back to the start
    assert [t["rev"] for t in client.get("/vehicles/mem-hist/history?limit=5").json()] == [
        96,
        97,
        98,
        99,
        100,
    ]
    assert client.get("/vehicles/mem-hist/history?limit=0").status_code == 422


def test_bounded_history_scheme() -> None:
    history = BoundedHistory(recent=50, tail=20)
    for i in range(100_000):
        history.append({"i": i})
        assert len(history) <= 70
    points = [p["i"] for p in history.latest(10_000)]
    assert points[-50:] == list(range(99_950, 100_000))
    tail = points[:-50]
    assert tail[0] == 0 and len(tail) <= 20
    spacing = {b - a for a, b in zip(tail, tail[1:], strict=False)}
    assert spacing == {history.stride}  # evenly spaced over the whole past


async def test_memory_history_bound_after_many_thousands_of_steps() -> None:
    live = create_live(Settings(history_recent=100, history_tail=50))
    for i in range(20_000):
        assert await live.commit("many", {"soc": 0.5}, {"vehicle_id": "many", "i": i}) == i + 1
    history = await live.history("many", 10_000)
    assert len(history) <= 150
    assert [t["rev"] for t in history] == sorted(t["rev"] for t in history)
    assert history[-1]["rev"] == 20_000


def test_websocket_snapshot_then_states_in_order(client: TestClient) -> None:
    step(client, "mem-ws")
    step(client, "mem-ws")
    with client.websocket_connect("/ws/vehicles/mem-ws") as ws:
        first = ws.receive_json()
        assert first["type"] == "snapshot" and first["rev"] == 2
        assert first["telemetry"]["vehicle_id"] == "mem-ws"
        for _ in range(5):
            step(client, "mem-ws")
        states = [ws.receive_json() for _ in range(5)]
    assert [m["type"] for m in states] == ["state"] * 5
    assert [m["rev"] for m in states] == [3, 4, 5, 6, 7]


def test_websocket_unknown_vehicle_gets_states_from_rev_1(client: TestClient) -> None:
    with client.websocket_connect("/ws/vehicles/mem-new") as ws:
        step(client, "mem-new")
        msg = ws.receive_json()
    assert (msg["type"], msg["rev"]) == ("state", 1)


def test_fleet_feed_snapshots_every_vehicle_then_every_state(client: TestClient) -> None:
    step(client, "mem-fleet-1")
    known = {t["vehicle_id"]: t["rev"] for t in client.get("/vehicles").json()}
    with client.websocket_connect("/ws/fleet") as ws:
        snaps = [ws.receive_json() for _ in known]
        assert {m["vehicle_id"]: m["rev"] for m in snaps} == known
        assert {m["type"] for m in snaps} == {"snapshot"}
        step(client, "mem-fleet-2")
        step(client, "mem-fleet-1")
        got = [(m["vehicle_id"], m["rev"]) for m in (ws.receive_json(), ws.receive_json())]
    assert got == [("mem-fleet-2", 1), ("mem-fleet-1", known["mem-fleet-1"] + 1)]


@pytest.mark.parametrize("bad", ["bad!id", "a" * 65])
def test_websocket_invalid_vehicle_id_closes_1008(client: TestClient, bad: str) -> None:
    with client.websocket_connect(f"/ws/vehicles/{bad}") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008


def test_websocket_disconnect_is_cleaned_up(client: TestClient) -> None:
    live: Live = client.app.state.live  # type: ignore[attr-defined]
    with client.websocket_connect("/ws/vehicles/mem-gone"), client.websocket_connect("/ws/fleet"):
        wait_until(lambda: len(live.fanout) == 2)
    wait_until(lambda: len(live.fanout) == 0)
    text = client.get("/metrics").text
    assert 'twin_websocket_clients{feed="vehicle"} 0' in text
    assert 'twin_websocket_clients{feed="fleet"} 0' in text


def test_metrics_and_ready(client: TestClient) -> None:
    step(client, "mem-metrics")
    client.post("/step", json={"vehicle_id": "mem-metrics", "samples": []})
    text = client.get("/metrics").text
    for name in (
        "twin_steps_total",
        "twin_samples_total",
        "twin_step_duration_seconds_bucket",
        "twin_step_duration_seconds_count",
        "twin_websocket_clients",
        "twin_websocket_dropped_messages_total",
        "twin_publish_failures_total",
    ):
        assert f"\n{name}" in text, name
    assert 'twin_steps_rejected_total{status="422"}' in text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_full_queue_keeps_the_newest_and_kicks_a_client_that_stays_behind() -> None:
    metrics = Metrics()
    fanout = Fanout(queue_size=4, lag_timeout_s=0.05, metrics=metrics)
    slow, fast = fanout.subscribe("v"), fanout.subscribe("v")
    for rev in range(1, 11):
        fanout.publish(Message("v", rev, f"m{rev}"))
        assert (await fast.get()).rev == rev  # the other client is not held up
    assert [(await slow.get()).rev for _ in range(4)] == [7, 8, 9, 10]
    assert slow.dropped == 6 and metrics.ws_dropped.value() == 6
    assert slow.kick_reason is None  # it caught up (emptied its queue) in time

    for rev in range(11, 20):
        fanout.publish(Message("v", rev, ""))
    await asyncio.sleep(0.06)
    fanout.publish(Message("v", 20, ""))
    assert slow.kick_reason is KickReason.SLOW and slow.kicked.is_set()
    fanout.unsubscribe(slow)
    fanout.unsubscribe(fast)
    assert len(fanout) == 0 and metrics.ws_clients.value(feed="vehicle") == 0


def wait_until(predicate: Any, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_history_and_earlier_revs_through_the_api(client: TestClient) -> None:
    answers = []
    for _ in range(4):
        answers.append(step(client, "mem-when"))
        time.sleep(0.005)  # distinct timestamps (they have milliseconds)
    stamps = [a["telemetry"]["timestamp"] for a in answers]
    got = client.get("/vehicles/mem-when/history", params={"since": stamps[1], "until": stamps[3]})
    assert [r["rev"] for r in got.json()] == [2, 3]
    plus_as_space = stamps[1].replace("+", " ")  # what an unescaped "+" in a URL becomes
    assert client.get(f"/vehicles/mem-when/history?since={plus_as_space}").json()[0]["rev"] == 2
    buckets = client.get("/vehicles/mem-when/history", params={"every": 3600}).json()
    assert sum(b["count"] for b in buckets) == 4 and buckets[-1]["rev"] == 4
    second = client.get("/vehicles/mem-when", params={"rev": 2}).json()
    assert second["state"] == answers[1]["state"] and second["telemetry"] == answers[1]["telemetry"]
    assert client.get("/vehicles/mem-when", params={"at": stamps[2]}).json()["rev"] == 3
    for params, status in (
        ({"rev": 9}, 404),
        ({"at": "2000-01-01T00:00:00Z"}, 404),
        ({"at": "yesterday"}, 422),
        ({"rev": 0}, 422),
        ({"rev": 2, "at": stamps[0]}, 422),
    ):
        resp = client.get("/vehicles/mem-when", params=params)
        assert resp.status_code == status, (params, resp.text)
        assert resp.json()["detail"][0]["msg"]
    bad = client.get("/vehicles/mem-when/history", params={"since": stamps[3], "until": stamps[0]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "until"]
    assert client.get("/vehicles/nobody/history", params={"every": 60}).status_code == 404
