"""Auth against a real uvicorn process: the WebSocket auth subprotocol, and the failed-auth
throttle keyed by the client address uvicorn reports (X-Forwarded-For from a trusted proxy,
127.0.0.1 by default, as nginx in docker-compose.yml sends it)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from support.live import metric_value, step_body, ws_url
from support.processes import ServiceProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Subprotocol

pytestmark = pytest.mark.slow

READ, WRITE = "reader key/+=", "writer"  # characters a subprotocol cannot carry unencoded


def auth_protocols(key: str) -> list[Subprotocol]:
    encoded = base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()
    return [Subprotocol("twin"), Subprotocol(f"twin-auth.{encoded}")]


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {"TWIN_READ_KEY": READ, "TWIN_API_KEY": WRITE, "TWIN_AUTH_FAIL_LIMIT": "10"}
    process = ServiceProcess(env=env, log_dir=tmp_path_factory.mktemp("auth-ws"))
    process.start()
    headers = {"Authorization": f"Bearer {WRITE}"}
    httpx.post(f"{process.url}/step", json=step_body("ws-auth"), headers=headers).raise_for_status()
    yield process
    process.stop()


@pytest.mark.parametrize("key", [READ, WRITE])
def test_subprotocol_auth_without_a_key_in_the_url(twin: ServiceProcess, key: str) -> None:
    url = ws_url(twin.url, "/ws/vehicles/ws-auth")
    with connect(url, subprotocols=auth_protocols(key), open_timeout=10) as ws:
        assert ws.subprotocol == "twin"
        message = ws.recv(10)
        assert '"type":"snapshot"' in str(message)


def test_wrong_or_url_write_key_closes_1008(twin: ServiceProcess) -> None:
    attempts = [
        (ws_url(twin.url, "/ws/fleet"), auth_protocols("wrong")),
        (ws_url(twin.url, "/ws/fleet"), None),
        (ws_url(twin.url, f"/ws/fleet?token={WRITE}"), None),  # the write key never in a URL
    ]
    for url, protocols in attempts:
        with pytest.raises(ConnectionClosed) as closed:
            with connect(url, subprotocols=protocols, open_timeout=10) as ws:
                ws.recv(10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, url


def test_wrong_keys_lock_out_one_address(twin: ServiceProcess) -> None:
    url = twin.url
    attacker = {"X-Forwarded-For": "203.0.113.5"}
    before = metric_value(url, "twin_auth_failures_total")
    for i in range(10):
        guess = {**attacker, "Authorization": f"Bearer guess-{i}"}
        assert httpx.get(f"{url}/vehicles", headers=guess).status_code == 401
    right = {"Authorization": f"Bearer {READ}"}
    locked = httpx.get(f"{url}/vehicles", headers={**attacker, **right})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    step = httpx.post(
        f"{url}/step",
        json=step_body("ws-auth-2"),
        headers={**attacker, "Authorization": f"Bearer {WRITE}"},
    )
    assert step.status_code == 429
    other = {"X-Forwarded-For": "203.0.113.6", **right}
    assert httpx.get(f"{url}/vehicles", headers=other).status_code == 200
    assert metric_value(url, "twin_auth_failures_total") - before == 10
    assert metric_value(url, "twin_auth_throttled_total") >= 2
