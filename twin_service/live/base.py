"""The one interface the API uses for snapshots, history and fan-out.

Wire messages (WebSocket and the Redis channel) are JSON objects:
`{"type": "snapshot" | "state", "vehicle_id": ..., "rev": N, "telemetry": {...}}`; a "state"
message on a vehicle's feed may also carry `trace`, the step's batch as columns (see
step.service.live_trace); the fleet feed never does.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from twin_service.live.fanout import Fanout, Message, Subscriber

# Default and upper bound of GET /vehicles/{id}/history?limit=
DEFAULT_HISTORY_LIMIT = 1000


# Default and upper bound of GET /vehicles?limit=
DEFAULT_PAGE_LIMIT = 1000


class LiveUnavailable(Exception):
    """The store cannot be reached (Redis down); reads answer 503."""


class RevConflict(Exception):
    """A conditional commit found the vehicle at another rev; nothing was stored."""

    def __init__(self, vehicle_id: str, current_rev: int, given_rev: int | None) -> None:
        super().__init__(f"{vehicle_id} is at rev {current_rev}, the state at {given_rev}")
        self.vehicle_id = vehicle_id
        self.current_rev = current_rev
        self.given_rev = given_rev


# The trace is the last member of a message (both backends append it), so the fleet's text is
# the message cut before it.
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


class LiveBackend(Protocol):
    fanout: Fanout

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def commit(
        self,
        vehicle_id: str,
        state: dict[str, Any],
        telemetry: dict[str, Any],
        expect_rev: int | None = None,
        trace: dict[str, list[float | None]] | None = None,
    ) -> int:
        """Assign the vehicle's next rev (sets state["rev"] and telemetry["rev"]), store the
        snapshot, append to the history and publish, atomically.

        `expect_rev` makes the write conditional: when the store knows the vehicle (its rev is
        above 0) and that rev is not `expect_rev`, RevConflict is raised and nothing is stored.
        The new rev is max(stored rev, expect_rev) + 1, so a twin resumed against an emptied
        store keeps counting. None writes unconditionally (a deliberate replace).

        Never raises for hub/store failures: they are counted and logged, the check is
        skipped, and a best-effort rev is returned (see the backend's notes).

        `trace` goes only into the published message (not the snapshot or the history)."""
        ...

    async def snapshot(self, vehicle_id: str) -> dict[str, Any] | None:
        """{"vehicle_id", "rev", "state", "telemetry"} of the latest step, or None.
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

    async def history(
        self, vehicle_id: str, limit: int = DEFAULT_HISTORY_LIMIT
    ) -> list[dict[str, Any]]:
        """The newest `limit` telemetry records of the bounded history, oldest first."""
        ...

    async def ready(self) -> bool:
        """Hub and store reachable (and, for Redis, the listener subscribed)."""
        ...

    def status(self) -> dict[str, Any]:
        """Details for GET /ready."""
        ...

    def subscribe(self, vehicle_id: str | None) -> Subscriber:
        """A queue of this process's fan-out; subscribe before reading snapshots."""
        ...

    def unsubscribe(self, sub: Subscriber) -> None: ...
