"""Secrets never reach the log of a real service process, and error bodies name no internal host.

The service runs at log level info (access log on) with its hub on a closed port, so reads get
503 and the Redis client's errors (which name host and port) are what a body could leak.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from support.live import ws_url
from support.processes import ServiceProcess, free_port
from uvicorn.logging import AccessFormatter
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from twin_service.logging_setup import RedactSecrets, log_config, redact

pytestmark = pytest.mark.slow

READ, WRITE, REDIS_PASSWORD = "r3ad-SECRET-k3y", "wr1te-SECRET-k3y", "hunter2-SECRET"
SECRETS = (READ, WRITE, REDIS_PASSWORD)


class Down:
    def __init__(self, service: ServiceProcess, redis_port: int) -> None:
        self.service, self.redis_port = service, redis_port
        self.url = service.url


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Down]:
    redis_port = free_port()  # nothing listens there
    service = ServiceProcess(
        hub_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0",
        env={"TWIN_READ_KEY": READ, "TWIN_API_KEY": WRITE, "TWIN_LOG_LEVEL": "info"},
        log_dir=tmp_path_factory.mktemp("access-log"),
    )
    service.start()
    yield Down(service, redis_port)
    service.stop()


def wait_for_log(service: ServiceProcess, *needles: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = service.log_path.read_text(errors="replace")
        if all(n in text for n in needles) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_keys_in_urls_and_headers_are_redacted_in_the_log(down: Down) -> None:
    url = down.url
    httpx.get(f"{url}/vehicles?token={READ}")
    assert httpx.get(f"{url}/vehicles?token={WRITE}").status_code == 401
    httpx.post(f"{url}/step?token={WRITE}", json={"samples": []})
    httpx.get(f"{url}/vehicles", headers={"Authorization": f"Bearer {WRITE}"})
    with pytest.raises(ConnectionClosed):
        with connect(ws_url(url, f"/ws/fleet?token={READ}"), open_timeout=10) as ws:
            ws.recv(10)
    needles = (
        '"GET /vehicles?token=*** HTTP/1.1" 503',
        '"GET /vehicles?token=*** HTTP/1.1" 401',
        '"POST /step?token=*** HTTP/1.1" 401',
        '"WebSocket /ws/fleet?token=***"',
        f"redis://:***@127.0.0.1:{down.redis_port}/0",  # the hub URL of the start-up line
    )
    text = wait_for_log(down.service, *needles)
    for needle in needles:
        assert needle in text, text[-3000:]
    for secret in SECRETS:
        assert secret not in text, text[-3000:]


def test_store_errors_name_no_internal_host(down: Down) -> None:
    url, port = down.url, str(down.redis_port)
    auth = {"Authorization": f"Bearer {READ}"}
    replies = [
        httpx.get(f"{url}/vehicles", headers=auth),
        httpx.get(f"{url}/vehicles/ev-1", headers=auth),
        httpx.get(f"{url}/vehicles/ev-1/history", headers=auth),
        httpx.post(f"{url}/forecast", json={"vehicle_id": "ev-1"}, headers=auth),
        httpx.get(f"{url}/ready"),
    ]
    for reply in replies:
        assert reply.status_code == 503, (reply.request.url, reply.text)
        assert "127.0.0.1" not in reply.text and port not in reply.text, reply.text
        assert REDIS_PASSWORD not in reply.text
    assert replies[0].json()["detail"][0]["msg"] == "store unavailable"
    # the details are in the service's log for the operator (password redacted)
    text = wait_for_log(down.service, "store unavailable: ")
    assert f"127.0.0.1:{port}" in text and REDIS_PASSWORD not in text


def test_redaction_patterns() -> None:
    cases = {
        '127.0.0.1:5 - "GET /vehicles?limit=5&token=abc%20d HTTP/1.1" 200': (
            '127.0.0.1:5 - "GET /vehicles?limit=5&token=*** HTTP/1.1" 200'
        ),
        "GET /x?TOKEN=abc&read_key=k&api_key=w#f": "GET /x?TOKEN=***&read_key=***&api_key=***#f",
        "Authorization: Bearer s3cr3t, next": "Authorization: Bearer ***, next",
        "offered twin, twin-auth.c2VjcmV0": "offered twin, twin-auth.***",
        "hub redis://:pw@10.0.0.5:6379/0 and rediss://user:pw@r:1": (
            "hub redis://:***@10.0.0.5:6379/0 and rediss://user:***@r:1"
        ),
        "nothing secret at https://host:8008/ws/fleet?vehicle=ev-1": (
            "nothing secret at https://host:8008/ws/fleet?vehicle=ev-1"
        ),
    }
    for raw, expected in cases.items():
        assert redact(raw) == expected


def test_filter_keeps_uvicorn_access_arguments() -> None:
    """The access formatter unpacks the record's arguments: they stay a 5-tuple."""
    config = log_config("info")
    assert all(h.get("filters") == ["redact"] for h in config["handlers"].values())
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", f"/vehicles?token={READ}", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert line == '127.0.0.1:1 - "GET /vehicles?token=*** HTTP/1.1" 200 OK'
