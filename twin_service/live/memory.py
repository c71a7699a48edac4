"""In-process hub and store (one service process, zero setup)."""

from __future__ import annotations

from typing import Any

from twin_service.live.base import DEFAULT_HISTORY_LIMIT, encode_message
from twin_service.live.fanout import Fanout, Subscriber
from twin_service.live.history import BoundedHistory
from twin_service.metrics import Metrics
from twin_service.settings import Settings


class MemoryLive:
    """Snapshots, histories and fan-out in this process. `commit` never awaits, so it is atomic
    on the event loop: revs are assigned and published in order without a lock."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.fanout = Fanout(settings.ws_queue_size, settings.ws_lag_timeout_s, self.metrics)
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._histories: dict[str, BoundedHistory] = {}

    async def start(self) -> None:
        self.fanout.start()
        self.metrics.hub_up.set(1)

    async def close(self) -> None:
        await self.fanout.close()

    async def ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"hub": "memory", "hub_up": True}

    async def commit(
        self, vehicle_id: str, state: dict[str, Any], telemetry: dict[str, Any]
    ) -> int:
        prev = self._snapshots.get(vehicle_id)
        rev = (prev["rev"] if prev else 0) + 1
        telemetry["rev"] = rev
        self._snapshots[vehicle_id] = {
            "vehicle_id": vehicle_id,
            "rev": rev,
            "state": state,
            "telemetry": telemetry,
        }
        history = self._histories.get(vehicle_id)
        if history is None:
            history = BoundedHistory(self.settings.history_recent, self.settings.history_tail)
            self._histories[vehicle_id] = history
        history.append(telemetry)
        self.metrics.messages.inc()
        self.fanout.publish(encode_message("state", vehicle_id, rev, telemetry))
        return rev

    async def snapshot(self, vehicle_id: str) -> dict[str, Any] | None:
        return self._snapshots.get(vehicle_id)

    async def latest(self, vehicle_id: str | None) -> list[dict[str, Any]]:
        if vehicle_id is not None:
            snap = self._snapshots.get(vehicle_id)
            return [snap["telemetry"]] if snap else []
        return [self._snapshots[v]["telemetry"] for v in sorted(self._snapshots)]

    async def history(
        self, vehicle_id: str, limit: int = DEFAULT_HISTORY_LIMIT
    ) -> list[dict[str, Any]]:
        history = self._histories.get(vehicle_id)
        return history.latest(limit) if history else []

    def subscribe(self, vehicle_id: str | None) -> Subscriber:
        return self.fanout.subscribe(vehicle_id)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.fanout.unsubscribe(sub)
