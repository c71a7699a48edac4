"""What the terminal dashboard knows: latest telemetry per vehicle, the selected vehicle's recent
points, the forecast and the connection. Pure data and rules; no I/O, so it is tested directly."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# Points kept for the sparklines (one per accepted step of the selected vehicle).
SPARK_POINTS = 240
# A vehicle that has not stepped for this long is shown as idle rather than running.
STALE_AFTER_S = 30.0

Connection = Literal["connecting", "live", "reconnecting", "unauthorized", "unavailable", "offline"]
# The live streams: /ws/fleet, and /ws/vehicles/{id} of the selected vehicle.
Feed = Literal["fleet", "vehicle"]


@dataclass
class DashboardState:
    """The dashboard's model. Times are wall-clock seconds (``time.time()``)."""

    twin_url: str
    wanted_vehicle: str | None = None
    vehicles: dict[str, dict[str, Any]] = field(default_factory=dict)
    received_at: dict[str, float] = field(default_factory=dict)
    selected: str | None = None
    soc_points: deque[float] = field(default_factory=lambda: deque(maxlen=SPARK_POINTS))
    power_points: deque[float] = field(default_factory=lambda: deque(maxlen=SPARK_POINTS))
    last_point_rev: int | None = None
    forecast: dict[str, Any] | None = None
    forecast_note: str = "waiting for data"
    connection: Connection = "connecting"
    retry_at: float | None = None
    error: str | None = None
    # (feed, vehicle) pairs heard from on the feeds' current connections; the first message of
    # each is authoritative even with a lower rev (the service restarted and lost them).
    confirmed: set[tuple[Feed, str]] = field(default_factory=set)
    # Whether the keys work (a terminal or --keys-from-stdin): the footer names them.
    keys_enabled: bool = False

    # ------------------------------------------------------------------ selection

    def choose_vehicle(self) -> str | None:
        """Select the wanted vehicle, or the first one heard of; returns a newly selected id."""
        if self.selected is not None:
            return None
        if self.wanted_vehicle is not None:
            candidate: str | None = self.wanted_vehicle
        else:
            candidate = next(iter(self.vehicles), None)
        if candidate is None:
            return None
        self.select(candidate)
        return candidate

    def select(self, vehicle_id: str) -> bool:
        """Show ``vehicle_id`` from now on; False when it already is the selected one."""
        if vehicle_id == self.selected:
            return False
        self.selected = vehicle_id
        self.soc_points.clear()
        self.power_points.clear()
        self.last_point_rev = None
        self.forecast = None
        self.forecast_note = "loading"
        return True

    def vehicle_order(self) -> list[str]:
        """The vehicles the keys step through: every known one and the selected one, by id."""
        ids = set(self.vehicles)
        if self.selected is not None:
            ids.add(self.selected)
        return sorted(ids)

    def neighbour(self, step: int) -> str | None:
        """The vehicle ``step`` places after the selected one in :meth:`vehicle_order`, wrapping
        around (negative: before it); None when there is no other vehicle to go to."""
        order = self.vehicle_order()
        if not order or step == 0:
            return None
        if self.selected is None:
            return order[0] if step > 0 else order[-1]
        target = order[(order.index(self.selected) + step) % len(order)]
        return None if target == self.selected else target

    def position(self) -> tuple[int, int] | None:
        """(1-based place of the selected vehicle in :meth:`vehicle_order`, how many there are)."""
        if self.selected is None:
            return None
        order = self.vehicle_order()
        return order.index(self.selected) + 1, len(order)

    @property
    def telemetry(self) -> dict[str, Any] | None:
        return self.vehicles.get(self.selected) if self.selected else None

    # ------------------------------------------------------------------ updates

    def new_connection(self, feed: Feed = "fleet") -> None:
        """Called when a live stream (re)connects."""
        self.confirmed = {pair for pair in self.confirmed if pair[0] != feed}

    def apply(self, message: Mapping[str, Any], now: float, feed: Feed = "fleet") -> bool:
        """Apply one message of ``feed``; True when the selected vehicle skipped a rev (re-fetch
        it)."""
        telemetry = message.get("telemetry")
        if not isinstance(telemetry, Mapping) or "vehicle_id" not in telemetry:
            return False
        vehicle_id = str(telemetry["vehicle_id"])
        rev = message.get("rev", telemetry.get("rev"))
        previous = self.vehicles.get(vehicle_id)
        last_rev = previous.get("rev") if previous else None
        gap = False
        authoritative = (
            message.get("type") == "snapshot" or (feed, vehicle_id) not in self.confirmed
        )
        self.confirmed.add((feed, vehicle_id))
        if isinstance(rev, int) and isinstance(last_rev, int):
            if rev <= last_rev and not authoritative:
                return False  # a duplicate
            gap = rev > last_rev + 1
            if rev < last_rev and vehicle_id == self.selected:
                # An older snapshot: the service lost this vehicle (restart with memory store).
                self.soc_points.clear()
                self.power_points.clear()
                self.last_point_rev = None
                gap = True
        record = dict(telemetry)
        if isinstance(rev, int):
            record["rev"] = rev
        self.vehicles[vehicle_id] = record
        # A snapshot may be old (the vehicle stopped reporting); a state message is news.
        sent = _timestamp(record) if message.get("type") == "snapshot" else None
        self.received_at[vehicle_id] = min(sent, now) if sent is not None else now
        if vehicle_id == self.selected:
            self._add_point(record)
            return gap
        return False

    def load_fleet(self, records: Iterable[Mapping[str, Any]], now: float) -> None:
        """Telemetry from ``GET /vehicles``; older than what the stream already gave is ignored."""
        for record in records:
            vehicle_id = str(record["vehicle_id"])
            known = self.vehicles.get(vehicle_id)
            if known and _rev(known) is not None and _rev(record) is not None:
                if _rev(record) < _rev(known):  # type: ignore[operator]
                    continue
            self.vehicles[vehicle_id] = dict(record)
            self.received_at.setdefault(vehicle_id, _timestamp(record) or now)

    def load_history(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Recent telemetry of the selected vehicle (oldest first) for the sparklines."""
        self.soc_points.clear()
        self.power_points.clear()
        self.last_point_rev = None
        for record in records:
            self._add_point(record)
        current = self.telemetry
        if current is not None:
            self._add_point(current)

    def load_snapshot(self, snapshot: Mapping[str, Any], now: float) -> None:
        """``GET /vehicles/{id}`` after a gap: the newest state wins."""
        telemetry = snapshot.get("telemetry")
        if not isinstance(telemetry, Mapping):
            return
        record = dict(telemetry)
        if isinstance(snapshot.get("rev"), int):
            record["rev"] = snapshot["rev"]
        vehicle_id = str(record.get("vehicle_id", snapshot.get("vehicle_id")))
        record["vehicle_id"] = vehicle_id
        known = self.vehicles.get(vehicle_id)
        if known and _rev(known) is not None and _rev(record) is not None:
            if _rev(record) < _rev(known):  # type: ignore[operator]
                return
        self.vehicles[vehicle_id] = record
        self.received_at[vehicle_id] = _timestamp(record) or now
        if vehicle_id == self.selected:
            self._add_point(record)

    def set_forecast(self, forecast: Mapping[str, Any] | None, note: str) -> None:
        self.forecast = dict(forecast) if forecast is not None else None
        self.forecast_note = note

    def _add_point(self, record: Mapping[str, Any]) -> None:
        rev = _rev(record)
        if rev is not None and self.last_point_rev is not None and rev <= self.last_point_rev:
            return
        if rev is not None:
            self.last_point_rev = rev
        if isinstance(record.get("soc"), int | float):
            self.soc_points.append(float(record["soc"]))
        if isinstance(record.get("power_kw"), int | float):
            self.power_points.append(float(record["power_kw"]))

    # ------------------------------------------------------------------ derived

    def age_s(self, vehicle_id: str, now: float) -> float | None:
        received = self.received_at.get(vehicle_id)
        return None if received is None else max(0.0, now - received)

    def running_label(self, vehicle_id: str, now: float) -> str:
        telemetry = self.vehicles.get(vehicle_id) or {}
        if telemetry.get("simulation_running") is False:
            return "stopped"
        age = self.age_s(vehicle_id, now)
        return "idle" if age is not None and age > STALE_AFTER_S else "running"


def _rev(record: Mapping[str, Any]) -> int | None:
    rev = record.get("rev")
    return rev if isinstance(rev, int) else None


def _timestamp(record: Mapping[str, Any]) -> float | None:
    """The record's ISO timestamp as epoch seconds (None when absent or unreadable)."""
    value = record.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
