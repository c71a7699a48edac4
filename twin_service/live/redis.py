"""Redis hub and store: replicas share nothing but Redis.

Keys (prefix from settings.redis_prefix, default "twin:"):
    {p}rev:{id}     INCR counter, the vehicle's last rev
    {p}snap:{id}    {"vehicle_id", "rev", "state", "telemetry"} of the latest step (JSON)
    {p}latest       hash vehicle_id -> latest telemetry (JSON); GET /vehicles, fleet snapshots
    {p}hist:{id}    list, the recent full-resolution telemetry (oldest first)
    {p}tail:{id}    list, the downsampled older telemetry (see live/history.py for the scheme)
    {p}hmeta:{id}   hash {evicted, stride} of the downsampling
    {p}ids          sorted set of vehicle ids (score 0, lexicographic): GET /vehicles pages
    {p}recent       sorted set vehicle id -> time of its last step (us): fleet snapshots
    {p}steps        pub/sub channel; every message is a "state" wire message

One Lua script commits a step: the rev check, SET, HSET, history append and PUBLISH run
atomically, so the publish order equals the rev order for every vehicle even with many
replicas, and two writers of one vehicle cannot interleave (the second gets RevConflict).

A frozen Redis costs a step at most `redis_command_timeout_s` (plus a 100 ms margin for the
reply): the commit then counts as failed, the hub is marked down so the next steps fall back at
once, and the listener's liveness PING finds the hub again. The script carries a deadline in
Redis's clock (the offset is measured at every subscription) and stores nothing when it runs
after it, so a step reported as not stored does not appear later when Redis wakes up.

One listener task per process subscribes to the channel and feeds the process's fan-out. It is
supervised: on any Redis error it marks the hub down (GET /ready answers 503), retries with
backoff, re-subscribes, and re-sends the latest state of watched vehicles as "snapshot"
messages so clients catch up with what was published while it was away.

Revs while Redis is unreachable: POST /step still answers. `commit` then returns this
process's last known rev of the vehicle + 1 and stores and publishes nothing (counted in
twin_publish_failures_total). Every Redis commit passes the last rev this process knows as a
floor, and after a reconnect the listener raises the Redis counters to it, so revs never go
backwards even if Redis restarted empty. During an outage two replicas stepping the same
vehicle may return the same rev; those steps are not in the store and clients see a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from twin_service.live.base import (
    DEFAULT_HISTORY_LIMIT,
    TRACE_MEMBER,
    LiveUnavailable,
    RevConflict,
    encode_message,
)
from twin_service.live.fanout import Fanout, Message, Subscriber
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

# KEYS: rev, snap, latest, hist, tail, hmeta, ids, recent
# ARGV: vehicle_id, vehicle_id as JSON, floor rev, state JSON without rev, telemetry JSON
#       without rev, recent capacity, tail capacity, channel, expected rev (-1: none),
#       deadline (us, Redis clock), the message's extra members (',"trace":{...}' or '')
# Returns the new rev; 0 when past the deadline; -(stored rev) on a rev conflict.
COMMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now > tonumber(ARGV[10]) then return 0 end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local expect = tonumber(ARGV[9])
if expect >= 0 and cur > 0 and expect ~= cur then return -cur end
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
redis.call('SET', KEYS[2],
  '{"vehicle_id":' .. vid .. ',"rev":' .. rev .. ',"state":' .. with_rev(ARGV[4]) ..
  ',"telemetry":' .. tel .. '}')
redis.call('HSET', KEYS[3], ARGV[1], tel)
redis.call('ZADD', KEYS[7], 0, ARGV[1])
redis.call('ZADD', KEYS[8], now, ARGV[1])
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
redis.call('PUBLISH', ARGV[8],
  '{"type":"state","vehicle_id":' .. vid .. ',"rev":' .. rev .. ',"telemetry":' .. tel ..
  ARGV[11] .. '}')
return rev
"""

# KEYS: rev counters; ARGV: the floor for each. Raises, never lowers.
RAISE_REVS_LUA = """
for i, key in ipairs(KEYS) do
  local floor = tonumber(ARGV[i])
  local cur = tonumber(redis.call('GET', key) or '0')
  if cur < floor then redis.call('SET', key, floor) end
end
return #KEYS
"""


class RedisLive:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.fanout = Fanout(settings.ws_queue_size, settings.ws_lag_timeout_s, self.metrics)
        self.prefix = settings.redis_prefix
        self.channel = f"{self.prefix}steps"
        self._redis = aioredis.Redis.from_url(
            settings.hub_url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=settings.redis_command_timeout_s + REPLY_MARGIN_S,
            health_check_interval=HEALTH_CHECK_S,
            # Fail fast: /step must not wait on retries while Redis is down; the listener
            # does the reconnecting.
            retry=Retry(NoBackoff(), 0),
        )
        self._commit_script = self._redis.register_script(COMMIT_LUA)
        self._raise_script = self._redis.register_script(RAISE_REVS_LUA)
        # Highest rev this process knows per vehicle (own commits and the channel): the floor.
        self._known_rev: dict[str, int] = {}
        # Highest rev seen on the channel per vehicle: a lower one means Redis lost its data.
        self._seen_rev: dict[str, int] = {}
        self._hub_up = False
        # Redis's clock minus this process's (s), measured at every subscription.
        self._clock_offset_s = 0.0
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

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

    # -- writes ----------------------------------------------------------------------------

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
        ]

    def _note_rev(self, vehicle_id: str, rev: int) -> None:
        if rev > self._known_rev.get(vehicle_id, 0):
            self._known_rev[vehicle_id] = rev

    async def commit(
        self,
        vehicle_id: str,
        state: dict[str, Any],
        telemetry: dict[str, Any],
        expect_rev: int | None = None,
        trace: dict[str, list[float | None]] | None = None,
    ) -> int:
        telemetry.pop("rev", None)
        state.pop("rev", None)
        if self._hub_up:
            deadline_us = (
                time.time() + self._clock_offset_s + self.settings.redis_command_timeout_s
            ) * 1e6
            try:
                rev = int(
                    await self._commit_script(
                        keys=self._keys(vehicle_id),
                        args=[
                            vehicle_id,
                            orjson.dumps(vehicle_id),
                            self._known_rev.get(vehicle_id, 0),
                            orjson.dumps(state),
                            orjson.dumps(telemetry),
                            self.settings.history_recent,
                            self.settings.history_tail,
                            self.channel,
                            -1 if expect_rev is None else expect_rev,
                            int(deadline_us),
                            b"" if trace is None else TRACE_MEMBER.encode() + orjson.dumps(trace),
                        ],
                    )
                )
            except (RedisError, OSError) as exc:
                # A timeout: Redis may be frozen. Steps fall back until the listener finds it.
                self._set_hub_up(False)
                log.warning(
                    "commit of %s failed, step not stored or published: %s", vehicle_id, exc
                )
            else:
                if rev < 0:
                    raise RevConflict(vehicle_id, -rev, expect_rev)
                if rev > 0:
                    self._note_rev(vehicle_id, rev)
                    state["rev"] = rev
                    telemetry["rev"] = rev
                    return rev
                log.warning("commit of %s ran past its deadline, not stored", vehicle_id)
        self.metrics.publish_failures.inc()
        rev = max(self._known_rev.get(vehicle_id, 0), expect_rev or 0) + 1
        self._known_rev[vehicle_id] = rev
        state["rev"] = rev
        telemetry["rev"] = rev
        return rev

    # -- reads -----------------------------------------------------------------------------

    async def snapshot(self, vehicle_id: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(f"{self.prefix}snap:{vehicle_id}")
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc
        return None if raw is None else orjson.loads(raw)

    async def latest(self, vehicle_id: str) -> list[dict[str, Any]]:
        try:
            raw = await self._redis.hget(f"{self.prefix}latest", vehicle_id)
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc
        return [] if raw is None else [orjson.loads(raw)]

    async def _telemetry_of(self, names: list[bytes]) -> list[dict[str, Any]]:
        if not names:
            return []
        values = await self._redis.hmget(f"{self.prefix}latest", names)
        return [orjson.loads(v) for v in values if v is not None]

    async def page(self, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        start = b"-" if after is None else b"(" + after.encode()
        try:
            names = await self._redis.zrangebylex(
                f"{self.prefix}ids", start, b"+", start=0, num=limit
            )
            return await self._telemetry_of(names)
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        try:
            names = await self._redis.zrevrange(f"{self.prefix}recent", 0, limit - 1)
            return await self._telemetry_of(names)
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc

    async def count(self) -> int:
        try:
            return int(await self._redis.zcard(f"{self.prefix}ids"))
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc

    async def history(
        self, vehicle_id: str, limit: int = DEFAULT_HISTORY_LIMIT
    ) -> list[dict[str, Any]]:
        p = self.prefix
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrange(f"{p}tail:{vehicle_id}", -limit, -1)
                pipe.lrange(f"{p}hist:{vehicle_id}", -limit, -1)
                tail, recent = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc
        rows = (tail + recent)[-limit:] if limit > 0 else []
        return [orjson.loads(r) for r in rows]

    # -- fan-out ---------------------------------------------------------------------------

    def subscribe(self, vehicle_id: str | None) -> Subscriber:
        return self.fanout.subscribe(vehicle_id)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.fanout.unsubscribe(sub)

    def _deliver(self, data: bytes) -> None:
        try:
            head = orjson.loads(data)
            vehicle_id, rev = str(head["vehicle_id"]), int(head["rev"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring malformed message on %s: %.200r", self.channel, data)
            return
        self.metrics.messages.inc()
        seen = self._seen_rev.get(vehicle_id, 0)
        # The channel delivers each vehicle's revs in increasing order; going back means Redis
        # restarted empty and no replica could carry the counter over.
        reset = rev <= seen
        if reset:
            log.warning(
                "rev of %s went back from %d to %d: the store lost its data", vehicle_id, seen, rev
            )
        self._seen_rev[vehicle_id] = rev
        self._note_rev(vehicle_id, rev)
        text = data.decode()
        fleet_text = None
        if "trace" in head:
            fleet_text = text[: text.rindex(TRACE_MEMBER)] + "}"
        self.fanout.publish(Message(vehicle_id, rev, text, reset, fleet_text))

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
                await self._after_subscribe()
                if failures:
                    log.info("redis hub back after %d failed attempts", failures)
                    self.metrics.hub_reconnects.inc()
                self._set_hub_up(True)
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

    async def _after_subscribe(self) -> None:
        """Runs once subscribed: measure the clock offset, repair counters, then catch
        clients up."""
        await self._measure_clock()
        await self._raise_counters()
        await self._resync_watchers()
        await self._index_vehicles()

    async def _measure_clock(self) -> None:
        before = time.time()
        seconds, micros = await self._redis.time()
        after = time.time()
        self._clock_offset_s = seconds + micros / 1e6 - (before + after) / 2

    async def _index_vehicles(self) -> None:
        """Fill the id index of a store written before it existed."""
        p = self.prefix
        if await self._redis.exists(f"{p}ids") or not await self._redis.exists(f"{p}latest"):
            return
        names = await self._redis.hkeys(f"{p}latest")
        for start in range(0, len(names), REPAIR_BATCH):
            batch = names[start : start + REPAIR_BATCH]
            await self._redis.zadd(f"{p}ids", dict.fromkeys(batch, 0))
            await self._redis.zadd(f"{p}recent", dict.fromkeys(batch, 0))

    async def _raise_counters(self) -> None:
        """Raise the Redis rev counters to what this process knows (no-op unless Redis lost
        its data), so the next commit of any replica continues above it."""
        items = list(self._known_rev.items())
        for start in range(0, len(items), REPAIR_BATCH):
            batch = items[start : start + REPAIR_BATCH]
            await self._raise_script(
                keys=[f"{self.prefix}rev:{v}" for v, _ in batch], args=[r for _, r in batch]
            )

    async def _resync_watchers(self) -> None:
        """Send watched vehicles' latest telemetry as snapshots when it is newer than what the
        channel delivered (something was published while this process was not subscribed)."""
        watched = self.fanout.watched_vehicles()
        if watched is not None and not watched:
            return
        if watched is None:
            records = await self.recent(self.settings.fleet_snapshot_limit)
        else:
            records = await self._telemetry_of([n.encode() for n in sorted(watched)])
        for telemetry in records:
            vehicle_id = str(telemetry["vehicle_id"])
            rev = int(telemetry.get("rev", 0))
            # _seen_rev is left alone: it tracks the channel's order only. Channel messages at
            # or below this rev that are still in flight are dropped by the clients' dedup.
            if rev > self._seen_rev.get(vehicle_id, 0):
                self._note_rev(vehicle_id, rev)
                self.fanout.publish(encode_message("snapshot", vehicle_id, rev, telemetry))
