"""Bounded vehicle listings: GET /vehicles pages, the most recent first, the bounded /ws/fleet
snapshot and the memory store's cap on vehicles, through the HTTP and WebSocket API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.settings import Settings

SAMPLE = {"dt_s": 1.0, "power_kw": 20.0}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(max_vehicles=12, fleet_snapshot_limit=3))) as c:
        for i in range(10):
            step(c, f"pg-{i:02d}")
        yield c


def step(client: TestClient, vehicle_id: str, state: Any = None) -> dict[str, Any]:
    body = {"vehicle_id": vehicle_id, "state": state, "samples": [SAMPLE]}
    resp = client.post("/step", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_pages_walk_every_vehicle_once_by_cursor(client: TestClient) -> None:
    seen: list[str] = []
    url: str | None = "/vehicles?limit=4"
    pages = 0
    while url:
        resp = client.get(url)
        assert resp.status_code == 200
        page = resp.json()
        assert len(page) <= 4
        seen += [t["vehicle_id"] for t in page]
        nxt = resp.headers.get("x-next-cursor")
        if nxt:
            assert resp.headers["link"] == f'</vehicles?limit=4&cursor={nxt}>; rel="next"'
            url = f"/vehicles?limit=4&cursor={nxt}"
        else:
            url = None
        pages += 1
    assert seen == [f"pg-{i:02d}" for i in range(10)] and pages == 3


def test_recent_lists_the_last_updated_first(client: TestClient) -> None:
    latest = client.get("/vehicles/pg-03").json()
    step(client, "pg-03", latest["state"])
    ids = [t["vehicle_id"] for t in client.get("/vehicles?order=recent&limit=3").json()]
    assert ids == ["pg-03", "pg-09", "pg-08"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "cursor=..", "order=name"])
def test_bad_page_parameters_are_422(client: TestClient, query: str) -> None:
    resp = client.get(f"/vehicles?{query}")
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"][0] == "query"


def test_fleet_feed_sends_only_the_most_recent_snapshots_then_live(client: TestClient) -> None:
    with client.websocket_connect("/ws/fleet") as ws:
        snapshots = [ws.receive_json() for _ in range(3)]
        assert [m["type"] for m in snapshots] == ["snapshot"] * 3
        # Oldest first, as the stream continues; the 3 most recently updated of the 10.
        ids = [m["vehicle_id"] for m in snapshots]
        recent = [t["vehicle_id"] for t in client.get("/vehicles?order=recent&limit=3").json()]
        assert ids == recent[::-1]
        out = step(client, "pg-new")
        message = ws.receive_json()
        assert (message["type"], message["vehicle_id"], message["rev"]) == (
            "state",
            "pg-new",
            out["rev"],
        )


def test_the_memory_store_keeps_at_most_max_vehicles() -> None:
    with TestClient(create_app(Settings(max_vehicles=3))) as c:
        for i in range(5):
            step(c, f"cap-{i}")
        assert [t["vehicle_id"] for t in c.get("/vehicles").json()] == ["cap-2", "cap-3", "cap-4"]
        assert c.get("/vehicles/cap-0").status_code == 404
        metrics = c.get("/metrics").text
        assert "twin_store_evicted_vehicles_total 2" in metrics
        assert "twin_store_vehicles 3" in metrics
