"""One contract for every hub/store backend (memory and a real Redis): conditional commits,
revs, snapshots, pages of vehicles and the most recently updated ones."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from support.processes import RedisServer

from twin_service.live import LiveBackend
from twin_service.live.base import RevConflict
from twin_service.live.memory import MemoryLive
from twin_service.live.redis import RedisLive
from twin_service.settings import Settings

_prefixes = itertools.count()


@pytest.fixture(params=["memory", "redis"])
async def live(request: pytest.FixtureRequest) -> AsyncIterator[LiveBackend]:
    if request.param == "memory":
        backend: LiveBackend = MemoryLive(Settings())
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"contract-{next(_prefixes)}:"
        backend = RedisLive(Settings(hub_url=server.url, redis_prefix=prefix))
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


def telemetry(vehicle_id: str, **extra: Any) -> dict[str, Any]:
    return {"vehicle_id": vehicle_id, **extra}


async def test_conditional_commits_chain_and_conflicts_store_nothing(live: LiveBackend) -> None:
    assert await live.commit("c-1", {"soc": 0.5}, telemetry("c-1"), expect_rev=0) == 1
    state: dict[str, Any] = {"soc": 0.4}
    assert await live.commit("c-1", state, telemetry("c-1"), expect_rev=1) == 2
    assert state["rev"] == 2
    for stale in (0, 1, 3):
        with pytest.raises(RevConflict) as caught:
            await live.commit("c-1", {"soc": 0.1}, telemetry("c-1", bad=True), expect_rev=stale)
        assert caught.value.current_rev == 2
    snapshot = await live.snapshot("c-1")
    assert snapshot is not None
    assert snapshot["rev"] == 2 and snapshot["state"] == {"rev": 2, "soc": 0.4}
    assert [t["rev"] for t in await live.history("c-1")] == [1, 2]
    # Unconditional (replace) continues the count.
    assert await live.commit("c-1", {"soc": 0.9}, telemetry("c-1"), expect_rev=None) == 3


async def test_a_state_ahead_of_an_unknown_vehicle_keeps_its_count(live: LiveBackend) -> None:
    """A twin resumed against an emptied store continues above the rev its state carries."""
    assert await live.commit("c-2", {"soc": 0.5}, telemetry("c-2"), expect_rev=41) == 42
    with pytest.raises(RevConflict):
        await live.commit("c-2", {"soc": 0.5}, telemetry("c-2"), expect_rev=41)


async def test_racing_writers_of_one_vehicle_cannot_interleave(live: LiveBackend) -> None:
    """Ten writers post from the same rev at once: exactly one wins each round."""
    rev = 0
    for _ in range(5):
        results = await asyncio.gather(
            *(live.commit("race", {"w": w}, telemetry("race"), expect_rev=rev) for w in range(10)),
            return_exceptions=True,
        )
        won = [r for r in results if isinstance(r, int)]
        assert won == [rev + 1]
        assert all(isinstance(r, RevConflict) for r in results if not isinstance(r, int))
        rev += 1
    assert [t["rev"] for t in await live.history("race")] == [1, 2, 3, 4, 5]


async def test_pages_walk_every_vehicle_once_in_id_order(live: LiveBackend) -> None:
    ids = [f"p-{i:03d}" for i in range(25)]
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
    assert [v for v in seen if v.startswith("p-")] == ids
    assert await live.count() >= 25


async def test_recent_lists_the_latest_updated_first(live: LiveBackend) -> None:
    for vehicle_id in ("r-a", "r-b", "r-c"):
        await live.commit(vehicle_id, {}, telemetry(vehicle_id))
        await asyncio.sleep(0.002)  # distinct update times for the Redis index
    await live.commit("r-a", {}, telemetry("r-a"))
    recent = [t["vehicle_id"] for t in await live.recent(3)]
    assert recent == ["r-a", "r-c", "r-b"]
    assert await live.recent(0) == []


async def test_memory_store_drops_the_least_recently_updated_beyond_its_cap() -> None:
    live = MemoryLive(Settings(max_vehicles=3))
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


async def test_a_trace_reaches_the_vehicle_feed_only_and_is_not_stored(live: LiveBackend) -> None:
    trace = {"elapsed_s": [1.0, 2.0], "soc": [80.0, 79.5]}
    vehicle_sub, fleet_sub = live.subscribe("t-1"), live.subscribe(None)
    try:
        await live.commit("t-1", {"soc": 0.795}, telemetry("t-1", soc=79.5), trace=trace)
        on_vehicle = orjson.loads((await asyncio.wait_for(vehicle_sub.get(), 5)).text)
        on_fleet = orjson.loads((await asyncio.wait_for(fleet_sub.get(), 5)).text)
    finally:
        live.unsubscribe(vehicle_sub)
        live.unsubscribe(fleet_sub)
    assert on_vehicle["trace"] == trace
    assert on_vehicle["telemetry"] == on_fleet["telemetry"] == {"vehicle_id": "t-1", "soc": 79.5,
                                                               "rev": 1}  # fmt: skip
    assert "trace" not in on_fleet
    snapshot = await live.snapshot("t-1")
    assert snapshot is not None and "trace" not in snapshot["telemetry"]
    assert "trace" not in (await live.history("t-1", 10))[0]
