"""A real service process with real sockets: a client that never reads does not delay another
client and is closed with 1013; disconnected clients are cleaned up at once."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets
from support.live import metric_value, recv_json, step_body, ws_url
from support.processes import start_service
from websockets.asyncio.client import connect

LAG_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    env = {"TWIN_WS_QUEUE_SIZE": "8", "TWIN_WS_LAG_TIMEOUT_S": str(LAG_TIMEOUT_S)}
    with start_service(env=env, send_buffer_bytes=8192) as url:
        yield url


def small_buffer_socket(base_url: str) -> socket.socket:
    """A connected socket with a tiny receive buffer, so the server's sends back up soon."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    return sock


async def test_a_client_that_never_reads_is_closed_1013_and_delays_no_one(service: str) -> None:
    path = "/ws/vehicles/slow-1"
    # No compression: deflated telemetry is so small that filling buffers would take long.
    slow = await connect(
        ws_url(service, path), sock=small_buffer_socket(service), max_queue=1, compression=None
    )
    try:
        async with (
            connect(ws_url(service, path)) as fast,
            httpx.AsyncClient(base_url=service, timeout=10) as client,
        ):
            delays: list[float] = []
            for rev in range(1, 3001):
                resp = await client.post("/step", json=step_body("slow-1"))
                assert resp.json()["rev"] == rev
                sent = time.perf_counter()
                message = await recv_json(fast, timeout_s=2.0)
                delays.append(time.perf_counter() - sent)
                assert message["rev"] == rev  # the fast client gets every message, in order
                if rev % 20 == 0 and metric_value(service, "twin_websocket_slow_closed_total"):
                    break
            else:
                pytest.fail("the slow client was never closed")
        assert max(delays) < 0.5, max(delays)
        assert metric_value(service, "twin_websocket_dropped_messages_total") > 0

        # Now read: what the buffers held, then the close frame with 1013.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(slow.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    finally:
        await slow.close()


async def test_disconnected_clients_are_cleaned_up_at_once(service: str) -> None:
    clients = [await connect(ws_url(service, f"/ws/vehicles/gone-{i % 3}")) for i in range(10)]
    clients += [await connect(ws_url(service, "/ws/fleet")) for _ in range(5)]
    assert metric_value(service, "twin_websocket_clients", 'feed="vehicle"') == 10
    assert metric_value(service, "twin_websocket_clients", 'feed="fleet"') == 5
    for i, ws in enumerate(clients):
        if i % 2:
            await ws.close()
        else:
            ws.transport.abort()  # vanish without a closing handshake
    deadline = time.monotonic() + 1.0
    while metric_value(service, "twin_websocket_clients", 'feed="vehicle"') or metric_value(
        service, "twin_websocket_clients", 'feed="fleet"'
    ):
        assert time.monotonic() < deadline, "clients not cleaned up"
        await asyncio.sleep(0.02)
    # The service still serves new clients.
    async with connect(ws_url(service, "/ws/vehicles/gone-0")) as ws:
        httpx.post(f"{service}/step", json=step_body("gone-0"))
        assert (await recv_json(ws))["rev"] == 1
