"""The terminal dashboard's I/O: the fleet feed and the selected vehicle's feed with reconnects,
re-fetch on a rev gap, a periodic forecast, keys, and a Rich Live screen repainted at the chosen
interval."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live

from clients.python import (
    AsyncTwinClient,
    TwinAuthError,
    TwinConnectionError,
    TwinError,
    TwinHTTPError,
    TwinNotFound,
    TwinSubscriptionRefused,
)
from clients.terminal.keys import Action, KeyReader
from clients.terminal.render import FORECAST_YEARS, render_dashboard
from clients.terminal.state import SPARK_POINTS, DashboardState

logger = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
UNAUTHORIZED_RETRY_S = 30.0
# The service closes a live stream with 1008 when the read key is missing or wrong.
CLOSE_POLICY_VIOLATION = 1008
FORECAST_EVERY_S = 20.0


class TwinSource(Protocol):
    """What the dashboard needs from the service (:class:`AsyncTwinClient` provides it)."""

    def subscribe(self, vehicle_id: str | None = None, *, reconnect: bool = True) -> Any: ...

    async def vehicles(self) -> Any: ...

    async def recent(self, limit: int) -> Any: ...

    async def vehicle(self, vehicle_id: str) -> Any: ...

    async def history(self, vehicle_id: str, limit: int | None = None) -> Any: ...

    async def forecast(
        self, *, vehicle_id: str | None = None, years: float | None = None
    ) -> Any: ...


def close_code(exc: BaseException) -> int | None:
    """The WebSocket close code behind a client error, if the server closed the socket."""
    cause: BaseException | None = exc
    while cause is not None:
        received = getattr(cause, "rcvd", None)
        if received is not None and isinstance(getattr(received, "code", None), int):
            return int(received.code)
        cause = cause.__cause__
    return None


def failure_reason(exc: BaseException) -> str:
    """A short cause of a failed connection ("connection refused"), not the exception chain."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "unknown host"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, TimeoutError):
            return "timed out"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc)


def telemetry_records(body: Any) -> list[Mapping[str, Any]]:
    """Telemetry records from a ``GET /vehicles`` body (a list, a mapping by id, or wrapped)."""
    items = body
    if isinstance(items, Mapping):
        items = items.get("vehicles", items.get("items", list(items.values())))
    if isinstance(items, Mapping):
        items = list(items.values())
    if not isinstance(items, list):
        return []
    records = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("telemetry"), Mapping):
            item = item["telemetry"]
        if isinstance(item, Mapping) and "vehicle_id" in item:
            records.append(item)
    return records


def message_vehicle(message: Mapping[str, Any]) -> str | None:
    telemetry = message.get("telemetry")
    if isinstance(telemetry, Mapping) and "vehicle_id" in telemetry:
        return str(telemetry["vehicle_id"])
    return None


class TerminalDashboard:
    """Keeps a :class:`DashboardState` current from a :class:`TwinSource`.

    The fleet feed keeps every vehicle's row current and the list the keys step through; the
    selected vehicle is followed on its own feed, resubscribed when the selection changes, and
    the fleet feed's messages about it are left to that feed.
    """

    def __init__(self, source: TwinSource, state: DashboardState) -> None:
        self.source = source
        self.state = state
        # Without --vehicle-id the dashboard starts on the most recently updated vehicle.
        self.start_pending = state.wanted_vehicle is None
        self._resync: asyncio.Task[None] | None = None
        self._resync_wanted = False
        self._refresh: asyncio.Task[None] | None = None
        self._forecast_wakeup = asyncio.Event()
        self._selection_changed = asyncio.Event()

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        """What runs while the dashboard is live."""
        return [self.listen(), self.follow_selected(), self.forecasts()]

    # ------------------------------------------------------------------ selection

    async def find_start(self, *, background: bool = True) -> None:
        """``GET /vehicles?order=recent&limit=1``: the vehicle to start on. None yet: the first
        one the fleet feed brings. A service without that query: the first by id."""
        try:
            body = await self.source.recent(1)
        except (TwinConnectionError, TwinAuthError):
            raise  # asked again on the next connection
        except TwinError as exc:
            logger.debug("GET /vehicles?order=recent failed: %s", exc)
            body = []
        records = telemetry_records(body)
        if records and self.state.wanted_vehicle is None:
            self.state.wanted_vehicle = str(records[0]["vehicle_id"])
        self.start_pending = False
        self._after_change(background=background)

    def select(self, vehicle_id: str) -> None:
        """Show ``vehicle_id``: its feed, snapshot, history and forecast."""
        self.start_pending = False
        if self.state.select(vehicle_id):
            self._on_selected()

    def step_selection(self, step: int) -> None:
        """The next (``step`` > 0) or previous vehicle by id."""
        target = self.state.neighbour(step)
        if target is not None:
            self.select(target)

    def refresh(self) -> None:
        """Fetch the fleet, the selected vehicle and its forecast again."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._refetch())

    async def _refetch(self) -> None:
        try:
            await self.load_fleet()
        except TwinError as exc:
            logger.debug("GET /vehicles failed: %s", exc)
        self._schedule_resync()
        self._forecast_wakeup.set()

    def _after_change(self, *, background: bool = True) -> None:
        if self.start_pending:
            return
        if self.state.choose_vehicle() is not None and background:
            self._on_selected()

    def _on_selected(self) -> None:
        self._selection_changed.set()
        self._schedule_resync()
        self._forecast_wakeup.set()

    # ------------------------------------------------------------------ loading

    async def load_fleet(self, *, background: bool = True) -> None:
        """GET /vehicles; selects a vehicle if none is yet (and, in the background, loads it)."""
        body = await self.source.vehicles()
        self.state.load_fleet(telemetry_records(body), time.time())
        self._after_change(background=background)

    async def load_selected(self) -> None:
        """Snapshot and recent history of the selected vehicle (on selection and on a gap)."""
        vehicle_id = self.state.selected
        if vehicle_id is None:
            return
        try:
            snapshot = await self.source.vehicle(vehicle_id)
            self.state.load_snapshot(snapshot, time.time())
            history = await self.source.history(vehicle_id, limit=SPARK_POINTS)
            if self.state.selected == vehicle_id:  # not switched away meanwhile
                self.state.load_history(telemetry_records(history))
        except TwinNotFound:
            pass  # not reported yet; the stream brings it when it does
        except TwinError as exc:
            logger.debug("re-fetch of %s failed: %s", vehicle_id, exc)

    def _schedule_resync(self) -> None:
        # A gap seen while a re-fetch is under way may postdate what it fetched: go again.
        self._resync_wanted = True
        if self._resync is None or self._resync.done():
            self._resync = asyncio.create_task(self._resync_until_current())

    async def _resync_until_current(self) -> None:
        while self._resync_wanted:
            self._resync_wanted = False
            await self.load_selected()

    # ------------------------------------------------------------------ tasks

    async def listen(self) -> None:
        """Follow /ws/fleet forever, reconnecting with backoff."""
        delay_s = BACKOFF_FIRST_S
        while True:
            self.state.connection = "connecting"
            self.state.new_connection("fleet")
            fleet_load = asyncio.create_task(self._load_fleet_when_connected())
            try:
                async for message in self.source.subscribe(None, reconnect=False):
                    if self.state.connection != "live":
                        self.state.connection = "live"
                        self.state.error = None
                        delay_s = BACKOFF_FIRST_S
                    vehicle_id = message_vehicle(message)
                    if vehicle_id is not None and vehicle_id != self.state.selected:
                        self.state.apply(message, time.time(), "fleet")
                        self._after_change()
                wait_s = delay_s
            except TwinAuthError as exc:
                self.state.connection = "unauthorized"
                self.state.error = str(exc)
                wait_s = UNAUTHORIZED_RETRY_S
            except TwinNotFound as exc:
                self.state.connection = "unavailable"
                self.state.error = str(exc)
                wait_s = UNAUTHORIZED_RETRY_S
            except TwinError as exc:
                wait_s = delay_s
                if close_code(exc) == CLOSE_POLICY_VIOLATION:
                    self.state.connection = "unauthorized"
                    self.state.error = str(exc)
                    wait_s = UNAUTHORIZED_RETRY_S
                elif self.state.connection == "connecting":  # never got through
                    self.state.connection = "offline"
                    self.state.error = failure_reason(exc)
                else:
                    self.state.error = failure_reason(exc)
            finally:
                fleet_load.cancel()
            if self.state.connection not in ("unauthorized", "unavailable", "offline"):
                self.state.connection = "reconnecting"
            self.state.retry_at = time.time() + wait_s
            await asyncio.sleep(wait_s)
            delay_s = min(BACKOFF_MAX_S, delay_s * 2)

    async def _load_fleet_when_connected(self) -> None:
        """The start vehicle (until known) and GET /vehicles, once per connection; their
        success also shows the service is up."""
        try:
            if self.start_pending:
                await self.find_start()
            await self.load_fleet()
        except TwinAuthError as exc:
            self.state.connection = "unauthorized"
            self.state.error = str(exc)
            return
        except TwinError as exc:
            logger.debug("GET /vehicles failed: %s", exc)
            return
        if self.state.connection == "connecting":
            self.state.connection = "live"
            self.state.error = None

    async def follow_selected(self) -> None:
        """Follow /ws/vehicles/{id} of the selected vehicle, resubscribing when it changes."""
        while True:
            self._selection_changed.clear()
            vehicle_id = self.state.selected
            changed = asyncio.create_task(self._selection_changed.wait())
            waiting: set[asyncio.Task[Any]] = {changed}
            if vehicle_id is not None:
                waiting.add(asyncio.create_task(self._follow_vehicle(vehicle_id)))
            try:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waiting:
                    task.cancel()
                await asyncio.wait(waiting)
            for task in done:
                if task is not changed and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def _follow_vehicle(self, vehicle_id: str) -> None:
        delay_s = BACKOFF_FIRST_S
        while True:
            self.state.new_connection("vehicle")
            try:
                async for message in self.source.subscribe(vehicle_id, reconnect=False):
                    delay_s = BACKOFF_FIRST_S
                    if message_vehicle(message) != vehicle_id:
                        continue
                    first = vehicle_id not in self.state.vehicles
                    if self.state.apply(message, time.time(), "vehicle"):
                        self._schedule_resync()
                    if first:  # it has just reported: its forecast can be had now
                        self._forecast_wakeup.set()
                wait_s = delay_s
            except (TwinAuthError, TwinNotFound, TwinSubscriptionRefused) as exc:
                logger.debug("feed of %s refused: %s", vehicle_id, exc)
                wait_s = UNAUTHORIZED_RETRY_S  # the fleet feed shows why
            except TwinError as exc:
                logger.debug("feed of %s lost: %s", vehicle_id, exc)
                wait_s = delay_s
            await asyncio.sleep(wait_s)
            delay_s = min(BACKOFF_MAX_S, delay_s * 2)

    async def refresh_forecast(self) -> None:
        vehicle_id = self.state.selected
        if vehicle_id is None:
            return
        try:
            forecast: Any = await self.source.forecast(vehicle_id=vehicle_id, years=FORECAST_YEARS)
            note = f"{FORECAST_YEARS}-year horizon"
        except TwinHTTPError as exc:
            forecast, note = None, f"unavailable: HTTP {exc.status_code}"
        except TwinError:
            forecast, note = None, "unavailable"
        if self.state.selected == vehicle_id:  # not switched away meanwhile
            self.state.set_forecast(forecast, note)

    async def forecasts(self) -> None:
        """The forecast of the selected vehicle, now, on a new selection and every
        FORECAST_EVERY_S."""
        while True:
            self._forecast_wakeup.clear()
            await self.refresh_forecast()
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and this task would then outlive the dashboard.
            wakeup = asyncio.create_task(self._forecast_wakeup.wait())
            try:
                await asyncio.wait({wakeup}, timeout=FORECAST_EVERY_S)
            finally:
                wakeup.cancel()


async def run_live(
    source: TwinSource,
    state: DashboardState,
    console: Console,
    refresh_s: float,
    *,
    key_fd: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set, q is pressed or the task is cancelled (Ctrl-C), repainting
    every ``refresh_s`` seconds and at once after a key. Keys are read from ``key_fd``."""
    dashboard = TerminalDashboard(source, state)
    stop = stop or asyncio.Event()
    repaint = asyncio.Event()

    def on_key(action: Action) -> None:
        if action == "quit":
            stop.set()
        elif action == "refresh":
            dashboard.refresh()
        else:
            dashboard.step_selection(1 if action == "next" else -1)
        repaint.set()

    keys = KeyReader(key_fd, on_key) if key_fd is not None else None
    state.keys_enabled = keys is not None
    tasks = [asyncio.create_task(coroutine) for coroutine in dashboard.tasks()]
    stopped = asyncio.create_task(stop.wait())
    try:
        with Live(
            render_dashboard(state, time.time(), console.width),
            console=console,
            auto_refresh=False,
            screen=console.is_terminal,
            transient=False,
        ) as live:
            if keys is not None and not keys.start():
                state.keys_enabled = False
            while not stop.is_set():
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                live.update(render_dashboard(state, time.time(), console.width), refresh=True)
                repaint.clear()
                repainted = asyncio.create_task(repaint.wait())
                try:
                    await asyncio.wait({repainted, stopped}, timeout=refresh_s)
                finally:
                    repainted.cancel()
    finally:
        if keys is not None:
            keys.stop()
        stopped.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(stopped, *tasks, return_exceptions=True)


async def run_once(source: TwinSource, state: DashboardState, console: Console) -> int:
    """Fetch once, print one screen, return an exit status (1 when the service is unreachable)."""
    dashboard = TerminalDashboard(source, state)
    try:
        if dashboard.start_pending:
            await dashboard.find_start(background=False)
        await dashboard.load_fleet(background=False)
    except TwinAuthError as exc:
        state.connection = "unauthorized"
        state.error = str(exc)
    except TwinError as exc:
        state.connection = "offline"
        state.error = failure_reason(exc)
        console.print(render_dashboard(state, time.time(), console.width))
        return 1
    else:
        state.connection = "live"
    if state.selected is not None:
        await dashboard.load_selected()
        await dashboard.refresh_forecast()
    console.print(render_dashboard(state, time.time(), console.width))
    return 0


def make_client(twin_url: str, read_key: str | None) -> AsyncTwinClient:
    return AsyncTwinClient(twin_url, read_key=read_key, timeout_s=10.0)
