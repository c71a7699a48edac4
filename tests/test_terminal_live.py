"""The terminal dashboard's live behaviour: rev gaps, duplicates, reconnects, a service restart;
then end to end against a real service process, in-process and as `python -m clients.terminal`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from support.processes import start_service

from clients.python import AsyncTwinClient, TwinAuthError, TwinConnectionError, TwinNotFound
from clients.terminal import app as terminal_app
from clients.terminal.app import TerminalDashboard, close_code, telemetry_records
from clients.terminal.render import render_dashboard
from clients.terminal.state import DashboardState

REPO_ROOT = Path(__file__).resolve().parents[1]


def telemetry(vehicle_id: str, rev: int, **extra: Any) -> dict[str, Any]:
    return {"vehicle_id": vehicle_id, "rev": rev, "soc": 80.0 - rev, "power_kw": 10.0, **extra}


def message(vehicle_id: str, rev: int, kind: str = "state") -> dict[str, Any]:
    return {"type": kind, "rev": rev, "telemetry": telemetry(vehicle_id, rev)}


# ---------------------------------------------------------------------------- state rules


def test_state_follows_revs_and_reports_gaps_of_the_selected_vehicle() -> None:
    state = DashboardState(twin_url="http://x", wanted_vehicle="a")
    state.new_connection()
    assert state.apply(message("a", 1, "snapshot"), 0.0) is False
    assert state.choose_vehicle() == "a"
    assert state.apply(message("a", 2), 1.0) is False
    assert state.apply(message("a", 2), 1.5) is False  # duplicate: ignored
    assert state.vehicles["a"]["rev"] == 2
    assert state.apply(message("a", 5), 2.0) is True  # 3 and 4 were missed
    assert state.apply(message("b", 1), 2.0) is False
    assert state.apply(message("b", 9), 2.0) is False  # gaps of other vehicles do not matter
    assert state.vehicles["b"]["rev"] == 9
    assert list(state.soc_points) == [78.0, 75.0]  # from the selection on
    assert state.age_s("a", 12.0) == 10.0
    assert state.running_label("a", 12.0) == "running"
    assert state.running_label("a", 100.0) == "idle"


def test_after_a_restart_the_first_message_of_the_new_connection_wins() -> None:
    state = DashboardState(twin_url="http://x")
    state.new_connection()
    state.apply(message("a", 40), 0.0)
    state.choose_vehicle()
    state.new_connection()  # the service restarted with an empty memory store
    assert state.apply(message("a", 1), 1.0) is True  # re-fetch: the history is gone too
    assert state.vehicles["a"]["rev"] == 1
    assert state.apply(message("a", 2), 2.0) is False
    assert list(state.soc_points) == [79.0, 78.0]


def test_fleet_and_snapshot_loading_never_go_back_in_rev() -> None:
    state = DashboardState(twin_url="http://x")
    state.apply(message("a", 7), 0.0)
    state.load_fleet([telemetry("a", 5), telemetry("b", 2)], 1.0)
    assert state.vehicles["a"]["rev"] == 7 and state.vehicles["b"]["rev"] == 2
    state.load_snapshot({"vehicle_id": "a", "rev": 6, "telemetry": telemetry("a", 6)}, 2.0)
    assert state.vehicles["a"]["rev"] == 7
    state.load_snapshot({"vehicle_id": "a", "rev": 9, "telemetry": telemetry("a", 9)}, 2.0)
    assert state.vehicles["a"]["rev"] == 9


def test_telemetry_records_accepts_the_usual_shapes() -> None:
    record = telemetry("a", 1)
    assert telemetry_records([record]) == [record]
    assert telemetry_records({"a": record}) == [record]
    assert telemetry_records({"vehicles": [{"telemetry": record}]}) == [record]
    assert telemetry_records(None) == []


def test_close_code_is_found_behind_the_client_error() -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.frames import Close

    closed = ConnectionClosedError(Close(1008, "unauthorized"), None)
    try:
        raise TwinConnectionError("lost") from closed
    except TwinConnectionError as exc:
        assert close_code(exc) == 1008
    assert close_code(TwinConnectionError("refused")) is None


# ---------------------------------------------------------------------------- fake source


class FakeSource:
    """Scripted connections: each is an exception to raise or a list of messages to yield,
    ``pause_s`` apart (after which the connection stays open until the test ends)."""

    def __init__(
        self,
        connections: list[Any],
        pause_s: float = 0.0,
    ) -> None:
        self.connections = connections
        self.pause_s = pause_s
        self.latest: dict[str, Any] | None = None  # the service's newest message
        self.calls: list[str] = []
        self.hold = asyncio.Event()

    async def subscribe(self, vehicle_id: str | None = None, *, reconnect: bool = True):
        assert vehicle_id is None and reconnect is False
        self.calls.append("subscribe")
        step = self.connections.pop(0) if self.connections else []
        if isinstance(step, BaseException):
            raise step
        for item in step:
            self.latest = item
            yield item
            await asyncio.sleep(self.pause_s)
        await self.hold.wait()

    async def vehicles(self) -> list[dict[str, Any]]:
        self.calls.append("vehicles")
        return []

    async def vehicle(self, vehicle_id: str) -> dict[str, Any]:
        self.calls.append(f"vehicle {vehicle_id}")
        if self.latest is None:
            raise TwinNotFound(404, {"detail": []}, "GET", "/vehicles/x")
        return {"vehicle_id": vehicle_id, **self.latest}

    async def history(self, vehicle_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        self.calls.append(f"history {vehicle_id}")
        newest = self.latest["rev"] if self.latest else 0
        return [telemetry(vehicle_id, rev) for rev in range(1, newest + 1)]

    async def forecast(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("forecast")
        return {"fade_pct_per_year": 1.5, "soh_in_2_years": 97.0, "years_to_80": 12.0}


async def wait_until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal_app, "BACKOFF_FIRST_S", 0.01)
    monkeypatch.setattr(terminal_app, "UNAUTHORIZED_RETRY_S", 0.05)


@contextlib.asynccontextmanager
async def running(source: FakeSource, state: DashboardState) -> AsyncIterator[Any]:
    dashboard = TerminalDashboard(source, state)
    tasks = [asyncio.create_task(dashboard.listen()), asyncio.create_task(dashboard.forecasts())]
    try:
        yield dashboard
    finally:
        source.hold.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_rev_gap_refetches_the_vehicle_and_its_history(fast_backoff: None) -> None:
    source = FakeSource(
        [[message("a", 1, "snapshot"), message("a", 2), message("a", 7)]], pause_s=0.1
    )
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: source.calls.count("vehicle a") >= 2)
        await wait_until(lambda: state.forecast is not None)
        assert state.selected == "a" and state.connection == "live"
        assert state.vehicles["a"]["rev"] == 7
        assert source.calls.count("history a") >= 2  # on selection, and after the gap
        await wait_until(lambda: len(state.soc_points) == 7)


async def test_reconnects_with_backoff_and_shows_it(fast_backoff: None) -> None:
    source = FakeSource(
        [TwinConnectionError("refused"), TwinConnectionError("refused"), [message("a", 3)]]
    )
    state = DashboardState(twin_url="http://x")
    seen: set[str] = set()
    async with running(source, state):
        await wait_until(lambda: (seen.add(state.connection), "a" in state.vehicles)[1])
        assert source.calls.count("subscribe") == 3
        assert "reconnecting" in seen
        await wait_until(lambda: state.connection == "live")
        assert state.error is None


async def test_a_missing_read_key_is_reported(fast_backoff: None) -> None:
    source = FakeSource([TwinAuthError(401, {"detail": []}, "GET", "/ws/fleet")])
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: state.connection == "unauthorized")
        text = render_text(state)
        assert "read key needed" in text


def render_text(state: DashboardState, width: int = 100) -> str:
    console = Console(width=width, record=True, no_color=True, file=io.StringIO())
    console.print(render_dashboard(state, time.time(), width))
    return console.export_text()


# ---------------------------------------------------------------------------- real service


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with start_service() as url:
        yield url


async def test_follows_a_real_service(service: str) -> None:
    state = DashboardState(twin_url=service, wanted_vehicle="term-1")
    async with AsyncTwinClient(service) as client:
        dashboard = TerminalDashboard(client, state)
        task = asyncio.create_task(dashboard.listen())
        try:
            await wait_until(lambda: state.connection == "live", 10)
            reply = await client.step([{"dt_s": 5.0, "power_kw": 30.0}], vehicle_id="term-1")
            await wait_until(lambda: state.vehicles.get("term-1", {}).get("rev") == reply["rev"])
            reply = await client.step(
                [{"dt_s": 5.0, "power_kw": -20.0}], vehicle_id="term-1", state=reply["state"]
            )
            await wait_until(lambda: state.vehicles["term-1"].get("rev") == reply["rev"])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    text = render_text(state)
    assert f"{reply['telemetry']['soc']:.1f} %" in text
    assert "◀ REGEN" in text
    assert "● live" in text


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run(
        [sys.executable, "-m", "clients.terminal", *args],
        cwd=REPO_ROOT,
        env={**base, "COLUMNS": "100", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_command_line_once(service: str) -> None:
    import httpx

    reply = httpx.post(
        f"{service}/step",
        json={"vehicle_id": "term-cli", "samples": [{"dt_s": 10.0, "power_kw": 45.0}]},
    ).json()
    result = run_cli("--twin-url", service, "--vehicle-id", "term-cli", "--once", "--no-color")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "EV battery twin · term-cli (sv1ev3)" in out
    assert f"{reply['telemetry']['soc']:.1f} %" in out
    assert "▶ discharge" in out
    assert "\x1b[" not in out

    forced = run_cli(
        "--twin-url", service, "--vehicle-id", "term-cli", "--once", env={"FORCE_COLOR": "1"}
    )
    assert "\x1b[3" in forced.stdout  # colours when the terminal takes them
    no_color = run_cli(
        "--twin-url",
        service,
        "--vehicle-id",
        "term-cli",
        "--once",
        env={"FORCE_COLOR": "1", "NO_COLOR": "1"},
    )
    assert "\x1b[3" not in no_color.stdout.replace("\x1b[3m", "")  # NO_COLOR is honoured
    assert "term-cli" in no_color.stdout


def test_command_line_reports_an_unreachable_service() -> None:
    result = run_cli("--twin-url", "http://127.0.0.1:9", "--once", "--no-color")
    assert result.returncode == 1
    assert "cannot reach the service" in result.stdout


def test_refresh_interval_is_bounded() -> None:
    result = run_cli("--refresh", "0.1", "--once")
    assert result.returncode == 2
    assert "between 0.5 and 5" in result.stderr
