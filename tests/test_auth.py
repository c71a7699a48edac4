"""Keys: api_key guards POST /step, read_key guards reads and WebSockets, /health stays open.

The write key is taken from headers only (Authorization, or the WebSocket auth subprotocol);
`?token=` is tolerated for the read key alone. Wrong keys are throttled per client address.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from twin_service.app import create_app
from twin_service.auth import AuthThrottle, decode_ws_token, encode_ws_token
from twin_service.settings import DEFAULT_CONFIG, Settings, load_settings

WRITE, READ = "write-secret", "read-secret"
# High enough that the wrong keys these tests send never lock the test client out.
NO_LOCKOUT = 10_000
_ids = itertools.count()


def step_body(vehicle_id: str | None = None) -> dict[str, Any]:
    """A first step of a new vehicle (each call its own, so no rev conflict)."""
    return {
        "vehicle_id": vehicle_id or f"auth-new-{next(_ids)}",
        "samples": [{"dt_s": 1.0, "power_kw": 20.0}],
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ws_auth(key: str) -> list[str]:
    return ["twin", encode_ws_token(key)]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(api_key=WRITE, read_key=READ, auth_fail_limit=NO_LOCKOUT)
    with TestClient(create_app(settings)) as c:
        assert c.post("/step", json=step_body("auth-1"), headers=bearer(WRITE)).status_code == 200
        yield c


def test_step_needs_the_write_key_in_the_header(client: TestClient) -> None:
    for headers in ({}, bearer("wrong"), bearer(READ), {"Authorization": WRITE}):
        resp = client.post("/step", json=step_body(), headers=headers)
        assert resp.status_code == 401, headers
        assert resp.json()["detail"][0]["type"] == "unauthorized"
    assert client.post(f"/step?token={WRITE}", json=step_body()).status_code == 401
    assert client.post("/step", json=step_body(), headers=bearer(WRITE)).status_code == 200


@pytest.mark.parametrize("path", ["/vehicles", "/vehicles/auth-1", "/vehicles/auth-1/history"])
def test_reads_need_the_read_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers=bearer("wrong")).status_code == 401
    assert client.get(path, headers=bearer(READ)).status_code == 200
    assert client.get(f"{path}?token={READ}").status_code == 200
    assert client.get(path, headers=bearer(WRITE)).status_code == 200  # write implies read


@pytest.mark.parametrize("path", ["/vehicles", "/vehicles/auth-1"])
def test_a_write_key_in_the_url_authorises_nothing(client: TestClient, path: str) -> None:
    resp = client.get(f"{path}?token={WRITE}")
    assert resp.status_code == 401
    assert resp.json()["detail"][0]["type"] == "unauthorized"
    # a wrong header does not fall back to the URL's key either way
    assert client.get(f"{path}?token={WRITE}", headers=bearer("wrong")).status_code == 401


def test_forecast_is_a_read(client: TestClient) -> None:
    body = {"vehicle_id": "auth-1", "years": 1}
    assert client.post("/forecast", json=body).status_code == 401
    assert client.post(f"/forecast?token={WRITE}", json=body).status_code == 401
    assert client.post("/forecast", json=body, headers=bearer(READ)).status_code != 401


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_operational_endpoints_stay_open(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def _closed_with(client: TestClient, path: str, **kwargs: Any) -> int:
    with client.websocket_connect(path, **kwargs) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return closed.value.code


@pytest.mark.parametrize("path", ["/ws/vehicles/auth-1", "/ws/fleet"])
def test_websocket_without_a_valid_key_is_closed_1008(client: TestClient, path: str) -> None:
    for suffix in ("", "?token=wrong", f"?token={WRITE}"):
        assert _closed_with(client, path + suffix) == 1008, suffix
    for protocols in (ws_auth("wrong"), ["twin", "twin-auth.%%%"], ["twin"]):
        assert _closed_with(client, path, subprotocols=protocols) == 1008, protocols


@pytest.mark.parametrize("path", ["/ws/vehicles/auth-1", "/ws/fleet"])
def test_websocket_with_token_header_or_subprotocol(client: TestClient, path: str) -> None:
    with client.websocket_connect(f"{path}?token={READ}") as ws:
        assert ws.receive_json()["type"] == "snapshot"
    with client.websocket_connect(path, headers=bearer(READ)) as ws:
        assert ws.receive_json()["type"] == "snapshot"
    for key in (READ, WRITE):  # the subprotocol is a header: the write key reads too
        with client.websocket_connect(path, subprotocols=ws_auth(key)) as ws:
            assert ws.accepted_subprotocol == "twin"  # never the one carrying the key
            assert ws.receive_json()["type"] == "snapshot"


@pytest.mark.parametrize("key", ["read-secret", "ключ with spaces, commas; and / + = ?"])
def test_ws_token_encoding_round_trips_into_a_valid_subprotocol(key: str) -> None:
    protocol = encode_ws_token(key)
    assert protocol.startswith("twin-auth.")
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in protocol)
    assert decode_ws_token(protocol) == key
    assert decode_ws_token("twin-auth.@@@") == ""


def test_reads_are_open_without_read_key() -> None:
    with TestClient(create_app(Settings(api_key=WRITE))) as c:
        assert c.post("/step", json=step_body("open-1")).status_code == 401
        assert c.post("/step", json=step_body("open-1"), headers=bearer(WRITE)).status_code == 200
        assert c.get("/vehicles/open-1").status_code == 200
        with c.websocket_connect("/ws/vehicles/open-1") as ws:
            assert ws.receive_json()["rev"] == 1


def test_with_only_a_read_key_writes_need_it_too() -> None:
    with TestClient(create_app(Settings(read_key=READ))) as c:
        assert c.post("/step", json=step_body()).status_code == 401
        assert c.post("/step", json=step_body(), headers=bearer("wrong")).status_code == 401
        assert c.post(f"/step?token={READ}", json=step_body()).status_code == 401  # header only
        assert c.post("/step", json=step_body("ro-1"), headers=bearer(READ)).status_code == 200
        assert c.get("/vehicles/ro-1").status_code == 401
        assert c.get("/vehicles/ro-1", headers=bearer(READ)).status_code == 200


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_API_KEY", "env-write")
    monkeypatch.setenv("TWIN_READ_KEY", "env-read")
    settings = load_settings()
    assert (settings.api_key, settings.read_key) == ("env-write", "env-read")
    with TestClient(create_app(settings)) as c:
        assert c.post("/step", json=step_body()).status_code == 401
        assert c.post("/step", json=step_body(), headers=bearer("env-write")).status_code == 200
        assert c.get("/vehicles").status_code == 401
        assert c.get("/vehicles", headers=bearer("env-read")).status_code == 200


def test_no_keys_in_the_shipped_config() -> None:
    shipped = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert shipped.get("api_key") is None and shipped.get("read_key") is None


# -- failed-auth throttling ----------------------------------------------------------------


def peer_from_header(app: FastAPI) -> Any:
    """The app, with the client address of each request taken from X-Test-Peer (what uvicorn
    does with X-Forwarded-For behind a trusted proxy)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = dict(scope["headers"]).get(b"x-test-peer")
            if peer is not None:
                scope = {**scope, "client": (peer.decode(), 40000)}
        await app(scope, receive, send)

    return wrapped


def peer(address: str, key: str | None = None) -> dict[str, str]:
    return {"X-Test-Peer": address, **(bearer(key) if key else {})}


def metric(c: TestClient, name: str) -> float:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_wrong_keys_lock_the_address_out_and_no_one_else() -> None:
    settings = Settings(api_key=WRITE, read_key=READ, auth_fail_limit=3, auth_lockout_s=120)
    with TestClient(peer_from_header(create_app(settings))) as c:
        attacker, other = "198.51.100.7", "198.51.100.8"
        for guess in ("a", "b", "c"):
            assert c.get("/vehicles", headers=peer(attacker, guess)).status_code == 401
        locked = c.get("/vehicles", headers=peer(attacker, READ))  # even the right key
        assert locked.status_code == 429
        assert 0 < int(locked.headers["retry-after"]) <= 120
        assert locked.json()["detail"][0]["type"] == "too_many_failures"
        step = c.post("/step", json=step_body(), headers=peer(attacker, WRITE))
        assert step.status_code == 429 and "retry-after" in step.headers
        # the lockout is per address: other clients keep working
        assert c.get("/vehicles", headers=peer(other, READ)).status_code == 200
        assert c.post("/step", json=step_body(), headers=peer(other, WRITE)).status_code == 200
        assert metric(c, "twin_auth_failures_total") == 3
        assert metric(c, "twin_auth_throttled_total") == 2
        # a WebSocket from the locked address is closed with "try again later"
        assert _closed_with(c, "/ws/fleet", headers=peer(attacker, READ)) == 1013


def test_requests_without_a_key_do_not_count() -> None:
    settings = Settings(read_key=READ, auth_fail_limit=2)
    with TestClient(peer_from_header(create_app(settings))) as c:
        for _ in range(10):
            assert c.get("/vehicles", headers=peer("192.0.2.1")).status_code == 401
        assert c.get("/vehicles", headers=peer("192.0.2.1", READ)).status_code == 200
        # wrong keys in the URL count like wrong keys in the header
        for _ in range(2):
            assert c.get("/vehicles?token=nope", headers=peer("192.0.2.1")).status_code == 401
        assert c.get("/vehicles", headers=peer("192.0.2.1", READ)).status_code == 429


def test_no_throttling_when_no_key_is_configured() -> None:
    with TestClient(peer_from_header(create_app(Settings(auth_fail_limit=1)))) as c:
        for _ in range(3):
            assert c.get("/vehicles", headers=peer("192.0.2.9", "anything")).status_code == 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_window_lockout_and_bounded_table() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(limit=3, window_s=10, lockout_s=30, max_tracked=100, clock=clock)
    # failures spread wider than the window never lock
    for _ in range(5):
        assert not throttle.failed("a")
        clock.now += 6
        assert not throttle.failed("a")
        clock.now += 11
    assert throttle.retry_after("a") is None
    # three within the window do, for lockout_s
    assert [throttle.failed("b") for _ in range(3)] == [False, False, True]
    assert throttle.retry_after("b") == 30
    clock.now += 29.5
    assert throttle.retry_after("b") == 1
    clock.now += 1
    assert throttle.retry_after("b") is None
    assert not throttle.failed("b")  # a fresh count after the lockout
    # at most max_tracked addresses, the least recently failed dropped first
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100
    assert throttle.retry_after("b") is None and "10.0.3.231" in throttle._table
    # limit 0 turns it off
    off = AuthThrottle(limit=0, window_s=10, lockout_s=30, max_tracked=10, clock=clock)
    assert not any(off.failed("c") for _ in range(100)) and off.retry_after("c") is None
