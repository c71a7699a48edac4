"""The HTTP server's guards against a real uvicorn process: time limits for headers and
bodies, request-line and header size limits, the connection and WebSocket caps."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from support.live import metric_value, ws_url
from support.processes import start_service
from websockets.asyncio.client import connect

pytestmark = pytest.mark.slow

ENV = {
    "TWIN_HEADER_TIMEOUT_S": "1.0",
    "TWIN_BODY_TIMEOUT_S": "1.0",
    "TWIN_MAX_CONNECTIONS": "20",
    "TWIN_MAX_WEBSOCKETS": "2",
}


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with start_service(env=ENV) as url:
        yield url


def raw_connection(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (or 10 s pass)."""
    chunks = []
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_half_sent_headers_get_408_and_are_closed(service: str) -> None:
    with raw_connection(service) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never ends the headers
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]


def test_a_connection_that_sends_nothing_is_closed(service: str) -> None:
    with raw_connection(service) as sock:
        started = time.monotonic()
        answer = read_all(sock)
        assert time.monotonic() - started < 9  # closed by the server, not by our timeout
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


def test_a_half_sent_body_gets_408_and_nothing_is_stored(service: str) -> None:
    with raw_connection(service) as sock:
        sock.sendall(
            b"POST /step HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{"
        )
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert httpx.get(f"{service}/vehicles/default").status_code == 404
    assert httpx.get(f"{service}/health").status_code == 200


def test_a_long_websocket_request_line_is_refused_at_once(service: str) -> None:
    with raw_connection(service) as sock:
        path = "/ws/fleet?" + "a" * 9000
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(handshake.encode())
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 414"), answer[:100]


def test_oversized_headers_get_431(service: str) -> None:
    padding = "".join(f"X-Pad-{i}: {'b' * 1000}\r\n" for i in range(100))
    with raw_connection(service) as sock:
        # The server answers as soon as the headers pass the limit and closes, so the rest of
        # what is sent may meet a closed connection.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\n{padding}\r\n".encode())
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_beyond_the_connection_cap_requests_get_503(service: str) -> None:
    idle = [raw_connection(service) for _ in range(20)]
    try:
        deadline = time.monotonic() + 5
        status = 0
        while time.monotonic() < deadline:
            status = httpx.get(f"{service}/health").status_code
            if status == 503:
                break
            time.sleep(0.05)
        assert status == 503
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while httpx.get(f"{service}/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{service}/health").status_code == 200
    assert metric_value(service, "twin_connections_refused_total", 'kind="http"') >= 1


async def test_beyond_the_websocket_cap_clients_are_closed_1013(service: str) -> None:
    url = ws_url(service, "/ws/fleet")
    async with connect(url), connect(url):
        async with connect(url) as third:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await third.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert metric_value(service, "twin_connections_refused_total", 'kind="websocket"') >= 1
    async with connect(url) as again:  # room again once the others left
        await again.ping()


def test_websockets_cannot_take_every_connection() -> None:
    """uvicorn's connection cap counts WebSockets: the settings keep room for HTTP."""
    from pydantic import ValidationError

    from twin_service.settings import Settings

    with pytest.raises(ValidationError, match="max_websockets must be below max_connections"):
        Settings(max_connections=100, max_websockets=100)
    assert Settings().max_websockets < Settings().max_connections
