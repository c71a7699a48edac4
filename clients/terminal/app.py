"""The terminal dashboard's I/O: a fleet subscription with reconnects, re-fetch on a rev gap, a
periodic forecast, and a Rich Live screen repainted at the chosen interval."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live

from clients.python import (
    AsyncTwinClient,
    TwinAuthError,
    TwinError,
    TwinHTTPError,
    TwinNotFound,
)
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
    """What the dashboard needs from the service (``AsyncTwinClient`` provides it)."""

    def subscribe(self, vehicle_id: str | None = None, *, reconnect: bool = True) -> Any: ...

    async def vehicles(self) -> Any: ...

    async def vehicle(self, vehicle_id: str) -> Any: ...

    async def history(self, vehicle_id: str, limit: int | None = None) -> Any: ...

    async def forecast(
        self, *, vehicle_id: str | None = None, years: float | None = None, **kwargs: Any
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


class TerminalDashboard:
    """Keeps a :class:`DashboardState` current from a :class:`TwinSource`."""

    def __init__(self, source: TwinSource, state: DashboardState) -> None:
        self.source = source
        self.state = state
        self._resync: asyncio.Task[None] | None = None
        self._resync_wanted = False
        self._forecast_wakeup = asyncio.Event()

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
            self.state.load_history(telemetry_records(history))
        except TwinNotFound:
            pass  # not reported yet; the stream brings it when it does
        except TwinError as exc:
            logger.debug("re-fetch of %s failed: %s", vehicle_id, exc)

    def _after_change(self, *, background: bool = True) -> None:
        if self.state.choose_vehicle() is not None and background:
            self._schedule_resync()
            self._forecast_wakeup.set()

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
            self.state.new_connection()
            fleet_load = asyncio.create_task(self._load_fleet_when_connected())
            try:
                async for message in self.source.subscribe(None, reconnect=False):
                    if self.state.connection != "live":
                        self.state.connection = "live"
                        self.state.error = None
                        delay_s = BACKOFF_FIRST_S
                    if self.state.apply(message, time.time()):
                        self._schedule_resync()
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
                self.state.error = str(exc)
                wait_s = delay_s
                if close_code(exc) == CLOSE_POLICY_VIOLATION:
                    self.state.connection = "unauthorized"
                    wait_s = UNAUTHORIZED_RETRY_S
            finally:
                fleet_load.cancel()
            if self.state.connection not in ("unauthorized", "unavailable"):
                self.state.connection = "reconnecting"
            self.state.retry_at = time.time() + wait_s
            await asyncio.sleep(wait_s)
            delay_s = min(BACKOFF_MAX_S, delay_s * 2)

    async def _load_fleet_when_connected(self) -> None:
        """GET /vehicles once per connection; its success also shows the service is up."""
        try:
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

    async def refresh_forecast(self) -> None:
        vehicle_id = self.state.selected
        if vehicle_id is None:
            return
        try:
            forecast = await self.source.forecast(vehicle_id=vehicle_id, years=FORECAST_YEARS)
            self.state.set_forecast(forecast, f"{FORECAST_YEARS}-year horizon")
        except TwinHTTPError as exc:
            self.state.set_forecast(None, f"unavailable: HTTP {exc.status_code}")
        except TwinError:
            self.state.set_forecast(None, "unavailable")

    async def forecasts(self) -> None:
        """The forecast of the selected vehicle, now and every FORECAST_EVERY_S."""
        while True:
            await self.refresh_forecast()
            self._forecast_wakeup.clear()
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and this task would then outlive the dashboard.
            wakeup = asyncio.create_task(self._forecast_wakeup.wait())
            try:
                await asyncio.wait({wakeup}, timeout=FORECAST_EVERY_S)
            finally:
                wakeup.cancel()


async def run_live(
    source: TwinSource, state: DashboardState, console: Console, refresh_s: float
) -> None:
    """Run until cancelled (Ctrl-C), repainting every ``refresh_s`` seconds."""
    dashboard = TerminalDashboard(source, state)
    tasks = [asyncio.create_task(dashboard.listen()), asyncio.create_task(dashboard.forecasts())]
    try:
        with Live(
            render_dashboard(state, time.time(), console.width),
            console=console,
            auto_refresh=False,
            screen=console.is_terminal,
            transient=False,
        ) as live:
            while True:
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                live.update(render_dashboard(state, time.time(), console.width), refresh=True)
                await asyncio.sleep(refresh_s)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_once(source: TwinSource, state: DashboardState, console: Console) -> int:
    """Fetch once, print one screen, return an exit status (1 when the service is unreachable)."""
    dashboard = TerminalDashboard(source, state)
    try:
        await dashboard.load_fleet(background=False)
    except TwinAuthError as exc:
        state.connection = "unauthorized"
        state.error = str(exc)
    except TwinError as exc:
        state.connection = "offline"
        state.error = str(exc)
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
