"""Keys: api_key guards POST /step, read_key guards reads and WebSockets, /health stays open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from twin_service.app import create_app
from twin_service.settings import DEFAULT_CONFIG, Settings, load_settings

WRITE, READ = "write-secret", "read-secret"
STEP = {"vehicle_id": "auth-1", "samples": [{"dt_s": 1.0, "power_kw": 20.0}]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(api_key=WRITE, read_key=READ))) as c:
        assert c.post("/step", json=STEP, headers=bearer(WRITE)).status_code == 200
        yield c


def test_step_needs_the_write_key_in_the_header(client: TestClient) -> None:
    for headers in ({}, bearer("wrong"), bearer(READ), {"Authorization": WRITE}):
        resp = client.post("/step", json=STEP, headers=headers)
        assert resp.status_code == 401, headers
        assert resp.json()["detail"][0]["type"] == "unauthorized"
    assert client.post(f"/step?token={WRITE}", json=STEP).status_code == 401
    assert client.post("/step", json=STEP, headers=bearer(WRITE)).status_code == 200


@pytest.mark.parametrize("path", ["/vehicles", "/vehicles/auth-1", "/vehicles/auth-1/history"])
def test_reads_need_the_read_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers=bearer("wrong")).status_code == 401
    assert client.get(path, headers=bearer(READ)).status_code == 200
    assert client.get(f"{path}?token={READ}").status_code == 200
    assert client.get(path, headers=bearer(WRITE)).status_code == 200  # write implies read


def test_forecast_is_a_read(client: TestClient) -> None:
    body = {"vehicle_id": "auth-1", "years": 1}
    assert client.post("/forecast", json=body).status_code == 401
    assert client.post("/forecast", json=body, headers=bearer(READ)).status_code != 401


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_operational_endpoints_stay_open(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/ws/vehicles/auth-1", "/ws/fleet"])
def test_websocket_without_token_is_closed_1008(client: TestClient, path: str) -> None:
    for suffix in ("", "?token=wrong"):
        with client.websocket_connect(path + suffix) as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == 1008


@pytest.mark.parametrize("path", ["/ws/vehicles/auth-1", "/ws/fleet"])
def test_websocket_with_token_or_header(client: TestClient, path: str) -> None:
    with client.websocket_connect(f"{path}?token={READ}") as ws:
        assert ws.receive_json()["type"] == "snapshot"
    with client.websocket_connect(path, headers=bearer(READ)) as ws:
        assert ws.receive_json()["type"] == "snapshot"


def test_reads_are_open_without_read_key() -> None:
    with TestClient(create_app(Settings(api_key=WRITE))) as c:
        assert c.post("/step", json=STEP).status_code == 401
        assert c.post("/step", json=STEP, headers=bearer(WRITE)).status_code == 200
        assert c.get("/vehicles/auth-1").status_code == 200
        with c.websocket_connect("/ws/vehicles/auth-1") as ws:
            assert ws.receive_json()["rev"] == 1


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_API_KEY", "env-write")
    monkeypatch.setenv("TWIN_READ_KEY", "env-read")
    settings = load_settings()
    assert (settings.api_key, settings.read_key) == ("env-write", "env-read")
    with TestClient(create_app(settings)) as c:
        assert c.post("/step", json=STEP).status_code == 401
        assert c.post("/step", json=STEP, headers=bearer("env-write")).status_code == 200
        assert c.get("/vehicles").status_code == 401
        assert c.get("/vehicles", headers=bearer("env-read")).status_code == 200


def test_no_keys_in_the_shipped_config() -> None:
    shipped = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert shipped.get("api_key") is None and shipped.get("read_key") is None
