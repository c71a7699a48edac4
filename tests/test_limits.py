"""Body size and media type of every endpoint (twin_service/limits.py): 413 before a body is
read, 415 for what a browser may post cross-origin without a preflight, nothing stored."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.processes import start_service

from twin_service.app import create_app
from twin_service.limits import BodyLimits
from twin_service.settings import Settings

SAMPLE = {"dt_s": 1.0, "power_kw": 10.0}
HUGE = 256 * 1024 * 1024


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def error(resp: Any, status: int, type_: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    (item,) = resp.json()["detail"]
    assert item["type"] == type_ and item["loc"] and item["msg"], item
    return item


# -- the middleware alone: what it reads ---------------------------------------------------


class Recorder:
    """An ASGI app that reads the whole body and answers 200; remembers what it got."""

    def __init__(self) -> None:
        self.called = False
        self.body = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }


async def run(app: Any, sc: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(sc, receive, send)
    return sent


def response(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"], sent
    return sent[0]["status"], json.loads(sent[1]["body"])


async def test_declared_length_over_limit_is_refused_unread() -> None:
    inner = Recorder()

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    headers = {"content-type": "application/json", "content-length": str(HUGE)}
    sent = await run(BodyLimits(inner, Settings()), scope("/forecast", headers), receive)
    status, body = response(sent)
    assert status == 413 and not inner.called
    assert "max_json_body_bytes (4194304)" in body["detail"][0]["msg"]
    assert (b"connection", b"close") in sent[0]["headers"]


async def test_streamed_body_is_cut_at_the_limit() -> None:
    settings = Settings(max_json_body_bytes=10_000)
    inner = Recorder()
    chunks = 0

    async def receive() -> dict[str, Any]:  # an endless chunked body, 1 KiB at a time
        nonlocal chunks
        chunks += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    sent = await run(BodyLimits(inner, settings), scope("/forecast/fleet", headers), receive)
    status, body = response(sent)  # the application's own answer is dropped
    assert status == 413 and body["detail"][0]["type"] == "body_too_large"
    assert chunks == 10  # read up to the first chunk past 10,000 bytes, not one more
    assert len(inner.body) == 9 * 1024


async def test_streamed_body_under_the_limit_passes_whole() -> None:
    inner = Recorder()
    parts = [b"[1,", b"2]", b""]

    async def receive() -> dict[str, Any]:
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    sent = await run(BodyLimits(inner, Settings()), scope("/forecast", headers), receive)
    assert sent[0]["status"] == 200 and inner.body == b"[1,2]"


# -- through the app -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_step_takes_only_json_and_stores_nothing_else(
    client: TestClient, content_type: str | None
) -> None:
    vehicle = f"cross-origin-{abs(hash(content_type))}"
    body = json.dumps({"vehicle_id": vehicle, "samples": [SAMPLE]})
    headers = {} if content_type is None else {"content-type": content_type}
    resp = client.post("/step", content=body, headers=headers)
    item = error(resp, 415, "unsupported_media_type")
    assert item["loc"] == ["header", "content-type"] and "application/json" in item["msg"]
    assert client.get(f"/vehicles/{vehicle}").status_code == 404
    assert 'twin_steps_rejected_total{status="415"}' in client.get("/metrics").text


def test_json_with_charset_and_msgpack_reach_step(client: TestClient) -> None:
    body = json.dumps({"vehicle_id": "charset", "samples": [SAMPLE]})
    ok = client.post(
        "/step", content=body, headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert ok.status_code == 200, ok.text
    # msgpack is left to /step's own reader (which names its own error), not refused here.
    resp = client.post("/step", content=b"\x81", headers={"content-type": "application/msgpack"})
    assert resp.status_code != 415


def test_forecast_takes_only_json(client: TestClient) -> None:
    for path in ("/forecast", "/forecast/fleet"):
        resp = client.post(path, content=b"{}", headers={"content-type": "text/plain"})
        error(resp, 415, "unsupported_media_type")
    assert client.post("/forecast", json={"years": 1}).status_code == 200


def test_each_path_has_its_limit(client: TestClient) -> None:
    """Over max_json_body_bytes is refused on /forecast but not on /step (max_body_bytes)."""
    pad = "x" * (4 * 1024 * 1024)
    resp = client.post("/forecast", json={"years": 1, "pad": pad})
    assert "max_json_body_bytes" in error(resp, 413, "body_too_large")["msg"]
    resp = client.post("/step", json={"vehicle_id": "padded", "samples": [SAMPLE], "pad": pad})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "pad"]


# -- a real server: the body is never waited for ----------------------------------------------


def raw_request(url: str, head: str, body: bytes) -> bytes:
    """Send a request head and part of a body; the whole answer until the server closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):  # a server waiting for the rest times out here
            answer += chunk
    return answer


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with start_service(env={"TWIN_MAX_JSON_BODY_BYTES": "100000"}) as url:
        yield url


def test_declared_huge_body_is_refused_unread(service: str) -> None:
    head = (
        f"POST /forecast HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {HUGE}\r\n"
    )
    answer = raw_request(service, head, b'{"years": 1, "pad": "')
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"max_json_body_bytes (100000)" in rest


def test_chunked_body_over_the_limit_is_refused(service: str) -> None:
    head = (
        "POST /forecast/fleet HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n"
    )
    chunk = b"x" * 30_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4))  # 120 kB, no end
    answer = raw_request(service, head, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"body_too_large" in answer
