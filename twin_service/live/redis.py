"""Redis hub and store: replicas share nothing but Redis.

Keys of the store (prefix from settings.redis_prefix, default "twin:"):
    {p}rev:{id}     INCR counter, the vehicle's last rev
    {p}snap:{id}    {"vehicle_id", "rev", "state", "telemetry"} of the latest step (JSON)
    {p}latest       hash vehicle_id -> latest telemetry (JSON); GET /vehicles, fleet snapshots
    {p}hist:{id}    list, the recent full-resolution telemetry (oldest first)
    {p}tail:{id}    list, the downsampled older telemetry (see live/history.py for the scheme)
    {p}hmeta:{id}   hash {evicted, stride} of the downsampling
    {p}hstate:{id}  list, "rev state-JSON" of the newest history_states revs
    {p}ids          sorted set of vehicle ids (score 0, lexicographic): GET /vehicles pages
    {p}recent       sorted set vehicle id -> time of its last step (us): fleet snapshots
The hub's channel is {p}steps; every message is a "state" wire message, prefixed with "!" when
the store began a new rev counter for the vehicle (see Committed.first).

One Lua script commits a step: the rev check, the snapshot, the indexes and the history append
run atomically, so two writers of one vehicle cannot interleave (the second gets RevConflict).
The hub publishes after the commit; the listener of every replica puts each vehicle's messages
back in rev order (fanout.InOrder).

A frozen Redis costs a step at most `redis_command_timeout_s` (plus a 100 ms margin for the
reply): the commit then counts as failed, the store is marked down so the next steps fall back
at once, and a liveness PING finds it again. The script carries a deadline in Redis's clock (the
offset is measured when the store connects) and stores nothing when it runs after it, so a step
reported as not stored does not appear later when Redis wakes up.

One listener task per process subscribes to the channel and feeds the process's fan-out. It is
supervised: on any Redis error it marks the hub down (GET /ready answers 503), retries with
backoff, re-subscribes, and re-sends the latest state of watched vehicles as "snapshot"
messages so clients catch up with what was published while it was away.

Revs while Redis is unreachable (a volatile store): POST /step still answers. The step then
gets the last rev this process knows of the vehicle + 1 and is stored and published nowhere
(counted in twin_publish_failures_total). Every commit passes the last rev this process knows
(its own steps and the channel's) as a floor, so revs never go backwards even if Redis
restarted empty. During an outage two replicas stepping the same vehicle may return the same
rev; those steps are not in the store and clients see a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from twin_service.live.base import (
    DEFAULT_HISTORY_LIMIT,
    TRACE_MEMBER,
    CatchUp,
    Committed,
    LiveUnavailable,
    RevConflict,
    StoreUnavailable,
    encode_message,
)
from twin_service.live.fanout import Fanout, InOrder, Message, Subscriber
from twin_service.live.history import bucketize, in_range, rev_at, snapshot_at
from twin_service.metrics import Metrics
from twin_service.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1.0
# What the client waits beyond the script's deadline for the reply to arrive.
REPLY_MARGIN_S = 0.1
READY_PING_TIMEOUT_S = 0.5
# The listener wakes at least this often; the pub/sub connection is PINGed when idle this long,
# and the command connection too, so a frozen Redis is noticed.
LISTEN_POLL_S = 0.5
HEALTH_CHECK_S = 2
LIVENESS_TIMEOUT_S = 0.5
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 2.0
REPAIR_BATCH = 500
FIRST_MARK = b"!"

# KEYS: rev, snap, latest, hist, tail, hmeta, ids, recent, hstate
# ARGV: vehicle_id, vehicle_id as JSON, floor rev, state JSON without rev, telemetry JSON
#       without rev, recent capacity, tail capacity, states kept, expected rev (-1: none),
#       deadline (us, Redis clock)
# Returns {rev, first}: rev 0 when past the deadline, -(stored rev) on a rev conflict; first 1
# when the rev counter did not exist.
COMMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now > tonumber(ARGV[10]) then return {0, 0} end
local raw = redis.call('GET', KEYS[1])
local cur = tonumber(raw or '0')
local expect = tonumber(ARGV[9])
if expect >= 0 and cur > 0 and expect ~= cur then return {-cur, 0} end
local rev = cur
if expect > rev then rev = expect end
local floor = tonumber(ARGV[3])
if floor > rev then rev = floor end
rev = rev + 1
redis.call('SET', KEYS[1], rev)
local vid = ARGV[2]
local function with_rev(json)
  if json == '{}' then return '{"rev":' .. rev .. '}' end
  return '{"rev":' .. rev .. ',' .. string.sub(json, 2)
end
local tel = with_rev(ARGV[5])
local state = with_rev(ARGV[4])
redis.call('SET', KEYS[2],
  '{"vehicle_id":' .. vid .. ',"rev":' .. rev .. ',"state":' .. state ..
  ',"telemetry":' .. tel .. '}')
redis.call('HSET', KEYS[3], ARGV[1], tel)
redis.call('ZADD', KEYS[7], 0, ARGV[1])
redis.call('ZADD', KEYS[8], now, ARGV[1])
redis.call('RPUSH', KEYS[9], rev .. ' ' .. state)
redis.call('LTRIM', KEYS[9], -tonumber(ARGV[8]), -1)
local recent_cap = tonumber(ARGV[6])
local tail_cap = tonumber(ARGV[7])
local n = redis.call('RPUSH', KEYS[4], tel)
while n > recent_cap do
  local old = redis.call('LPOP', KEYS[4])
  n = n - 1
  if tail_cap > 0 then
    local evicted = redis.call('HINCRBY', KEYS[6], 'evicted', 1) - 1
    local stride = tonumber(redis.call('HGET', KEYS[6], 'stride') or '1')
    if evicted % stride == 0 then
      local t = redis.call('RPUSH', KEYS[5], old)
      if t > tail_cap then
        local items = redis.call('LRANGE', KEYS[5], 0, -1)
        redis.call('DEL', KEYS[5])
        local keep = {}
        for i = 1, #items, 2 do
          keep[#keep + 1] = items[i]
          if #keep == 500 then
            redis.call('RPUSH', KEYS[5], unpack(keep))
            keep = {}
          end
        end
        if #keep > 0 then redis.call('RPUSH', KEYS[5], unpack(keep)) end
        redis.call('HSET', KEYS[6], 'stride', stride * 2)
      end
    end
  end
end
if raw then return {rev, 0} end
return {rev, 1}
"""


def _client(url: str, settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=settings.redis_command_timeout_s + REPLY_MARGIN_S,
        health_check_interval=HEALTH_CHECK_S,
        # Fail fast: /step must not wait on retries while Redis is down; the listener
        # and the liveness check do the reconnecting.
        retry=Retry(NoBackoff(), 0),
    )


class RedisStore:
    durable = False

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.prefix = settings.redis_prefix
        self._redis = _client(settings.store, settings)
        self._commit_script = self._redis.register_script(COMMIT_LUA)
        self._up = False
        # Redis's clock minus this process's (s), measured when the store connects.
        self._clock_offset_s = 0.0
        self._checker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self._connect()
        self._checker = asyncio.create_task(self._check_forever(), name="redis-store-check")

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        await self._redis.aclose()

    async def _connect(self) -> None:
        before = time.time()
        seconds, micros = await self._redis.time()
        after = time.time()
        self._clock_offset_s = seconds + micros / 1e6 - (before + after) / 2
        await self._index_vehicles()
        if not self._up:
            log.info("redis store reachable")
        self._set_up(True)

    def _set_up(self, up: bool) -> None:
        self._up = up
        self.metrics.store_up.set(1 if up else 0)

    async def _check_forever(self) -> None:
        """While the store is marked down, try it again every RECONNECT_MAX_S at most."""
        delay_s = RECONNECT_FIRST_S
        while True:
            await asyncio.sleep(delay_s if not self._up else HEALTH_CHECK_S)
            if self._up:
                continue
            try:
                await asyncio.wait_for(self._connect(), LIVENESS_TIMEOUT_S * 4)
                delay_s = RECONNECT_FIRST_S
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("redis store still unreachable: %s", exc)
                delay_s = min(delay_s * 2, RECONNECT_MAX_S)

    async def ready(self) -> bool:
        if not self._up:
            return False
        try:
            await asyncio.wait_for(self._redis.ping(), READY_PING_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError):
            return False
        return True

    def status(self) -> dict[str, Any]:
        return {"store": "redis", "store_up": self._up}

    def _keys(self, vehicle_id: str) -> list[str]:
        p = self.prefix
        return [
            f"{p}rev:{vehicle_id}",
            f"{p}snap:{vehicle_id}",
            f"{p}latest",
            f"{p}hist:{vehicle_id}",
            f"{p}tail:{vehicle_id}",
            f"{p}hmeta:{vehicle_id}",
            f"{p}ids",
            f"{p}recent",
            f"{p}hstate:{vehicle_id}",
        ]

    async def commit(
        self,
        vehicle_id: str,
        state: dict[str, Any],
        telemetry: dict[str, Any],
        expect_rev: int | None = None,
        floor_rev: int = 0,
    ) -> Committed:
        telemetry.pop("rev", None)
        state.pop("rev", None)
        if not self._up:
            raise StoreUnavailable("redis store marked down")
        deadline_us = (
            time.time() + self._clock_offset_s + self.settings.redis_command_timeout_s
        ) * 1e6
        try:
            rev, first = await self._commit_script(
                keys=self._keys(vehicle_id),
                args=[
                    vehicle_id,
                    orjson.dumps(vehicle_id),
                    floor_rev,
                    orjson.dumps(state),
                    orjson.dumps(telemetry),
                    self.settings.history_recent,
                    self.settings.history_tail,
                    self.settings.history_states,
                    -1 if expect_rev is None else expect_rev,
                    int(deadline_us),
                ],
            )
        except (RedisError, OSError) as exc:
            # A timeout: Redis may be frozen. Steps fall back until the check finds it.
            self._set_up(False)
            raise StoreUnavailable(str(exc)) from exc
        rev = int(rev)
        if rev < 0:
            raise RevConflict(vehicle_id, -rev, expect_rev)
        if rev == 0:
            raise StoreUnavailable("the commit ran past its deadline, not stored")
        state["rev"] = rev
        telemetry["rev"] = rev
        return Committed(rev, bool(first))

    # -- reads -----------------------------------------------------------------------------

    async def _read(self, command: Any) -> Any:
        try:
            return await command
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc

    async def snapshot(
        self, vehicle_id: str, rev: int | None = None, at: datetime | None = None
    ) -> dict[str, Any] | None:
        raw = await self._read(self._redis.get(f"{self.prefix}snap:{vehicle_id}"))
        current = None if raw is None else orjson.loads(raw)
        if current is None or (rev is None and at is None):
            return current
        p = self.prefix
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(f"{p}tail:{vehicle_id}", 0, -1)
            pipe.lrange(f"{p}hist:{vehicle_id}", 0, -1)
            pipe.lrange(f"{p}hstate:{vehicle_id}", 0, -1)
            tail, recent, states = await self._read(pipe.execute())
        records = [orjson.loads(r) for r in tail + recent]

        def find_rev(at_s: float) -> int | None:
            return rev_at(reversed(records), at_s)

        def find(wanted: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
            head = f"{wanted} ".encode()
            state = next((s[len(head) :] for s in states if s.startswith(head)), None)
            telemetry = next((r for r in records if r.get("rev") == wanted), None)
            if state is None or telemetry is None:
                return None
            return telemetry, orjson.loads(state)

        return snapshot_at(vehicle_id, current, rev, at, find_rev, find)

    async def latest(self, vehicle_id: str) -> list[dict[str, Any]]:
        raw = await self._read(self._redis.hget(f"{self.prefix}latest", vehicle_id))
        return [] if raw is None else [orjson.loads(raw)]

    async def telemetry_of(self, names: list[bytes]) -> list[dict[str, Any]]:
        if not names:
            return []
        values = await self._read(self._redis.hmget(f"{self.prefix}latest", names))
        return [orjson.loads(v) for v in values if v is not None]

    async def page(self, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        start = b"-" if after is None else b"(" + after.encode()
        names = await self._read(
            self._redis.zrangebylex(f"{self.prefix}ids", start, b"+", start=0, num=limit)
        )
        return await self.telemetry_of(names)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        names = await self._read(self._redis.zrevrange(f"{self.prefix}recent", 0, limit - 1))
        return await self.telemetry_of(names)

    async def count(self) -> int:
        return int(await self._read(self._redis.zcard(f"{self.prefix}ids")))

    async def _records(self, vehicle_id: str, limit: int | None) -> list[dict[str, Any]]:
        """The newest `limit` history records (all with None), oldest first."""
        p = self.prefix
        first = 0 if limit is None else -limit
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(f"{p}tail:{vehicle_id}", first, -1)
            pipe.lrange(f"{p}hist:{vehicle_id}", first, -1)
            tail, recent = await self._read(pipe.execute())
        rows = tail + recent if limit is None else (tail + recent)[-limit:]
        return [orjson.loads(r) for r in rows]

    async def history(
        self,
        vehicle_id: str,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        if since is None and until is None:
            return await self._records(vehicle_id, limit)
        return in_range(await self._records(vehicle_id, None), since, until)[-limit:]

    async def buckets(
        self,
        vehicle_id: str,
        every_s: float,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        records = in_range(await self._records(vehicle_id, None), since, until)
        return bucketize(vehicle_id, records, every_s)[-limit:]

    async def _index_vehicles(self) -> None:
        """Fill the id index of a store written before it existed."""
        p = self.prefix
        if await self._redis.exists(f"{p}ids") or not await self._redis.exists(f"{p}latest"):
            return
        names: list[bytes] = await self._redis.hkeys(f"{p}latest")  # type: ignore[misc]
        for start in range(0, len(names), REPAIR_BATCH):
            batch = names[start : start + REPAIR_BATCH]
            await self._redis.zadd(f"{p}ids", dict.fromkeys(batch, 0))
            await self._redis.zadd(f"{p}recent", dict.fromkeys(batch, 0))


class RedisHub:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.fanout = Fanout(settings.ws_queue_size, settings.ws_lag_timeout_s, self.metrics)
        self.channel = f"{settings.redis_prefix}steps"
        self._redis = _client(settings.hub_url, settings)
        self._order = InOrder(self.fanout, self.metrics)
        self._hub_up = False
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.catch_up: CatchUp | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the listener. Returns after the first subscription or after a short wait, so
        a service whose Redis is down still starts (and reports not-ready)."""
        self.fanout.start()
        self._listener = asyncio.create_task(self._listen_forever(), name="redis-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), CONNECT_TIMEOUT_S)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self.fanout.close()
        await self._redis.aclose()

    async def ready(self) -> bool:
        if not self._hub_up:
            return False
        try:
            await asyncio.wait_for(self._redis.ping(), READY_PING_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError):
            return False
        return True

    def status(self) -> dict[str, Any]:
        return {"hub": "redis", "hub_up": self._hub_up}

    def known_rev(self, vehicle_id: str) -> int:
        return self._order.known_rev(vehicle_id)

    async def publish(self, message: Message, first: bool = False) -> None:
        if not self._hub_up:
            self.metrics.publish_failures.inc()
            return
        data = message.text.encode()
        try:
            await self._redis.publish(self.channel, FIRST_MARK + data if first else data)
        except (RedisError, OSError) as exc:
            self._set_hub_up(False)
            self.metrics.publish_failures.inc()
            log.warning("publish of %s rev %d failed: %s", message.vehicle_id, message.rev, exc)

    # -- fan-out ---------------------------------------------------------------------------

    def subscribe(self, vehicle_id: str | None) -> Subscriber:
        return self.fanout.subscribe(vehicle_id)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.fanout.unsubscribe(sub)

    def _deliver(self, data: bytes) -> None:
        first = data.startswith(FIRST_MARK)
        if first:
            data = data[len(FIRST_MARK) :]
        try:
            head = orjson.loads(data)
            vehicle_id, rev = str(head["vehicle_id"]), int(head["rev"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring malformed message on %s: %.200r", self.channel, data)
            return
        text = data.decode()
        fleet_text = None
        if "trace" in head:
            fleet_text = text[: text.rindex(TRACE_MEMBER)] + "}"
        self._order.deliver(Message(vehicle_id, rev, text, False, fleet_text), first)

    # -- the supervised listener -----------------------------------------------------------

    def _set_hub_up(self, up: bool) -> None:
        self._hub_up = up
        self.metrics.hub_up.set(1 if up else 0)

    async def _listen_forever(self) -> None:
        delay_s = RECONNECT_FIRST_S
        failures = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._set_hub_up(True)
                await self._resync_watchers()
                if failures:
                    log.info("redis hub back after %d failed attempts", failures)
                    self.metrics.hub_reconnects.inc()
                self._subscribed.set()
                failures, delay_s = 0, RECONNECT_FIRST_S
                checked = time.monotonic()
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_POLL_S)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
                    now = time.monotonic()
                    if not self._hub_up or now - checked >= HEALTH_CHECK_S:
                        await self._check_alive()
                        checked = now
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, LiveUnavailable) as exc:
                self._set_hub_up(False)
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "redis hub unreachable (%s); retrying in %.1f s", exc, delay_s)
            except Exception:  # a bug must not end the listener for good
                self._set_hub_up(False)
                failures += 1
                log.exception("redis listener failed; restarting")
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay_s * random.uniform(0.8, 1.2))
            delay_s = min(delay_s * 2, RECONNECT_MAX_S)

    async def _check_alive(self) -> None:
        """PING on the command connection: a frozen Redis answers neither channel nor
        commands, and the pub/sub connection alone does not notice. Raises to reconnect."""
        try:
            await asyncio.wait_for(self._redis.ping(), LIVENESS_TIMEOUT_S)
        except TimeoutError:
            raise ConnectionError("redis did not answer a PING") from None
        if not self._hub_up:
            log.info("redis hub answers again")
            self._set_hub_up(True)

    async def _resync_watchers(self) -> None:
        """Send watched vehicles' latest telemetry as snapshots when it is newer than what the
        channel delivered (something was published while this process was not subscribed)."""
        watched = self.fanout.watched_vehicles()
        if self.catch_up is None or (watched is not None and not watched):
            return
        try:
            records = await self.catch_up(None if watched is None else sorted(watched))
        except LiveUnavailable as exc:
            log.info("no catch-up snapshots after the reconnect: %s", exc)
            return
        for telemetry in records:
            vehicle_id = str(telemetry["vehicle_id"])
            rev = int(telemetry.get("rev", 0))
            # The order's revs are left alone: they track the channel only. Channel messages at
            # or below this rev that are still in flight are dropped by the clients' dedup.
            if rev > self._order.known_rev(vehicle_id):
                self.fanout.publish(encode_message("snapshot", vehicle_id, rev, telemetry))
