"""A forecast's work is bounded before it starts: vehicles, vehicle-steps and points returned
against max_forecast_items / max_forecast_work / max_forecast_points, a 413 naming the limit
and the values, no model run; the largest allowed requests still succeed, and a real service
keeps answering /health while it runs one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from support.processes import start_service

from twin_service.app import create_app
from twin_service.forecast import service
from twin_service.settings import Settings

DEFAULTS = Settings()
# Every usage field given: the largest item a client sends without a state.
FULL_ITEM: dict[str, Any] = {"vehicle": "sv1ev3", "usage": dict(service.DEFAULT_USAGE)}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> None:
        raise AssertionError("a model ran")

    monkeypatch.setattr(service, "run_forecast", refuse)


def rejected(resp: Any) -> dict[str, dict[str, Any]]:
    """The 413's error items by type."""
    assert resp.status_code == 413, resp.text[:500]
    return {e["type"]: e for e in resp.json()["detail"]}


def test_the_5000_item_50_year_request_is_refused(
    client: TestClient, no_model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin_service.api import forecast

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("items were validated")

    monkeypatch.setattr(forecast._ITEMS, "validate_python", refuse)
    body = {"years": 50, "include_points": True, "items": [{}] * 5000}
    errors = rejected(client.post("/forecast/fleet", json=body))
    assert set(errors) == {"too_much_work", "too_many_points"}
    work = errors["too_much_work"]
    assert work["loc"] == ["body"]
    assert "5000 items x 2608 weekly steps" in work["msg"]
    assert f"= {5000 * 2608} vehicle-steps exceed max_forecast_work (5220000)" in work["msg"]
    pts = errors["too_many_points"]
    assert pts["loc"] == ["body", "include_points"]
    assert f"= {5000 * 601} points exceed max_forecast_points (100000)" in pts["msg"]


def test_too_many_items_is_refused_before_validation(
    client: TestClient, no_model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin_service.schemas import FleetForecastRequest

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("items were validated")

    monkeypatch.setattr(FleetForecastRequest, "model_validate", refuse)
    n = DEFAULTS.max_forecast_items + 1
    errors = rejected(client.post("/forecast/fleet", json={"items": [{}] * n}))
    assert errors["too_many_items"]["loc"] == ["body", "items"]
    assert f"{n} items exceed max_forecast_items (10000)" in errors["too_many_items"]["msg"]


def test_the_work_limit_is_exact(no_model: None) -> None:
    """10,000 vehicles over 10 years is the limit; a little longer is over it."""
    n = DEFAULTS.max_forecast_items
    service.check_fleet(DEFAULTS, n, 10.0, False)
    with pytest.raises(service.ApiError) as exc:
        service.check_fleet(DEFAULTS, n, 10.02, False)
    assert exc.value.status_code == 413 and exc.value.errors[0]["type"] == "too_much_work"


def test_compare_models_multiplies_the_work(no_model: None) -> None:
    settings = Settings(max_forecast_work=2 * 2608)
    with TestClient(create_app(settings)) as small:
        errors = rejected(small.post("/forecast", json={"years": 5, "compare_models": True}))
    msg = errors["too_much_work"]["msg"]
    assert f"1 items x 2608 weekly steps (50 years) x {1 + len(service.PHYSICAL_MODELS)}" in msg
    assert "max_forecast_work (5216)" in msg


def test_a_large_compare_forecast_is_within_the_limits(client: TestClient) -> None:
    resp = client.post("/forecast", json={"years": 50, "compare_models": True})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert len(out["points"]) == 601 and out["by_model"] is not None
    assert [len(m["points"]) for m in out["by_model"]] == [601] * len(service.PHYSICAL_MODELS)


def test_points_limit_is_exact(client: TestClient) -> None:
    per_item = service.points_per_item(10.0)
    fits = DEFAULTS.max_forecast_points // per_item
    body = {"years": 10, "include_points": True, "items": [FULL_ITEM] * fits}
    resp = client.post("/forecast/fleet", json=body)
    assert resp.status_code == 200, resp.text[:500]
    results = resp.json()["results"]
    assert len(results) == fits and all(len(r["points"]) == per_item for r in results)
    body["items"] = [FULL_ITEM] * (fits + 1)
    assert set(rejected(client.post("/forecast/fleet", json=body))) == {"too_many_points"}


def largest_fleet() -> bytes:
    """max_forecast_items vehicles with preset and full usage over 10 years: at the work limit,
    its body within max_json_body_bytes even with a vehicle id added to every item."""
    n = DEFAULTS.max_forecast_items
    items = [{**FULL_ITEM, "usage": {**FULL_ITEM["usage"], "daily_km": 20.0 + i % 50}}
             for i in range(n)]  # fmt: skip
    body = orjson.dumps({"years": 10, "items": items})
    assert len(body) + n * len(b'"vehicle_id":"fleet-00000",') < DEFAULTS.max_json_body_bytes
    service.check_fleet(DEFAULTS, n, 10.0, False)
    return body


@pytest.mark.slow
def test_the_largest_fleet_forecast_succeeds(client: TestClient) -> None:
    resp = client.post(
        "/forecast/fleet", content=largest_fleet(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 200, resp.text[:500]
    results = resp.json()["results"]
    assert len(results) == DEFAULTS.max_forecast_items
    assert all(0.5 < r["soh_in_2_years"] < 1 and r["points"] is None for r in results)


@pytest.mark.slow
def test_health_answers_while_the_largest_fleet_forecast_runs() -> None:
    body = largest_fleet()
    with start_service() as url:
        outcome: dict[str, Any] = {}

        def run() -> None:
            outcome["response"] = httpx.post(
                f"{url}/forecast/fleet",
                content=body,
                headers={"content-type": "application/json"},
                timeout=300,
            )

        worker = threading.Thread(target=run)
        answered_during = 0
        with httpx.Client(base_url=url, timeout=60) as health:
            worker.start()
            while worker.is_alive():
                assert health.get("/health").status_code == 200
                answered_during += worker.is_alive()
                time.sleep(0.01)
            worker.join()
        resp = outcome["response"]
        assert resp.status_code == 200, resp.text[:500]
        assert len(resp.json()["results"]) == DEFAULTS.max_forecast_items
        assert answered_during > 0
