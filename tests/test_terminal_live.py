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
    """Scripted feeds: ``connections`` are the fleet feed's, ``vehicle_feeds`` each vehicle's;
    each connection is an exception to raise or a list of messages to yield, ``pause_s`` apart
    (after which it stays open until the test ends). ``recent`` is what order=recent lists."""

    def __init__(
        self,
        connections: list[Any],
        pause_s: float = 0.0,
        vehicle_feeds: dict[str, list[Any]] | None = None,
        recent: list[str] | None = None,
    ) -> None:
        self.connections = connections
        self.vehicle_feeds = vehicle_feeds or {}
        self.pause_s = pause_s
        self.recent_ids = recent or []
        self.latest: dict[str, dict[str, Any]] = {}  # the service's newest message per vehicle
        self.calls: list[str] = []
        self.hold = asyncio.Event()

    async def subscribe(self, vehicle_id: str | None = None, *, reconnect: bool = True):
        assert reconnect is False
        self.calls.append("subscribe" if vehicle_id is None else f"subscribe {vehicle_id}")
        script = self.connections if vehicle_id is None else self.vehicle_feeds.get(vehicle_id, [])
        step = script.pop(0) if script else []
        if isinstance(step, BaseException):
            raise step
        for item in step:
            self.latest[item["telemetry"]["vehicle_id"]] = item
            yield item
            await asyncio.sleep(self.pause_s)
        await self.hold.wait()

    async def vehicles(self) -> list[dict[str, Any]]:
        self.calls.append("vehicles")
        return [item["telemetry"] for item in self.latest.values()]

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        self.calls.append("recent")
        return [telemetry(vehicle_id, 1) for vehicle_id in self.recent_ids[:limit]]

    async def vehicle(self, vehicle_id: str) -> dict[str, Any]:
        self.calls.append(f"vehicle {vehicle_id}")
        if vehicle_id not in self.latest:
            raise TwinNotFound(404, {"detail": []}, "GET", "/vehicles/x")
        return {"vehicle_id": vehicle_id, **self.latest[vehicle_id]}

    async def history(self, vehicle_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        self.calls.append(f"history {vehicle_id}")
        newest = self.latest[vehicle_id]["rev"] if vehicle_id in self.latest else 0
        return [telemetry(vehicle_id, rev) for rev in range(1, newest + 1)]

    async def forecast(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"forecast {kwargs['vehicle_id']}")
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
async def running(source: Any, state: DashboardState) -> AsyncIterator[TerminalDashboard]:
    dashboard = TerminalDashboard(source, state)
    tasks = [asyncio.create_task(coroutine) for coroutine in dashboard.tasks()]
    try:
        yield dashboard
    finally:
        if isinstance(source, FakeSource):
            source.hold.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_rev_gap_refetches_the_vehicle_and_its_history(fast_backoff: None) -> None:
    source = FakeSource(
        [[message("a", 1, "snapshot")]],
        pause_s=0.1,
        vehicle_feeds={"a": [[message("a", 1, "snapshot"), message("a", 2), message("a", 7)]]},
    )
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: source.calls.count("vehicle a") >= 2)
        await wait_until(lambda: state.forecast is not None)
        assert state.selected == "a" and state.connection == "live"
        assert state.vehicles["a"]["rev"] == 7
        assert source.calls.count("history a") >= 2  # on selection, and after the gap
        await wait_until(lambda: len(state.soc_points) == 7)


async def test_the_selected_vehicle_follows_its_own_feed(fast_backoff: None) -> None:
    # The fleet feed's rev 9 of the selected vehicle is left to the vehicle's feed, which has
    # not got there: the panel shows what that feed says.
    source = FakeSource(
        [[message("a", 1, "snapshot"), message("b", 1, "snapshot"), message("a", 9)]],
        pause_s=0.05,
        vehicle_feeds={"a": [[message("a", 1, "snapshot"), message("a", 2)]]},
        recent=["a"],
    )
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: "subscribe a" in source.calls and "b" in state.vehicles)
        await wait_until(lambda: state.vehicles["a"]["rev"] == 2)
        # Sent by the fleet feed, and handled as it was yielded (nothing awaits in between).
        await wait_until(lambda: source.latest["a"]["rev"] == 9)
        assert state.vehicles["a"]["rev"] == 2
        assert source.calls.index("recent") < source.calls.index("subscribe a")


async def test_starts_on_the_most_recent_vehicle_and_switches_by_id(fast_backoff: None) -> None:
    snapshots = [message(vehicle_id, 1, "snapshot") for vehicle_id in ("a", "b", "c")]
    source = FakeSource(
        [snapshots],
        vehicle_feeds={
            vehicle_id: [[message(vehicle_id, 1, "snapshot"), message(vehicle_id, 2)]]
            for vehicle_id in ("a", "b", "c")
        },
        recent=["b"],
    )
    state = DashboardState(twin_url="http://x")
    async with running(source, state) as dashboard:
        await wait_until(lambda: state.selected == "b" and len(state.vehicles) == 3)
        await wait_until(lambda: state.forecast is not None and "subscribe b" in source.calls)
        assert [call for call in source.calls if call.startswith("subscribe ")] == ["subscribe b"]
        dashboard.step_selection(1)
        assert state.selected == "c" and state.forecast is None
        await wait_until(lambda: "subscribe c" in source.calls and "forecast c" in source.calls)
        await wait_until(lambda: state.vehicles["c"]["rev"] == 2 and state.forecast is not None)
        dashboard.step_selection(1)  # wraps around
        assert state.selected == "a"
        await wait_until(lambda: "history a" in source.calls and state.forecast is not None)
        dashboard.step_selection(-1)
        assert state.selected == "c"
        await wait_until(lambda: source.calls.count("subscribe c") == 2)
        before = source.calls.count("vehicles")
        dashboard.refresh()
        await wait_until(lambda: source.calls.count("vehicles") > before)
        await wait_until(lambda: source.calls.count("history c") >= 3)


async def test_without_vehicles_it_waits_for_the_first_one(fast_backoff: None) -> None:
    source = FakeSource([[]], recent=[])
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: "recent" in source.calls and state.connection == "live")
        assert state.selected is None
        assert "Waiting for a vehicle…" in render_text(state)
    source = FakeSource([[message("z", 4), message("m", 1)]], recent=[])
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: len(state.vehicles) == 2 and state.selected is not None)
        assert state.selected == "z"  # the first to appear, not the first by id


async def test_stale_loads_do_not_land_on_a_new_selection(fast_backoff: None) -> None:
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}

    class SlowSource(FakeSource):
        async def history(self, vehicle_id: str, limit: int | None = None) -> Any:
            self.calls.append(f"slow history {vehicle_id}")
            await gates[vehicle_id].wait()
            return await super().history(vehicle_id, limit)

        async def forecast(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(f"slow forecast {kwargs['vehicle_id']}")
            await gates[kwargs["vehicle_id"]].wait()
            return await super().forecast(**kwargs)

    source = SlowSource(
        [[message("a", 5, "snapshot"), message("b", 1, "snapshot")]],
        vehicle_feeds={"b": [[message("b", 1, "snapshot")]]},
        recent=["a"],
    )
    state = DashboardState(twin_url="http://x")
    async with running(source, state) as dashboard:
        await wait_until(
            lambda: "slow history a" in source.calls and "slow forecast a" in source.calls
        )
        dashboard.select("b")
        await wait_until(lambda: list(state.soc_points) == [79.0])  # b's feed
        gates["a"].set()  # a's history and forecast answer after the switch
        await wait_until(lambda: "history a" in source.calls and "forecast a" in source.calls)
        assert list(state.soc_points) == [79.0] and state.forecast is None
        gates["b"].set()
        await wait_until(lambda: "history b" in source.calls and state.forecast is not None)
        assert list(state.soc_points) == [79.0]


async def test_reconnects_with_backoff(fast_backoff: None) -> None:
    source = FakeSource(
        [TwinConnectionError("refused"), TwinConnectionError("refused"), [message("a", 3)]]
    )
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: "a" in state.vehicles)
        assert source.calls.count("subscribe") == 3
        await wait_until(lambda: state.connection == "live")
        assert state.error is None


async def test_a_service_never_reached_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal_app, "BACKOFF_FIRST_S", 30.0)  # stays in the retry wait
    source = FakeSource([TwinConnectionError("refused")])
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: state.connection == "offline")
        text = render_text(state)
        assert "✖ cannot reach the service at http://x (refused) · retrying in 30 s" in text


async def test_a_lost_connection_is_reconnecting_not_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(terminal_app, "BACKOFF_FIRST_S", 30.0)  # stays in the retry wait

    class DroppingSource(FakeSource):
        async def subscribe(self, vehicle_id: str | None = None, *, reconnect: bool = True):
            if vehicle_id is not None:
                async for item in super().subscribe(vehicle_id, reconnect=reconnect):
                    yield item
                return
            self.calls.append("subscribe")
            yield message("a", 1, "snapshot")
            raise TwinConnectionError("reset")

    source = DroppingSource([])
    state = DashboardState(twin_url="http://x")
    async with running(source, state):
        await wait_until(lambda: state.connection == "reconnecting")
        text = render_text(state)
        assert "○ reconnecting in 30 s" in text and "cannot reach" not in text


def test_unreachable_service_is_named_with_the_retry() -> None:
    state = DashboardState(twin_url="http://127.0.0.1:9")
    state.connection = "offline"
    state.error = terminal_app.failure_reason(TwinConnectionError("plain"))
    state.retry_at = time.time() + 4.2
    text = render_text(state)
    assert "✖ cannot reach the service at http://127.0.0.1:9 (plain) · retrying in 4 s" in text


def test_failure_reasons_are_short() -> None:
    import socket

    def chained(cause: BaseException) -> TwinConnectionError:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise TwinConnectionError(f"GET x: {inner!r}") from inner
        except TwinConnectionError as exc:
            return exc

    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    assert terminal_app.failure_reason(chained(refused)) == "connection refused"
    assert terminal_app.failure_reason(chained(socket.gaierror(-2, "x"))) == "unknown host"
    assert terminal_app.failure_reason(chained(TimeoutError())) == "timed out"
    assert terminal_app.failure_reason(TwinConnectionError("plain")) == "plain"


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
        async with running(client, state):
            await wait_until(lambda: state.connection == "live", 10)
            reply = await client.step([{"dt_s": 5.0, "power_kw": 30.0}], vehicle_id="term-1")
            await wait_until(lambda: state.vehicles.get("term-1", {}).get("rev") == reply["rev"])
            reply = await client.step(
                [{"dt_s": 5.0, "power_kw": -20.0}], vehicle_id="term-1", state=reply["state"]
            )
            await wait_until(lambda: state.vehicles["term-1"].get("rev") == reply["rev"])
            await wait_until(lambda: state.forecast is not None)
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
