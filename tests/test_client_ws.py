"""WebSocket subscriptions of the Python client: a scripted server, then the real service."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.processes import ServiceProcess
from websockets.sync.server import ServerConnection, serve

from clients.python import (
    AsyncTwinClient,
    TwinAuthError,
    TwinClient,
    TwinSubscriptionRefused,
)
from clients.python import client as client_module

SAMPLE = {"dt_s": 1.0, "power_kw": 20.0, "wheel_speed_m_s": 15.0}


class ScriptedLive:
    """A WebSocket server that sends a snapshot and two states per connection, then closes."""

    def __init__(self, close_code: int = 1000, reject_status: int | None = None) -> None:
        self.connections = 0
        self.paths: list[str] = []
        self.headers: list[str | None] = []
        self.protocols: list[str | None] = []
        self.close_code = close_code
        self.reject_status = reject_status
        self.server = serve(self.handler, "127.0.0.1", 0, process_request=self.gate)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gate(self, connection: ServerConnection, request: Any) -> Any:
        self.headers.append(request.headers.get("Authorization"))
        self.protocols.append(request.headers.get("Sec-WebSocket-Protocol"))
        if self.reject_status is not None:
            return connection.respond(self.reject_status, "no\n")
        return None

    def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.paths.append(ws.request.path)
        base = 10 * self.connections
        ws.send(json.dumps({"type": "snapshot", "rev": base, "telemetry": {"soc": 80.0}}))
        for rev in (base + 1, base + 2):
            ws.send(json.dumps({"type": "state", "rev": rev, "telemetry": {"soc": 79.0}}))
        ws.close(self.close_code, "bye")

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "WS_BACKOFF_FIRST_S", 0.01)


def test_subscription_yields_messages_and_reconnects() -> None:
    live = ScriptedLive(close_code=1013)  # "try again later": worth reconnecting
    try:
        client = TwinClient(f"http://127.0.0.1:{live.port}", read_key="rk")
        messages = client.subscribe("ev 1")
        got = [next(messages) for _ in range(5)]
        messages.close()
    finally:
        live.stop()
    assert [(m["type"], m["rev"]) for m in got] == [
        ("snapshot", 10),
        ("state", 11),
        ("state", 12),
        ("snapshot", 20),
        ("state", 21),
    ]
    assert live.paths[0] == "/ws/vehicles/ev%201"
    # the key travels as a subprotocol, "twin-auth." + base64url("rk"), not in the URL
    assert live.protocols[0] == "twin, twin-auth.cms" and live.headers[0] is None
    assert "rk" not in live.paths[0]


def test_without_reconnect_the_subscription_ends() -> None:
    live = ScriptedLive()
    try:
        got = list(TwinClient(f"http://127.0.0.1:{live.port}").subscribe(reconnect=False))
    finally:
        live.stop()
    assert [m["rev"] for m in got] == [10, 11, 12] and live.paths == ["/ws/fleet"]


def test_policy_close_and_refused_handshake_are_not_retried() -> None:
    live = ScriptedLive(close_code=1008)
    try:
        client = TwinClient(f"http://127.0.0.1:{live.port}")
        with pytest.raises(TwinSubscriptionRefused) as caught:
            list(client.subscribe("ev-1"))
        assert caught.value.code == 1008 and live.connections == 1
    finally:
        live.stop()
    refused = ScriptedLive(reject_status=401)
    try:
        with pytest.raises(TwinAuthError):
            list(TwinClient(f"http://127.0.0.1:{refused.port}").subscribe("ev-1"))
    finally:
        refused.stop()


async def test_async_subscription_reconnects() -> None:
    live = ScriptedLive()
    try:
        client = AsyncTwinClient(f"http://127.0.0.1:{live.port}")
        messages = client.subscribe("ev-1")
        got = [(await anext(messages))["rev"] for _ in range(4)]
        await messages.aclose()  # closes the WebSocket too
        await client.aclose()
    finally:
        live.stop()
    assert got == [10, 11, 12, 20]


# -- the real service, with api_key and read_key set -------------------------------------


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    keys = {"TWIN_API_KEY": "writer", "TWIN_READ_KEY": "reader"}
    process = ServiceProcess(log_dir=tmp_path_factory.mktemp("twin-ws"), env=keys)
    process.start()
    yield process
    process.stop()


def test_vehicle_subscription_sees_every_step(twin: ServiceProcess) -> None:
    with TwinClient(twin.url, api_key="writer", read_key="reader") as client:
        first = client.step([SAMPLE], vehicle_id="ws-1")
        messages = client.subscribe("ws-1", reconnect=False)
        snapshot = next(messages)
        assert snapshot["type"] == "snapshot" and snapshot["rev"] == first["rev"]
        assert snapshot["telemetry"]["soc"] == pytest.approx(first["telemetry"]["soc"])
        second = client.step([SAMPLE], vehicle_id="ws-1", state=first["state"])
        update = next(messages)
        assert update["type"] == "state" and update["rev"] == first["rev"] + 1
        assert update["telemetry"]["soc"] == pytest.approx(second["telemetry"]["soc"])
        messages.close()


def test_fleet_subscription_and_read_key(twin: ServiceProcess) -> None:
    with TwinClient(twin.url, api_key="writer") as client:  # the write key also reads
        client.step([SAMPLE], vehicle_id="fleet-a")
        messages = client.subscribe(reconnect=False)
        snapshot = next(messages)
        assert snapshot["type"] == "snapshot"
        client.step([SAMPLE], vehicle_id="fleet-b")
        seen = [snapshot]
        while not any(m["type"] == "state" for m in seen):
            seen.append(next(messages))
        assert seen[-1]["telemetry"]["vehicle_id"] == "fleet-b"
        messages.close()
    with TwinClient(twin.url) as anonymous:
        with pytest.raises((TwinSubscriptionRefused, TwinAuthError)):
            next(anonymous.subscribe("ws-1"))


async def test_async_vehicle_subscription(twin: ServiceProcess) -> None:
    async with AsyncTwinClient(twin.url, api_key="writer") as client:
        first = await client.step([SAMPLE], vehicle_id="ws-async")
        messages = client.subscribe("ws-async", reconnect=False)
        snapshot = await anext(messages)
        await client.step([SAMPLE], vehicle_id="ws-async", state=first["state"])
        update = await anext(messages)
        assert (snapshot["type"], update["type"]) == ("snapshot", "state")
        assert update["rev"] == snapshot["rev"] + 1
        await messages.aclose()


def test_bearer_keys_protect_step_and_reads(twin: ServiceProcess) -> None:
    with TwinClient(twin.url) as anonymous:
        with pytest.raises(TwinAuthError) as caught:
            anonymous.step([SAMPLE])
        assert caught.value.status_code == 401
        assert caught.value.detail[0]["loc"] == ["header", "authorization"]
        with pytest.raises(TwinAuthError):
            anonymous.vehicles()
    with TwinClient(twin.url, api_key="wrong") as wrong:
        with pytest.raises(TwinAuthError):
            wrong.step([SAMPLE])
    with TwinClient(twin.url, api_key="reader") as read_only:  # the read key cannot write
        with pytest.raises(TwinAuthError):
            read_only.step([SAMPLE])
    with TwinClient(twin.url, api_key="writer", read_key="reader") as keyed:
        assert keyed.step([SAMPLE], vehicle_id="keyed")["vehicle_id"] == "keyed"
        assert keyed.vehicle("keyed")["vehicle_id"] == "keyed"


def test_client_module_is_importable_without_the_bridge(tmp_path: Path) -> None:
    # clients.python must not depend on bridge (the terminal dashboard uses it alone).
    import subprocess
    import sys

    code = "import sys, clients.python; assert not any(m.startswith('bridge') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
