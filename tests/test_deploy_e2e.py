"""What `docker compose up` runs, as processes: a Redis, two service replicas sharing it, nginx
in front with deploy/nginx.conf (127.0.0.1 upstreams, a free port), and a bridge on the default
drive cycle posting through nginx. WebSocket clients connected through nginx see every step in
order, whichever replica computed it.

Needs redis-server and nginx (apt-get install -y redis-server nginx): skipped locally without
them, failed in CI.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.deploy import start_nginx, tool
from support.processes import REPO_ROOT, RedisServer, ServiceProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BATCH = 100  # samples per POST /step: one UDDS pass (1369 samples) is 14 steps
BRIDGE_TIMEOUT_S = 120.0


class Listener:
    """A WebSocket client that drains its socket in a thread (never a slow client)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[dict[str, Any]] = []
        self.closed: str | None = None
        self._ws: ClientConnection | None = None
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._open.wait(10) or self._ws is None:
            raise AssertionError(f"{url}: could not connect ({self.closed})")

    def _run(self) -> None:
        try:
            with connect(self.url, open_timeout=10) as ws:
                self._ws = ws
                self._open.set()
                for text in ws:
                    self.messages.append(json.loads(text))
            self.closed = "closed"
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            self.closed = f"{type(exc).__name__}: {exc}"
        finally:
            self._open.set()

    def wait_for_rev(self, rev: int, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.messages and self.messages[-1]["rev"] >= rev:
                return
            if self.closed:
                break
            time.sleep(0.02)
        raise AssertionError(
            f"{self.url}: rev {rev} not seen (closed: {self.closed}); "
            f"got {[m['rev'] for m in self.messages]}"
        )

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tool("nginx")
    workdir = tmp_path_factory.mktemp("compose-as-processes")
    replicas = [ServiceProcess(hub_url=redis_server.url, log_dir=workdir) for _ in range(2)]
    try:
        for replica in replicas:
            replica.start()
        upstreams = [f"127.0.0.1:{replica.port}" for replica in replicas]
        with start_nginx(upstreams, workdir) as nginx:
            yield {"nginx": nginx, "replicas": replicas, "workdir": workdir}
    finally:
        for replica in replicas:
            replica.stop()


def run_bridge(twin_url: str, vehicle_id: str, log_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "bridge",
        "cycle",
        "--cycle",
        "udds",
        "--fast",
        "--repeat",
        "1",
        "--demo",
        "--vehicle-id",
        vehicle_id,
        "--twin-url",
        twin_url,
        "--batch-size",
        str(BATCH),
        "--no-progress",
    ]
    result = subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=BRIDGE_TIMEOUT_S
    )
    log_path.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bridge_through_nginx_every_step_reaches_websocket_clients_in_order(
    stack: dict[str, Any],
) -> None:
    nginx, replicas = stack["nginx"], stack["replicas"]
    vehicle_id = f"e2e-{uuid.uuid4().hex[:8]}"
    ws_base = nginx.url.replace("http://", "ws://")
    # Connected before the first step: two vehicle feeds (nginx alternates their upstreams)
    # and one fleet feed.
    listeners = [Listener(f"{ws_base}/ws/vehicles/{vehicle_id}") for _ in range(2)]
    fleet = Listener(f"{ws_base}/ws/fleet")
    try:
        run_bridge(nginx.url, vehicle_id, stack["workdir"] / "bridge.log")
        # Every accepted step went through nginx, and nginx spread them over both replicas.
        upstreams = re.findall(r'"POST /step HTTP/1\.1" 200 \d+ upstream=(\S+)', nginx.log())
        assert len(upstreams) >= -(-1369 // BATCH)
        assert set(upstreams) == {f"127.0.0.1:{r.port}" for r in replicas}, upstreams

        latest = httpx.get(f"{nginx.url}/vehicles/{vehicle_id}", timeout=5).json()
        final_rev = latest["rev"]
        assert final_rev == len(upstreams)
        assert latest["state"]["elapsed_s"] == pytest.approx(1369.0)  # one UDDS pass, no gaps
        for listener in listeners:
            listener.wait_for_rev(final_rev)
            assert [m["rev"] for m in listener.messages] == list(range(1, final_rev + 1))
            assert {m["type"] for m in listener.messages[1:]} == {"state"}
            assert listener.messages[-1]["telemetry"] == latest["telemetry"]
        fleet.wait_for_rev(final_rev)
        revs = [m["rev"] for m in fleet.messages if m["telemetry"]["vehicle_id"] == vehicle_id]
        assert revs == list(range(1, final_rev + 1))

        # The store is shared: both replicas answer with the same latest state.
        for replica in replicas:
            direct = httpx.get(f"{replica.url}/vehicles/{vehicle_id}", timeout=5).json()
            assert direct["rev"] == final_rev and direct["state"] == latest["state"]

        # A client joining later starts from a snapshot of the latest rev.
        late = Listener(f"{ws_base}/ws/vehicles/{vehicle_id}")
        try:
            late.wait_for_rev(final_rev)
            assert late.messages[0]["type"] == "snapshot"
            assert late.messages[0]["rev"] == final_rev
        finally:
            late.close()
    finally:
        for listener in [*listeners, fleet]:
            listener.close()


def test_plain_requests_pass_through_nginx(stack: dict[str, Any]) -> None:
    url = stack["nginx"].url
    assert httpx.get(f"{url}/ready", timeout=5).json()["status"] == "ready"
    page = httpx.get(f"{url}/", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    error = httpx.post(f"{url}/step", json={"samples": []}, timeout=5)
    assert error.status_code == 422 and error.headers["content-type"].startswith("application/json")
