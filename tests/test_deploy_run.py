"""scripts/run_demo.py (what `make run` calls): the service and a demo bridge start together,
the dashboard URL is printed, data flows, and Ctrl-C or SIGTERM stops both with no orphans."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.processes import REPO_ROOT, free_port
from websockets.sync.client import connect

pytestmark = pytest.mark.slow

RUNNER = REPO_ROOT / "scripts" / "run_demo.py"
STOP_TIMEOUT_S = 30.0


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("needs Linux /proc to see the runner's children")
    return [int(p) for p in path.read_text().split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


class Runner:
    def __init__(self, port: int, log_path: Path, *extra: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        with open(log_path, "wb") as log:
            # A session of its own, like a terminal's foreground job: Ctrl-C goes to its group.
            self.process = subprocess.Popen(
                [sys.executable, str(RUNNER), "--port", str(port), "--speedup", "100", *extra],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"runner exited ({self.process.returncode}):\n{self.log()}")
            with contextlib.suppress(httpx.TransportError, KeyError, ValueError):
                if check():
                    return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()}")

    def rev(self) -> int:
        response = httpx.get(f"{self.url}/vehicles/ev-1", timeout=2)
        return response.json()["rev"] if response.status_code == 200 else 0

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    started = Runner(free_port(), tmp_path / "run.log")
    try:
        yield started
    finally:
        started.kill()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("how", ["ctrl-c to the group", "sigterm to the runner"])
def test_run_starts_both_and_stops_cleanly(runner: Runner, how: str) -> None:
    runner.wait_for(lambda: f"dashboard  {runner.url}/" in runner.log(), "the dashboard URL")
    assert "bridge not available" not in runner.log()
    runner.wait_for(lambda: runner.rev() >= 3, "the bridge's steps")
    assert httpx.get(f"{runner.url}/", timeout=5).status_code == 200
    children = children_of(runner.process.pid)
    assert len(children) == 2, children  # the service and the bridge

    with connect(f"ws://127.0.0.1:{runner.port}/ws/vehicles/ev-1") as ws:
        assert '"snapshot"' in str(ws.recv(timeout=5))  # an open WebSocket must not hang stop
        if how == "ctrl-c to the group":
            os.killpg(runner.process.pid, signal.SIGINT)
        else:
            runner.process.send_signal(signal.SIGTERM)
        code = runner.process.wait(STOP_TIMEOUT_S)

    log = runner.log()
    assert code == 0, log
    assert "run: stopped" in log
    assert "run: killing" not in log  # both stopped on their own, the bridge after flushing
    assert not [pid for pid in children if alive(pid)], "orphaned children"
    assert port_free(runner.port)


def test_run_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(RUNNER), "--port", str(port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "make run PORT=" in result.stderr


def test_run_stops_the_bridge_when_the_service_dies(runner: Runner) -> None:
    runner.wait_for(lambda: runner.rev() >= 1, "the bridge's steps")
    service, bridge = children_of(runner.process.pid)
    os.kill(service, signal.SIGKILL)
    code = runner.process.wait(STOP_TIMEOUT_S)
    assert code != 0
    assert "twin service exited" in runner.log()
    assert not alive(bridge)
