"""scripts/run_demo.py (what `make run` calls): the service and a demo bridge start together,
the dashboard URL is printed, data flows, and Ctrl-C or SIGTERM stops both with no orphans."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.demo import RUNNER, Runner
from support.processes import REPO_ROOT, free_port
from websockets.sync.client import connect

pytestmark = pytest.mark.slow

STOP_TIMEOUT_S = 60.0  # the runner's own limits: bridge 35 s, then the service 10 s


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


def test_run_keeps_history_and_the_pack_across_a_restart(tmp_path: Path) -> None:
    """make run's SQLite store: after a restart the history is still there and the demo car
    continues from its stored pack (its rev and driven distance go on)."""
    first = Runner(free_port(), tmp_path / "run.log")
    try:
        first.wait_for(lambda: first.rev() >= 3, "the bridge's steps")
        os.killpg(first.process.pid, signal.SIGINT)
        assert first.process.wait(STOP_TIMEOUT_S) == 0, first.log()
    finally:
        first.kill()
    second = Runner(free_port(), tmp_path / "run.log")  # the same store file
    try:
        second.wait_for(lambda: second.rev() >= 1, "the service")
        history = httpx.get(f"{second.url}/vehicles/ev-1/history", timeout=5).json()
        revs = [r["rev"] for r in history]
        assert revs[:3] == [1, 2, 3] and revs == sorted(revs)
        stored_distance = history[-1]["total_distance_km"]
        assert stored_distance > 0
        second.wait_for(lambda: second.rev() > revs[-1] + 2, "steps after the restart")
        latest = httpx.get(f"{second.url}/vehicles/ev-1", timeout=5).json()["telemetry"]
        assert latest["total_distance_km"] >= stored_distance  # the same pack, driven on
        assert "409" not in second.log()
    finally:
        second.kill()
