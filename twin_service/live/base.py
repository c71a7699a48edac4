"""The interfaces of the live backend's three roles, and the wire message.

- Hub: pub/sub of accepted steps between replicas and to this process's WebSocket clients.
- Snapshot store: each vehicle's latest state and telemetry, revs, pages of vehicles, and the
  state at an earlier rev or time.
- History store: every stored step's telemetry, read by time range, raw or in buckets.

A store implements both store roles: one `commit` writes the snapshot and the history record
atomically. `twin_service.live.Live` puts a store and a hub together for the API.

Wire messages (WebSocket and the Redis channel) are JSON objects:
`{"type": "snapshot" | "state", "vehicle_id": ..., "rev": N, "telemetry": {...}}`; a "state"
message on a vehicle's feed may also carry `trace`, the step's batch as columns (see
step.service.live_trace); the fleet feed never does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from twin_service.live.fanout import Fanout, Message, Subscriber

# Default and upper bound of GET /vehicles/{id}/history?limit=
DEFAULT_HISTORY_LIMIT = 1000
MAX_HISTORY_LIMIT = 100_000

# Default and upper bound of GET /vehicles?limit=
DEFAULT_PAGE_LIMIT = 1000


class LiveUnavailable(Exception):
    """The store cannot be reached (Redis or PostgreSQL down); reads answer 503."""


class StoreUnavailable(LiveUnavailable):
    """A durable store could not commit a step: /step answers 503 and nothing was stored."""


class StateNotKept(Exception):
    """The rev or time exists but the store no longer keeps the state at it."""


class RevConflict(Exception):
    """A conditional commit found the vehicle at another rev; nothing was stored."""

    def __init__(self, vehicle_id: str, current_rev: int, given_rev: int | None) -> None:
        super().__init__(f"{vehicle_id} is at rev {current_rev}, the state at {given_rev}")
        self.vehicle_id = vehicle_id
        self.current_rev = current_rev
        self.given_rev = given_rev


@dataclass(frozen=True, slots=True)
class Committed:
    rev: int
    # The store began a new rev counter for the vehicle (it did not know it): after a store
    # lost its data, the hub tells clients to accept this rev even if they saw higher ones.
    first: bool = False


# The trace is the last member of a message, so the fleet's text is the message cut before it.
TRACE_MEMBER = ',"trace":'


def encode_message(
    kind: str,
    vehicle_id: str,
    rev: int,
    telemetry: dict[str, Any],
    reset: bool = False,
    trace: dict[str, list[float | None]] | None = None,
) -> Message:
    message = {"type": kind, "vehicle_id": vehicle_id, "rev": rev, "telemetry": telemetry}
    fleet_text = orjson.dumps(message).decode()
    if trace is None:
        return Message(vehicle_id, rev, fleet_text, reset)
    text = f"{fleet_text[:-1]}{TRACE_MEMBER}{orjson.dumps(trace).decode()}}}"
    return Message(vehicle_id, rev, text, reset, fleet_text)


# What a hub re-sends after it reconnected: the latest telemetry of these vehicles (None: the
# most recently updated ones), read from the store.
CatchUp = Callable[[list[str] | None], Awaitable[list[dict[str, Any]]]]


class Hub(Protocol):
    """Delivers every published message to this process's subscribers of every replica on the
    hub, each vehicle's messages in rev order."""

    fanout: Fanout
    catch_up: CatchUp | None

    def known_rev(self, vehicle_id: str) -> int:
        """The highest rev of the vehicle this hub delivered (0: none)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, message: Message, first: bool = False) -> None:
        """Never raises: a failure is counted and logged (clients catch up by snapshot)."""
        ...

    async def ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    def subscribe(self, vehicle_id: str | None) -> Subscriber:
        """A queue of this process's fan-out; subscribe before reading snapshots."""
        ...

    def unsubscribe(self, sub: Subscriber) -> None: ...


class SnapshotStore(Protocol):
    # A durable store answers a failed commit with StoreUnavailable (the step is refused); a
    # volatile one (Redis) lets the step through unstored, with a best-effort rev.
    durable: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    async def commit(
        self,
        vehicle_id: str,
        state: dict[str, Any],
        telemetry: dict[str, Any],
        expect_rev: int | None = None,
        floor_rev: int = 0,
    ) -> Committed:
        """Assign the vehicle's next rev (sets state["rev"] and telemetry["rev"]) and store the
        snapshot and its history record, atomically.

        `expect_rev` makes the write conditional: when the store knows the vehicle (its rev is
        above 0) and that rev is not `expect_rev`, RevConflict is raised and nothing is stored.
        The new rev is max(stored rev, expect_rev, floor_rev) + 1, so a twin resumed against an
        emptied store keeps counting. None writes unconditionally (a deliberate replace).

        Raises StoreUnavailable when the store cannot be reached."""
        ...

    async def snapshot(
        self, vehicle_id: str, rev: int | None = None, at: datetime | None = None
    ) -> dict[str, Any] | None:
        """{"vehicle_id", "rev", "state", "telemetry"} of the latest step; with `rev`, of that
        rev; with `at`, of the last step stored at or before that time. None if there is no
        such step; StateNotKept if the step is known but its state is no longer kept.
        Raises LiveUnavailable when the store is unreachable (as do the other reads)."""
        ...

    async def latest(self, vehicle_id: str) -> list[dict[str, Any]]:
        """Latest telemetry of one vehicle ([] if unknown)."""
        ...

    async def page(self, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        """Latest telemetry of up to `limit` vehicles whose id sorts after `after`, sorted by
        vehicle_id (GET /vehicles pages with it)."""
        ...

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """Latest telemetry of the `limit` most recently updated vehicles, newest first."""
        ...

    async def count(self) -> int:
        """How many vehicles the store holds."""
        ...


class HistoryStore(Protocol):
    async def history(
        self,
        vehicle_id: str,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Telemetry records with since <= timestamp < until, oldest first; the newest `limit`
        of them when there are more."""
        ...

    async def buckets(
        self,
        vehicle_id: str,
        every_s: float,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The same records aggregated into buckets of `every_s` seconds aligned to the Unix
        epoch (see live/history.py for a bucket's members), oldest first; the newest `limit`."""
        ...


class Store(SnapshotStore, HistoryStore, Protocol):
    """Both store roles in one backend (their commit is one atomic write)."""
