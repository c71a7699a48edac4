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
    # Vehicles heard from on the current connection; the first message of each is
    # authoritative even with a lower rev (the service restarted and lost them).
    confirmed: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------ selection

    def choose_vehicle(self) -> str | None:
        """Select the wanted vehicle, or the first known one; returns a newly selected id."""
        if self.selected is not None:
            return None
        if self.wanted_vehicle is not None:
            candidate: str | None = self.wanted_vehicle
        else:
            candidate = min(self.vehicles) if self.vehicles else None
        if candidate is None:
            return None
        self.selected = candidate
        self.soc_points.clear()
        self.power_points.clear()
        self.last_point_rev = None
        self.forecast = None
        self.forecast_note = "loading"
        return candidate

    @property
    def telemetry(self) -> dict[str, Any] | None:
        return self.vehicles.get(self.selected) if self.selected else None

    # ------------------------------------------------------------------ updates

    def new_connection(self) -> None:
        """Called when the live stream (re)connects."""
        self.confirmed.clear()

    def apply(self, message: Mapping[str, Any], now: float) -> bool:
        """Apply one live message; True when the selected vehicle skipped a rev (re-fetch it)."""
        telemetry = message.get("telemetry")
        if not isinstance(telemetry, Mapping) or "vehicle_id" not in telemetry:
            return False
        vehicle_id = str(telemetry["vehicle_id"])
        rev = message.get("rev", telemetry.get("rev"))
        previous = self.vehicles.get(vehicle_id)
        last_rev = previous.get("rev") if previous else None
        gap = False
        authoritative = message.get("type") == "snapshot" or vehicle_id not in self.confirmed
        self.confirmed.add(vehicle_id)
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
