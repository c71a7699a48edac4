"""Where accepted steps go: a store (snapshots and history) and a hub (pub/sub).

`create_live` picks them from the settings: the store from `store_url` (memory://, redis://,
postgresql://, sqlite:///path; by default the hub's URL), the hub from `hub_url` (memory:// or
redis://). `Live` is what the API uses: a commit stores the step, then publishes it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from twin_service.live.base import (
    DEFAULT_HISTORY_LIMIT,
    Hub,
    LiveUnavailable,
    Store,
    StoreUnavailable,
    encode_message,
)
from twin_service.live.fanout import Fanout, Subscriber
from twin_service.metrics import Metrics
from twin_service.settings import Settings

log = logging.getLogger(__name__)


class Live:
    """A store and a hub, as the API sees them.

    A commit goes to the store first, then to the hub. When the store is durable (SQL), a step
    it could not store raises StoreUnavailable (503) and nothing is published. When it is
    volatile (memory, Redis), the step goes through unstored and unpublished with the next rev
    this process knows (counted in twin_publish_failures_total; see live/redis.py)."""

    def __init__(
        self, store: Store, hub: Hub, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.hub = hub
        self.settings = settings
        self.metrics = metrics or Metrics()
        # Highest rev this process knows per vehicle (own commits): with what the hub saw, the
        # floor of the next commit, so revs never go back after a volatile store lost its data.
        self._known_rev: dict[str, int] = {}
        hub.catch_up = self._catch_up

    @property
    def fanout(self) -> Fanout:
        return self.hub.fanout

    async def start(self) -> None:
        await self.store.start()
        await self.hub.start()

    async def close(self) -> None:
        await self.hub.close()
        await self.store.close()

    async def ready(self) -> bool:
        return await self.hub.ready() and await self.store.ready()

    def status(self) -> dict[str, Any]:
        return {**self.hub.status(), **self.store.status()}

    def _floor(self, vehicle_id: str) -> int:
        return max(self._known_rev.get(vehicle_id, 0), self.hub.known_rev(vehicle_id))

    async def commit(
        self,
        vehicle_id: str,
        state: dict[str, Any],
        telemetry: dict[str, Any],
        expect_rev: int | None = None,
        trace: dict[str, list[float | None]] | None = None,
    ) -> int:
        """Store and publish the step; returns its rev (also set in state and telemetry).
        Raises RevConflict, and StoreUnavailable for a durable store that could not commit."""
        floor = self._floor(vehicle_id)
        try:
            committed = await self.store.commit(vehicle_id, state, telemetry, expect_rev, floor)
        except StoreUnavailable as exc:
            if self.store.durable:
                raise
            log.warning("step of %s not stored or published: %s", vehicle_id, exc)
            self.metrics.publish_failures.inc()
            rev = max(floor, expect_rev or 0) + 1
            state["rev"] = telemetry["rev"] = self._known_rev[vehicle_id] = rev
            return rev
        rev = committed.rev
        self._known_rev[vehicle_id] = max(rev, self._known_rev.get(vehicle_id, 0))
        await self.hub.publish(
            encode_message("state", vehicle_id, rev, telemetry, trace=trace), committed.first
        )
        return rev

    async def _catch_up(self, vehicle_ids: list[str] | None) -> list[dict[str, Any]]:
        """The latest telemetry the hub re-sends after it reconnected."""
        if vehicle_ids is None:
            return await self.store.recent(self.settings.fleet_snapshot_limit)
        out: list[dict[str, Any]] = []
        for vehicle_id in vehicle_ids:
            out += await self.store.latest(vehicle_id)
        return out

    # -- reads: the store's ----------------------------------------------------------------

    async def snapshot(
        self, vehicle_id: str, rev: int | None = None, at: datetime | None = None
    ) -> dict[str, Any] | None:
        return await self.store.snapshot(vehicle_id, rev, at)

    async def latest(self, vehicle_id: str) -> list[dict[str, Any]]:
        return await self.store.latest(vehicle_id)

    async def page(self, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        return await self.store.page(limit, after)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        return await self.store.recent(limit)

    async def count(self) -> int:
        return await self.store.count()

    async def history(
        self,
        vehicle_id: str,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        return await self.store.history(vehicle_id, limit, since, until)

    async def buckets(
        self,
        vehicle_id: str,
        every_s: float,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        return await self.store.buckets(vehicle_id, every_s, limit, since, until)

    # -- fan-out: the hub's ----------------------------------------------------------------

    def subscribe(self, vehicle_id: str | None) -> Subscriber:
        return self.hub.subscribe(vehicle_id)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.hub.unsubscribe(sub)


# The type the API depends on.
LiveBackend = Live


def create_store(settings: Settings, metrics: Metrics | None = None) -> Store:
    url = settings.store
    if url.startswith(("redis://", "rediss://")):
        from twin_service.live.redis import RedisStore

        return RedisStore(settings, metrics)
    if url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        from twin_service.live.sqlstore import SqlStore

        return SqlStore(settings, metrics)
    from twin_service.live.memory import MemoryStore

    return MemoryStore(settings, metrics)


def create_hub(settings: Settings, metrics: Metrics | None = None) -> Hub:
    if settings.hub_url.startswith(("redis://", "rediss://")):
        from twin_service.live.redis import RedisHub

        return RedisHub(settings, metrics)
    from twin_service.live.memory import MemoryHub

    return MemoryHub(settings, metrics)


def create_live(settings: Settings, metrics: Metrics | None = None) -> Live:
    metrics = metrics or Metrics()
    return Live(create_store(settings, metrics), create_hub(settings, metrics), settings, metrics)


__all__ = [
    "Live",
    "LiveBackend",
    "LiveUnavailable",
    "StoreUnavailable",
    "create_hub",
    "create_live",
    "create_store",
]
