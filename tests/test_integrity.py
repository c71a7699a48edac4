"""Conditional writes through POST /step (SPEC §6 "Integrity of a vehicle's twin"): the state
carries its rev, stale / forked / null states of a known vehicle get 409 rev_conflict and
nothing is stored; options.store false and options.replace; two real replicas on one Redis;
a frozen Redis costs a step about the command timeout and never stores it later."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from support.live import metric_value
from support.processes import RedisServer, start_redis, start_services

from twin_service.app import create_app
from twin_service.settings import Settings

SAMPLE = {"dt_s": 1.0, "power_kw": 20.0}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def post(client: Any, vehicle_id: str, state: Any = None, **options: Any) -> httpx.Response:
    body: dict[str, Any] = {"vehicle_id": vehicle_id, "state": state, "samples": [SAMPLE]}
    if options:
        body["options"] = options
    return client.post("/step", json=body)


def conflict_of(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 409, resp.text
    (error,) = resp.json()["detail"]
    assert error["type"] == "rev_conflict" and error["loc"] == ["body", "state", "rev"]
    return error


def test_the_state_carries_its_rev_and_chains(client: TestClient) -> None:
    first = post(client, "int-1").json()
    assert first["rev"] == first["state"]["rev"] == first["telemetry"]["rev"] == 1
    second = post(client, "int-1", first["state"]).json()
    assert second["rev"] == second["state"]["rev"] == 2
    assert client.get("/vehicles/int-1").json()["state"]["rev"] == 2


@pytest.mark.parametrize("kind", ["stale", "forked", "null", "seed", "no rev"])
def test_a_state_that_is_not_the_latest_gets_409_and_nothing_is_stored(
    client: TestClient, kind: str
) -> None:
    vehicle_id = f"int-{kind.replace(' ', '-')}"
    first = post(client, vehicle_id).json()
    latest = post(client, vehicle_id, first["state"]).json()
    state: Any = {
        "stale": first["state"],
        "forked": {**latest["state"], "rev": 7},
        "null": None,
        "seed": {"soc": 0.5},
        "no rev": {k: v for k, v in latest["state"].items() if k != "rev"},
    }[kind]
    error = conflict_of(post(client, vehicle_id, state))
    assert error["current_rev"] == 2
    assert "options.replace" in error["msg"] and f"GET /vehicles/{vehicle_id}" in error["msg"]
    assert client.get(f"/vehicles/{vehicle_id}").json() == latest
    history = client.get(f"/vehicles/{vehicle_id}/history").json()
    assert [t["rev"] for t in history] == [1, 2]
    assert metric_value_of(client, "twin_steps_rejected_total", 'status="409"') >= 1


def metric_value_of(client: TestClient, name: str, labels: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.split()[-1])
    return 0.0


def test_store_false_computes_without_storing_or_checking(client: TestClient) -> None:
    first = post(client, "int-whatif").json()
    latest = post(client, "int-whatif", first["state"]).json()
    for state in (None, first["state"]):  # any state: a what-if run is not checked
        resp = post(client, "int-whatif", state, store=False)
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"]["soc"] < (state or {"soc": 0.85})["soc"]
    assert client.get("/vehicles/int-whatif").json() == latest
    assert post(client, "int-never", store=False).status_code == 200
    assert client.get("/vehicles/int-never").status_code == 404


def test_replace_restarts_the_twin_deliberately(client: TestClient) -> None:
    first = post(client, "int-replace").json()
    post(client, "int-replace", first["state"])
    replaced = post(client, "int-replace", None, replace=True)
    assert replaced.status_code == 200
    assert replaced.json()["rev"] == 3
    assert client.get("/vehicles/int-replace").json()["state"]["soc"] == pytest.approx(
        replaced.json()["state"]["soc"]
    )


def test_a_bad_rev_is_422(client: TestClient) -> None:
    state = post(client, "int-badrev").json()["state"]
    for bad in (-1, "2", 1.5, True, 2**53, 2**63):  # above 2**53 - 1 a JSON number is inexact
        resp = post(client, "int-badrev", {**state, "rev": bad})
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["detail"][0]["loc"] == ["body", "state", "rev"]


@pytest.mark.redis
@pytest.mark.slow
def test_two_writers_on_two_replicas_cannot_interleave(redis_server: RedisServer) -> None:
    with start_services(2, hub_url=redis_server.url) as (url_a, url_b):
        a, b = httpx.Client(base_url=url_a), httpx.Client(base_url=url_b)
        first = post(a, "int-rep").json()
        # Both writers continue from rev 1: the second is refused, whichever replica it uses.
        assert post(a, "int-rep", first["state"]).status_code == 200
        error = conflict_of(post(b, "int-rep", first["state"]))
        assert error["current_rev"] == 2
        assert conflict_of(post(b, "int-rep", None))["current_rev"] == 2
        latest = b.get("/vehicles/int-rep").json()
        assert post(b, "int-rep", latest["state"]).json()["rev"] == 3


@pytest.mark.redis
@pytest.mark.slow
def test_a_frozen_redis_costs_a_step_about_the_timeout_and_stores_nothing_later() -> None:
    with start_redis() as redis_server, start_services(1, hub_url=redis_server.url) as (url,):
        assert redis_server.process is not None
        c = httpx.Client(base_url=url, timeout=30)
        first = post(c, "int-frozen").json()
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            durations = []
            state = first["state"]
            for _ in range(5):
                started = time.monotonic()
                resp = post(c, "int-frozen", state)
                durations.append(time.monotonic() - started)
                assert resp.status_code == 200, resp.text
                state = resp.json()["state"]
            # The failed commit marks the store down, and the listener's PING notices the
            # frozen hub (GET /ready and the gauges).
            deadline = time.monotonic() + 10
            while c.get("/ready").status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert c.get("/ready").status_code == 503
            assert metric_value(url, "twin_store_up") == 0
            while metric_value(url, "twin_hub_up") != 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert metric_value(url, "twin_hub_up") == 0
            assert metric_value(url, "twin_publish_failures_total") >= 5
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        print("step durations while Redis is frozen (s):", [round(d, 3) for d in durations])
        # The hub comes back; the steps reported as not stored never appear.
        deadline = time.monotonic() + 15
        while c.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/ready").status_code == 200
        assert [t["rev"] for t in c.get("/vehicles/int-frozen/history").json()] == [1]
