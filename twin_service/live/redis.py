"""Redis hub and store: replicas share nothing but Redis.

Keys (prefix from settings.redis_prefix, default "twin:"):
    {p}rev:{id}     INCR counter, the vehicle's last rev
    {p}snap:{id}    {"vehicle_id", "rev", "state", "telemetry"} of the latest step (JSON)
    {p}latest       hash vehicle_id -> latest telemetry (JSON); GET /vehicles, fleet snapshots
    {p}hist:{id}    list, the recent full-resolution telemetry (oldest first)
    {p}tail:{id}    list, the downsampled older telemetry (see live/history.py for the scheme)
    {p}hmeta:{id}   hash {evicted, stride} of the downsampling
    {p}steps        pub/sub channel; every message is a "state" wire message

One Lua script commits a step: INCR, SET, HSET, history append and PUBLISH run atomically, so
the publish order equals the rev order for every vehicle even with many replicas.

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
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from twin_service.live.base import DEFAULT_HISTORY_LIMIT, LiveUnavailable, encode_message
from twin_service.live.fanout import Fanout, Message, Subscriber
from twin_service.metrics import Metrics
from twin_service.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1.0
COMMAND_TIMEOUT_S = 2.0
READY_PING_TIMEOUT_S = 0.5
# The listener wakes at least this often; the pub/sub connection is PINGed when idle this long.
LISTEN_POLL_S = 1.0
HEALTH_CHECK_S = 5
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 2.0
REPAIR_BATCH = 500

# KEYS: rev, snap, latest, hist, tail, hmeta
# ARGV: vehicle_id, vehicle_id as JSON, floor rev, state JSON, telemetry JSON without rev,
#       recent capacity, tail capacity, channel
COMMIT_LUA = """
local rev = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[3])
if rev <= floor then
  rev = floor + 1
  redis.call('SET', KEYS[1], rev)
end
local vid = ARGV[2]
local tel = '{"rev":' .. rev .. '}'
if ARGV[5] ~= '{}' then tel = '{"rev":' .. rev .. ',' .. string.sub(ARGV[5], 2) end
redis.call('SET', KEYS[2],
  '{"vehicle_id":' .. vid .. ',"rev":' .. rev .. ',"state":' .. ARGV[4] ..
  ',"telemetry":' .. tel .. '}')
redis.call('HSET', KEYS[3], ARGV[1], tel)
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
  '{"type":"state","vehicle_id":' .. vid .. ',"rev":' .. rev .. ',"telemetry":' .. tel .. '}')
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
            socket_timeout=COMMAND_TIMEOUT_S,
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
        ]

    def _note_rev(self, vehicle_id: str, rev: int) -> None:
        if rev > self._known_rev.get(vehicle_id, 0):
            self._known_rev[vehicle_id] = rev

    async def commit(
        self, vehicle_id: str, state: dict[str, Any], telemetry: dict[str, Any]
    ) -> int:
        telemetry.pop("rev", None)
        if self._hub_up:
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
                        ],
                    )
                )
                self._note_rev(vehicle_id, rev)
                telemetry["rev"] = rev
                return rev
            except (RedisError, OSError) as exc:
                log.warning(
                    "commit of %s failed, step not stored or published: %s", vehicle_id, exc
                )
        self.metrics.publish_failures.inc()
        rev = self._known_rev.get(vehicle_id, 0) + 1
        self._known_rev[vehicle_id] = rev
        telemetry["rev"] = rev
        return rev

    # -- reads -----------------------------------------------------------------------------

    async def snapshot(self, vehicle_id: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(f"{self.prefix}snap:{vehicle_id}")
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc
        return None if raw is None else orjson.loads(raw)

    async def latest(self, vehicle_id: str | None) -> list[dict[str, Any]]:
        key = f"{self.prefix}latest"
        try:
            if vehicle_id is not None:
                raw = await self._redis.hget(key, vehicle_id)
                return [] if raw is None else [orjson.loads(raw)]
            everything = await self._redis.hgetall(key)
        except (RedisError, OSError) as exc:
            raise LiveUnavailable(str(exc)) from exc
        return [orjson.loads(everything[v]) for v in sorted(everything)]

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
        self.fanout.publish(Message(vehicle_id, rev, data.decode(), reset))

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
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_POLL_S)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
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

    async def _after_subscribe(self) -> None:
        """Runs once subscribed: repair counters, then catch clients up."""
        await self._raise_counters()
        await self._resync_watchers()

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
        key = f"{self.prefix}latest"
        if watched is None:
            latest = await self._redis.hgetall(key)
        else:
            names = sorted(watched)
            values = await self._redis.hmget(key, names)
            latest = {n.encode(): v for n, v in zip(names, values, strict=True) if v is not None}
        for raw_id, raw in latest.items():
            vehicle_id = raw_id.decode()
            telemetry = orjson.loads(raw)
            rev = int(telemetry.get("rev", 0))
            # _seen_rev is left alone: it tracks the channel's order only. Channel messages at
            # or below this rev that are still in flight are dropped by the clients' dedup.
            if rev > self._seen_rev.get(vehicle_id, 0):
                self._note_rev(vehicle_id, rev)
                self.fanout.publish(encode_message("snapshot", vehicle_id, rev, telemetry))
