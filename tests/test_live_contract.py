"""One contract per role, run against every backend: the stores (memory, a real Redis, a real
PostgreSQL, SQLite) and the hubs (memory, a real Redis). Conditional commits, revs, snapshots
and their earlier revs and times, pages of vehicles, the most recently updated ones, history by
time range, raw and in buckets, and the hub's delivery in rev order."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.postgres import fresh_database
from support.processes import RedisServer

from twin_service.live import Live, create_hub, create_store
from twin_service.live.base import Hub, RevConflict, StateNotKept, encode_message
from twin_service.live.history import bucketize
from twin_service.live.memory import MemoryHub, MemoryStore
from twin_service.metrics import Metrics
from twin_service.settings import Settings

_prefixes = itertools.count()
_vehicles = itertools.count()
STORES = ["memory", "redis", "postgresql", "sqlite"]
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def store_settings(kind: str, request: pytest.FixtureRequest, **extra: Any) -> Settings:
    prefix = f"contract-{next(_prefixes)}:"
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return Settings(store_url=server.url, redis_prefix=prefix, **extra)
    if kind == "postgresql":
        return Settings(store_url=request.getfixturevalue("postgres_url"), **extra)
    if kind == "sqlite":
        path: Path = request.getfixturevalue("tmp_path")
        return Settings(store_url=f"sqlite:///{path / 'twin.db'}", **extra)
    return Settings(**extra)


@pytest.fixture(params=STORES)
async def live(request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    """A store of each kind behind the memory hub."""
    settings_ = store_settings(request.param, request)
    backend = Live(create_store(settings_), MemoryHub(settings_), settings_)
    await backend.start()
    assert await backend.ready()
    try:
        yield backend
    finally:
        await backend.close()


def vid(name: str) -> str:
    """A vehicle id no other test (or example) of the module uses: stores are shared."""
    return f"{name}-{next(_vehicles)}"


def telemetry(vehicle_id: str, **extra: Any) -> dict[str, Any]:
    return {"vehicle_id": vehicle_id, **extra}


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


async def test_conditional_commits_chain_and_conflicts_store_nothing(live: Live) -> None:
    v = vid("c")
    assert await live.commit(v, {"soc": 0.5}, telemetry(v), expect_rev=0) == 1
    state: dict[str, Any] = {"soc": 0.4}
    assert await live.commit(v, state, telemetry(v), expect_rev=1) == 2
    assert state["rev"] == 2
    for stale in (0, 1, 3):
        with pytest.raises(RevConflict) as caught:
            await live.commit(v, {"soc": 0.1}, telemetry(v, bad=True), expect_rev=stale)
        assert caught.value.current_rev == 2
    snapshot = await live.snapshot(v)
    assert snapshot is not None
    assert snapshot["rev"] == 2 and snapshot["state"] == {"rev": 2, "soc": 0.4}
    assert snapshot["telemetry"] == {"vehicle_id": v, "rev": 2}
    assert [t["rev"] for t in await live.history(v)] == [1, 2]
    # Unconditional (replace) continues the count.
    assert await live.commit(v, {"soc": 0.9}, telemetry(v), expect_rev=None) == 3


async def test_a_state_ahead_of_an_unknown_vehicle_keeps_its_count(live: Live) -> None:
    """A twin resumed against an emptied store continues above the rev its state carries."""
    v = vid("ahead")
    assert await live.commit(v, {"soc": 0.5}, telemetry(v), expect_rev=41) == 42
    with pytest.raises(RevConflict):
        await live.commit(v, {"soc": 0.5}, telemetry(v), expect_rev=41)


async def test_racing_writers_of_one_vehicle_cannot_interleave(live: Live) -> None:
    """Ten writers post from the same rev at once: exactly one wins each round."""
    v = vid("race")
    rev = 0
    for _ in range(5):
        results = await asyncio.gather(
            *(live.commit(v, {"w": w}, telemetry(v), expect_rev=rev) for w in range(10)),
            return_exceptions=True,
        )
        won = [r for r in results if isinstance(r, int)]
        assert won == [rev + 1]
        assert all(isinstance(r, RevConflict) for r in results if not isinstance(r, int))
        rev += 1
    assert [t["rev"] for t in await live.history(v)] == [1, 2, 3, 4, 5]


async def test_pages_walk_every_vehicle_once_in_id_order(live: Live) -> None:
    base = vid("p")
    # Mixed case and punctuation: every store orders ids by code point.
    ids = sorted(f"{base}-{s}" for s in ["A", "a", "B", "b", "_", "-", ".", "0", "9", "Z"])
    ids += [f"{base}-{i:03d}" for i in range(15)]
    ids.sort()
    for vehicle_id in reversed(ids):
        await live.commit(vehicle_id, {}, telemetry(vehicle_id))
    seen: list[str] = []
    after = None
    while True:
        page = await live.page(7, after)
        seen += [t["vehicle_id"] for t in page]
        if len(page) < 7:
            break
        after = page[-1]["vehicle_id"]
    assert [v for v in seen if v.startswith(f"{base}-")] == ids
    assert seen == sorted(seen)
    assert await live.count() >= 25


async def test_recent_lists_the_latest_updated_first(live: Live) -> None:
    a, b, c = vid("r"), vid("r"), vid("r")
    for vehicle_id in (a, b, c):
        await live.commit(vehicle_id, {}, telemetry(vehicle_id))
        await asyncio.sleep(0.002)  # distinct update times for the Redis index
    await live.commit(a, {}, telemetry(a))
    recent = [t["vehicle_id"] for t in await live.recent(3)]
    assert recent == [a, c, b]
    assert await live.recent(0) == []


async def test_a_trace_reaches_the_vehicle_feed_only_and_is_not_stored(live: Live) -> None:
    v = vid("t")
    trace = {"elapsed_s": [1.0, 2.0], "soc": [80.0, 79.5]}
    vehicle_sub, fleet_sub = live.subscribe(v), live.subscribe(None)
    try:
        await live.commit(v, {"soc": 0.795}, telemetry(v, soc=79.5), trace=trace)
        on_vehicle = orjson.loads((await asyncio.wait_for(vehicle_sub.get(), 5)).text)
        on_fleet = orjson.loads((await asyncio.wait_for(fleet_sub.get(), 5)).text)
    finally:
        live.unsubscribe(vehicle_sub)
        live.unsubscribe(fleet_sub)
    assert on_vehicle["trace"] == trace
    assert on_vehicle["telemetry"] == on_fleet["telemetry"] == {"vehicle_id": v, "soc": 79.5,
                                                               "rev": 1}  # fmt: skip
    assert "trace" not in on_fleet
    snapshot = await live.snapshot(v)
    assert snapshot is not None and "trace" not in snapshot["telemetry"]
    assert "trace" not in (await live.history(v, 10))[0]


async def drive(live: Live, v: str, times_s: list[float], **fixed: Any) -> list[dict[str, Any]]:
    """Commit one step per time (seconds after T0) with varying values; the stored records."""
    records = []
    for i, t in enumerate(times_s):
        tel = telemetry(
            v, timestamp=at(t), soc=80.0 - 0.37 * i, power_kw=(-1) ** i * (3.0 + i),
            temperature=25.0 + 0.1 * (i % 7), total_distance_km=0.5 * i, **fixed,
        )  # fmt: skip
        await live.commit(v, {"soc": tel["soc"] / 100, "i": i}, tel)
        records.append(tel)
    return records


async def test_history_reads_a_time_range_oldest_first(live: Live) -> None:
    v = vid("range")
    records = await drive(live, v, [10.0 * i for i in range(20)])
    got = await live.history(v, 100, since=T0 + timedelta(seconds=50), until=T0 + timedelta(
        seconds=120))  # fmt: skip
    assert [r["rev"] for r in got] == list(range(6, 13))  # t = 50 ... 110; until is exclusive
    assert got == records[5:12]
    newest = await live.history(v, 3, since=T0)
    assert [r["rev"] for r in newest] == [18, 19, 20]
    assert await live.history(v, 10, since=T0 + timedelta(hours=1)) == []
    assert [r["rev"] for r in await live.history(v, 2)] == [19, 20]


def assert_buckets_equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [b["timestamp"] for b in got] == [b["timestamp"] for b in want]
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for key, value in w.items():
            if isinstance(value, float):
                assert g[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
            else:
                assert g[key] == value, key


@pytest.mark.parametrize("every_s", [30.0, 60.0, 120.0, 3600.0, 7200.0, 45.0])
async def test_buckets_are_the_means_and_ranges_of_the_records(live: Live, every_s: float) -> None:
    v = vid("b")
    records = await drive(live, v, [7.0 * i + 0.25 * (i % 3) for i in range(60)] + [9000.0])
    for rec, rev in zip(records, itertools.count(1), strict=False):
        rec["rev"] = rev
    got = await live.buckets(v, every_s, 1000)
    assert_buckets_equal(got, bucketize(v, records, every_s))
    assert sum(b["count"] for b in got) == len(records)
    # A range on the bucket grid, and one off it; the newest `limit` buckets.
    since, until = T0 - timedelta(seconds=T0.timestamp() % 3600), T0 + timedelta(seconds=300)
    in_range = [r for r in records if since <= datetime.fromisoformat(r["timestamp"]) < until]
    assert_buckets_equal(
        await live.buckets(v, every_s, 1000, since, until), bucketize(v, in_range, every_s)
    )
    off = T0 + timedelta(seconds=61.5)
    later = [r for r in records if datetime.fromisoformat(r["timestamp"]) >= off]
    assert_buckets_equal(await live.buckets(v, every_s, 2, off), bucketize(v, later, every_s)[-2:])


async def test_buckets_of_missing_values_are_null(live: Live) -> None:
    v = vid("null")
    await live.commit(v, {}, telemetry(v, timestamp=at(0), soc=50.0))
    await live.commit(v, {}, telemetry(v, timestamp=at(1), soc=None))
    (bucket,) = await live.buckets(v, 60.0)
    assert bucket["count"] == 2 and bucket["soc"] == 50.0 and bucket["power_kw"] is None
    assert bucket["soc_min"] == bucket["soc_max"] == 50.0 and bucket["total_distance_km"] is None


async def test_the_state_at_a_rev_and_at_a_time(live: Live) -> None:
    v = vid("rev")
    records = await drive(live, v, [0.0, 10.0, 20.0, 30.0])
    third = await live.snapshot(v, rev=3)
    assert third is not None
    assert third["rev"] == 3 and third["state"] == {"soc": records[2]["soc"] / 100, "i": 2,
                                                    "rev": 3}  # fmt: skip
    assert third["telemetry"] == {**records[2], "rev": 3}
    assert (await live.snapshot(v, rev=4)) == await live.snapshot(v)
    assert await live.snapshot(v, rev=5) is None
    assert await live.snapshot(v, rev=0) is None
    between = await live.snapshot(v, at=T0 + timedelta(seconds=15))
    assert between is not None and between["rev"] == 2
    exact = await live.snapshot(v, at=T0 + timedelta(seconds=20))
    assert exact is not None and exact["rev"] == 3
    later = await live.snapshot(v, at=T0 + timedelta(days=3))
    assert later is not None and later["rev"] == 4
    assert await live.snapshot(v, at=T0 - timedelta(seconds=1)) is None
    assert await live.snapshot(vid("unknown"), rev=1) is None


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_volatile_stores_keep_the_newest_states_only(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Memory and Redis keep history_states states per vehicle; an older rev is known but its
    state is not kept (the SQL stores keep every state within their retention)."""
    s = store_settings(kind, request, history_states=3)
    backend = Live(create_store(s), MemoryHub(s), s)
    await backend.start()
    try:
        v = vid("kept")
        await drive(backend, v, [float(i) for i in range(6)])
        assert (await backend.snapshot(v, rev=4)) is not None
        with pytest.raises(StateNotKept):
            await backend.snapshot(v, rev=3)
    finally:
        await backend.close()


TIMES = st.lists(st.floats(0, 20_000, allow_nan=False).map(lambda t: round(t, 3)), min_size=1,
                 max_size=40).map(sorted)  # fmt: skip


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(times=TIMES, every=st.sampled_from([1.0, 15.0, 60.0, 180.0, 3600.0]))
async def test_every_store_buckets_any_drive_like_the_reference(
    live: Live, times: list[float], every: float
) -> None:
    v = vid("prop")
    records = await drive(live, v, times)
    for rec, rev in zip(records, itertools.count(1), strict=False):
        rec["rev"] = rev
    assert_buckets_equal(await live.buckets(v, every, 10_000), bucketize(v, records, every))
    assert await live.history(v, 10_000) == records


async def test_memory_store_drops_the_least_recently_updated_beyond_its_cap() -> None:
    s, metrics = Settings(max_vehicles=3), Metrics()
    live = Live(MemoryStore(s, metrics), MemoryHub(s, metrics), s, metrics)
    await live.start()
    try:
        for vehicle_id in ("m-1", "m-2", "m-3"):
            await live.commit(vehicle_id, {}, telemetry(vehicle_id))
        await live.commit("m-1", {}, telemetry("m-1"))  # m-2 is now the oldest
        await live.commit("m-4", {}, telemetry("m-4"))
        assert await live.snapshot("m-2") is None
        assert [t["vehicle_id"] for t in await live.page(10)] == ["m-1", "m-3", "m-4"]
        assert await live.history("m-2") == []
        assert live.metrics.store_evicted.value() == 1
        assert await live.count() == 3
    finally:
        await live.close()


# -- hubs -------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def hubs(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two hubs as two replicas would have them (the memory hub: the same one twice)."""
    if request.param == "memory":
        hub = MemoryHub(Settings())
        await hub.start()
        yield hub, hub
        await hub.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    s = Settings(hub_url=server.url, redis_prefix=f"hub-{next(_prefixes)}:")
    a, b = create_hub(s), create_hub(s)
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


async def received(sub: Any, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    return [orjson.loads((await asyncio.wait_for(sub.get(), timeout_s)).text) for _ in
            range(count)]  # fmt: skip


async def test_a_hub_delivers_each_vehicles_messages_in_rev_order(hubs: tuple[Hub, Hub]) -> None:
    """Messages of one vehicle published out of order (two replicas' commits crossing) reach
    subscribers in rev order; an overtaken duplicate is dropped."""
    a, b = hubs
    v = vid("order")
    sub, fleet = b.subscribe(v), b.subscribe(None)
    try:
        for rev in (1, 3, 2, 2, 4):
            await a.publish(encode_message("state", v, rev, telemetry(v, rev=rev)), rev == 1)
        assert [m["rev"] for m in await received(sub, 4)] == [1, 2, 3, 4]
        assert [m["rev"] for m in await received(fleet, 4)] == [1, 2, 3, 4]
        # A missing rev does not hold the stream for long.
        await a.publish(encode_message("state", v, 6, telemetry(v, rev=6)))
        assert [m["rev"] for m in await received(sub, 1, timeout_s=2)] == [6]
        assert b.known_rev(v) == 6
        # The store began a new counter (it lost its data): delivered, marked as a reset.
        await a.publish(encode_message("state", v, 1, telemetry(v, rev=1)), True)
        message = await asyncio.wait_for(sub.get(), 5)
        assert message.rev == 1 and message.reset
    finally:
        b.unsubscribe(sub)
        b.unsubscribe(fleet)


async def test_a_hub_cuts_the_trace_for_the_fleet(hubs: tuple[Hub, Hub]) -> None:
    a, b = hubs
    v = vid("cut")
    sub, fleet = b.subscribe(v), b.subscribe(None)
    try:
        trace = {"soc": [1.0, math.pi]}
        await a.publish(encode_message("state", v, 1, telemetry(v, rev=1), trace=trace), True)
        (on_vehicle,) = await received(sub, 1)
        (on_fleet,) = await received(fleet, 1)
        assert on_vehicle["trace"] == trace and "trace" not in on_fleet
        assert on_vehicle["telemetry"] == on_fleet["telemetry"]
    finally:
        b.unsubscribe(sub)
        b.unsubscribe(fleet)


async def test_a_new_hold_waits_its_full_time(hubs: tuple[Hub, Hub]) -> None:
    """A message held after an earlier hold was resolved is not released by the earlier
    hold's timer (which would drop the missing rev once it arrives)."""
    a, b = hubs
    v = vid("hold")
    sub = b.subscribe(v)
    try:
        for rev in (1, 3, 2):
            await a.publish(encode_message("state", v, rev, telemetry(v, rev=rev)), rev == 1)
        assert [m["rev"] for m in await received(sub, 3)] == [1, 2, 3]
        await asyncio.sleep(0.15)
        await a.publish(encode_message("state", v, 5, telemetry(v, rev=5)))
        await asyncio.sleep(0.15)  # past the first hold's end, inside the second's
        await a.publish(encode_message("state", v, 4, telemetry(v, rev=4)))
        assert [m["rev"] for m in await received(sub, 2)] == [4, 5]
    finally:
        b.unsubscribe(sub)


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
async def test_sql_retention_drops_old_records_and_keeps_their_buckets(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Beyond history_retention_days the records (and their states) go; the 1-minute buckets
    stay for history_rollup_days and the hourly ones for ever."""
    s = store_settings(kind, request, history_retention_days=30, history_rollup_days=60)
    store = create_store(s)
    backend = Live(store, MemoryHub(s), s)
    await backend.start()
    try:
        v = vid("ret")
        now = T0 + timedelta(days=100)
        ages_days = [90, 90, 45, 45, 1, 0]
        times = [(now - timedelta(days=d) - T0).total_seconds() + i for i, d in
                 enumerate(ages_days)]  # fmt: skip
        records = await drive(backend, v, times)
        for rec, rev in zip(records, itertools.count(1), strict=False):
            rec["rev"] = rev
        await store.prune(now.timestamp())  # type: ignore[attr-defined]
        assert [r["rev"] for r in await backend.history(v, 100)] == [5, 6]
        hourly = await backend.buckets(v, 3600.0, 100)
        assert [b["count"] for b in hourly] == [2, 2, 1, 1]
        assert_buckets_equal(hourly, bucketize(v, records, 3600.0))
        minutes = await backend.buckets(v, 60.0, 100, since=now - timedelta(days=59))
        assert [b["count"] for b in minutes] == [2, 1, 1]
        with pytest.raises(StateNotKept):
            await backend.snapshot(v, rev=2)
        with pytest.raises(StateNotKept):
            await backend.snapshot(v, at=now - timedelta(days=44))
        latest = await backend.snapshot(v, rev=6)
        assert latest is not None and latest["rev"] == 6
    finally:
        await backend.close()
