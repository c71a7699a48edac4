"""In-process hub and store (one service process, zero setup)."""

from __future__ import annotations

import bisect
import logging
from datetime import datetime
from typing import Any

from twin_service.live.base import DEFAULT_HISTORY_LIMIT, CatchUp, Committed, RevConflict
from twin_service.live.fanout import Fanout, InOrder, Message, Subscriber
from twin_service.live.history import BoundedHistory, bucketize, in_range, snapshot_at
from twin_service.metrics import Metrics
from twin_service.settings import Settings

log = logging.getLogger(__name__)


class MemoryHub:
    """Publishing is handing the message to this process's fan-out."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.fanout = Fanout(settings.ws_queue_size, settings.ws_lag_timeout_s, self.metrics)
        self.catch_up: CatchUp | None = None  # never disconnected: nothing to catch up
        self._order = InOrder(self.fanout, self.metrics)

    async def start(self) -> None:
        self.fanout.start()
        self.metrics.hub_up.set(1)

    def known_rev(self, vehicle_id: str) -> int:
        return self._order.known_rev(vehicle_id)

    async def close(self) -> None:
        await self.fanout.close()

    async def publish(self, message: Message, first: bool = False) -> None:
        self._order.deliver(message, first)

    async def ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"hub": "memory", "hub_up": True}

    def subscribe(self, vehicle_id: str | None) -> Subscriber:
        return self.fanout.subscribe(vehicle_id)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.fanout.unsubscribe(sub)


class MemoryStore:
    """Snapshots and histories in this process. `commit` never awaits, so it is atomic on the
    event loop: the rev check and the rev happen in order without a lock.

    At most `settings.max_vehicles` vehicles are kept: the least recently updated one is
    dropped first (counted in twin_store_evicted_vehicles_total). `_snapshots` is kept in
    update order (oldest first) and `_ids` sorted, for GET /vehicles pages."""

    durable = False

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._histories: dict[str, BoundedHistory] = {}
        self._ids: list[str] = []

    async def start(self) -> None:
        self.metrics.store_up.set(1)

    async def close(self) -> None:
        pass

    async def ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"store": "memory", "store_up": True}

    async def commit(
        self,
        vehicle_id: str,
        state: dict[str, Any],
        telemetry: dict[str, Any],
        expect_rev: int | None = None,
        floor_rev: int = 0,
    ) -> Committed:
        prev = self._snapshots.get(vehicle_id)
        stored = prev["rev"] if prev else 0
        if expect_rev is not None and stored > 0 and expect_rev != stored:
            raise RevConflict(vehicle_id, stored, expect_rev)
        rev = max(stored, expect_rev or 0, floor_rev) + 1
        state["rev"] = rev
        telemetry["rev"] = rev
        self._snapshots.pop(vehicle_id, None)  # re-inserted last: the update order
        self._snapshots[vehicle_id] = {
            "vehicle_id": vehicle_id,
            "rev": rev,
            "state": state,
            "telemetry": telemetry,
        }
        history = self._histories.get(vehicle_id)
        if history is None:
            history = BoundedHistory(
                self.settings.history_recent, self.settings.history_tail,
                self.settings.history_states,
            )  # fmt: skip
            self._histories[vehicle_id] = history
            bisect.insort(self._ids, vehicle_id)
            self._evict()
        history.append(telemetry, state)
        self.metrics.store_vehicles.set(len(self._snapshots))
        return Committed(rev, prev is None)

    def _evict(self) -> None:
        while len(self._snapshots) > self.settings.max_vehicles:
            oldest = next(iter(self._snapshots))
            del self._snapshots[oldest]
            del self._histories[oldest]
            del self._ids[bisect.bisect_left(self._ids, oldest)]
            self.metrics.store_evicted.inc()
            log.info("store full (%d vehicles): dropped %s", self.settings.max_vehicles, oldest)

    async def snapshot(
        self, vehicle_id: str, rev: int | None = None, at: datetime | None = None
    ) -> dict[str, Any] | None:
        current = self._snapshots.get(vehicle_id)
        history = self._histories.get(vehicle_id)
        if history is None or (rev is None and at is None):
            return current

        def find(wanted: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
            state = history.state_at(wanted)
            telemetry = history.telemetry_at(wanted)
            return None if state is None or telemetry is None else (telemetry, state)

        return snapshot_at(vehicle_id, current, rev, at, history.rev_at, find)

    async def latest(self, vehicle_id: str) -> list[dict[str, Any]]:
        snap = self._snapshots.get(vehicle_id)
        return [snap["telemetry"]] if snap else []

    async def page(self, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        start = 0 if after is None else bisect.bisect_right(self._ids, after)
        return [self._snapshots[v]["telemetry"] for v in self._ids[start : start + limit]]

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for vehicle_id in reversed(self._snapshots):
            if len(out) >= limit:
                break
            out.append(self._snapshots[vehicle_id]["telemetry"])
        return out

    async def count(self) -> int:
        return len(self._snapshots)

    async def history(
        self,
        vehicle_id: str,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        history = self._histories.get(vehicle_id)
        if history is None or limit <= 0:
            return []
        if since is None and until is None:
            return history.latest(limit)
        return in_range(history.all(), since, until)[-limit:]

    async def buckets(
        self,
        vehicle_id: str,
        every_s: float,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        history = self._histories.get(vehicle_id)
        if history is None or limit <= 0:
            return []
        return bucketize(vehicle_id, in_range(history.all(), since, until), every_s)[-limit:]
