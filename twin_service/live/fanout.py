"""In-process fan-out to WebSocket clients: one bounded queue per subscriber, newest wins.

Both backends feed this: the memory backend from `commit`, the Redis backend from its one
listener task. Publishing never awaits, so a slow client cannot slow the service or other
clients: when its queue is full the oldest queued message is dropped; a client that keeps
dropping for `lag_timeout_s` is kicked (the WebSocket handler closes it with 1013).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum

from twin_service.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """One message for clients; `text` is the JSON sent on the wire, encoded once."""

    vehicle_id: str
    rev: int
    text: str
    # True when the hub's revs for this vehicle restarted (store lost its data): clients must
    # accept it even though rev is not above what they saw.
    reset: bool = False
    # The text for fleet subscribers when it differs (without the batch's trace).
    fleet_text: str | None = None

    def for_fleet(self) -> Message:
        if self.fleet_text is None:
            return self
        return Message(self.vehicle_id, self.rev, self.fleet_text, self.reset)


class KickReason(Enum):
    SLOW = "client too slow"
    SHUTDOWN = "server shutting down"


class Subscriber:
    """A client's view of the stream: `vehicle_id` None means the whole fleet."""

    def __init__(
        self, vehicle_id: str | None, queue_size: int, lag_timeout_s: float, metrics: Metrics
    ) -> None:
        self.vehicle_id = vehicle_id
        self.lag_timeout_s = lag_timeout_s
        self.dropped = 0
        self.behind_since: float | None = None
        self.kick_reason: KickReason | None = None
        self.kicked = asyncio.Event()
        self._queue: deque[Message] = deque(maxlen=queue_size)
        self._nonempty = asyncio.Event()
        self._metrics = metrics

    @property
    def feed(self) -> str:
        return "fleet" if self.vehicle_id is None else "vehicle"

    def offer(self, message: Message) -> None:
        """Queue without waiting; when full, the oldest queued message makes room."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            self._metrics.ws_dropped.inc()
            now = time.monotonic()
            if self.behind_since is None:
                self.behind_since = now
            elif now - self.behind_since > self.lag_timeout_s:
                self.kick(KickReason.SLOW)
        self._queue.append(message)
        self._nonempty.set()

    def check_lag(self, now: float) -> None:
        if self.behind_since is not None and now - self.behind_since > self.lag_timeout_s:
            self.kick(KickReason.SLOW)

    def kick(self, reason: KickReason) -> None:
        if self.kick_reason is None:
            self.kick_reason = reason
            self.kicked.set()

    async def get(self) -> Message:
        while not self._queue:
            self._nonempty.clear()
            await self._nonempty.wait()
        message = self._queue.popleft()
        if not self._queue:
            # Caught up: a client is only "behind" while it has not emptied its queue.
            self.behind_since = None
        return message


class Fanout:
    """Subscribers of this process, by vehicle and for the fleet."""

    def __init__(self, queue_size: int, lag_timeout_s: float, metrics: Metrics) -> None:
        self.queue_size = queue_size
        self.lag_timeout_s = lag_timeout_s
        self.metrics = metrics
        self._by_vehicle: dict[str, set[Subscriber]] = {}
        self._fleet: set[Subscriber] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._fleet) + sum(len(s) for s in self._by_vehicle.values())

    def watched_vehicles(self) -> set[str] | None:
        """Vehicles with a subscriber here; None when a fleet subscriber watches them all."""
        return None if self._fleet else set(self._by_vehicle)

    def subscribe(self, vehicle_id: str | None) -> Subscriber:
        sub = Subscriber(vehicle_id, self.queue_size, self.lag_timeout_s, self.metrics)
        if vehicle_id is None:
            self._fleet.add(sub)
        else:
            self._by_vehicle.setdefault(vehicle_id, set()).add(sub)
        self.metrics.ws_clients.inc(feed=sub.feed)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub.vehicle_id is None:
            if sub not in self._fleet:
                return
            self._fleet.discard(sub)
        else:
            subs = self._by_vehicle.get(sub.vehicle_id)
            if subs is None or sub not in subs:
                return
            subs.discard(sub)
            if not subs:
                del self._by_vehicle[sub.vehicle_id]
        self.metrics.ws_clients.dec(feed=sub.feed)

    def publish(self, message: Message) -> None:
        for sub in self._by_vehicle.get(message.vehicle_id, ()):
            sub.offer(message)
        if self._fleet:
            fleet = message.for_fleet()
            for sub in self._fleet:
                sub.offer(fleet)

    def start(self) -> None:
        """Start the sweeper that kicks clients which stay behind while nothing is published."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="ws-lag-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for sub in self._all():
            sub.kick(KickReason.SHUTDOWN)

    def _all(self) -> list[Subscriber]:
        return [*self._fleet, *(s for subs in self._by_vehicle.values() for s in subs)]

    async def _sweep(self) -> None:
        interval_s = min(1.0, self.lag_timeout_s / 2)
        while True:
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            for sub in self._all():
                sub.check_lag(now)


# How long a message ahead of a missing rev waits for it before it is delivered anyway.
REORDER_HOLD_S = 0.25


class InOrder:
    """Hands each vehicle's messages to the fan-out in rev order, whatever order the hub
    delivered them in (replicas publish after their commits, so two replicas' messages of one
    vehicle can cross). A message ahead of a missing rev waits up to `hold_s` for it (a rev
    can be missing for good: a step stored but not published); a message at or below the last
    delivered rev is dropped, unless the store began a new counter (`first`: it lost its
    data), which is delivered as a reset."""

    def __init__(self, fanout: Fanout, metrics: Metrics, hold_s: float = REORDER_HOLD_S) -> None:
        self.fanout = fanout
        self.metrics = metrics
        self.hold_s = hold_s
        self._seen: dict[str, int] = {}
        self._held: dict[str, dict[int, Message]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def known_rev(self, vehicle_id: str) -> int:
        held = self._held.get(vehicle_id)
        return max(self._seen.get(vehicle_id, 0), max(held) if held else 0)

    def deliver(self, message: Message, first: bool = False) -> None:
        vehicle_id, rev = message.vehicle_id, message.rev
        seen = self._seen.get(vehicle_id, 0)
        if rev <= seen:
            if not first:
                return  # overtaken by a later rev: clients have moved past it
            log.warning(
                "rev of %s went back from %d to %d: the store lost its data", vehicle_id, seen, rev
            )
            self._forget(vehicle_id)
            self._emit(Message(vehicle_id, rev, message.text, True, message.fleet_text))
            return
        if seen and rev > seen + 1:
            held = self._held.setdefault(vehicle_id, {})
            if not held:
                self._timers[vehicle_id] = asyncio.get_running_loop().call_later(
                    self.hold_s, self._release, vehicle_id
                )
            held[rev] = message
            return
        self._emit(message)
        pending = self._held.get(vehicle_id)
        while pending:
            nxt = pending.pop(self._seen[vehicle_id] + 1, None)
            if nxt is None:
                return
            self._emit(nxt)
        self._forget(vehicle_id)

    def _forget(self, vehicle_id: str) -> None:
        self._held.pop(vehicle_id, None)
        timer = self._timers.pop(vehicle_id, None)
        if timer is not None:
            timer.cancel()

    def _emit(self, message: Message) -> None:
        self._seen[message.vehicle_id] = message.rev
        self.metrics.messages.inc()
        self.fanout.publish(message)

    def _release(self, vehicle_id: str) -> None:
        """The hold ran out: the missing revs are not coming; deliver what waited."""
        held = self._held.pop(vehicle_id, None) or {}
        self._timers.pop(vehicle_id, None)
        for rev in sorted(held):
            if rev > self._seen.get(vehicle_id, 0):
                self._emit(held[rev])
