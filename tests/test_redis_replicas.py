"""Two real service replicas sharing one real Redis: cross-replica fan-out in rev order,
snapshots on connect, reconnects without gap or duplicate, invalid ids, bounded history."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from support.live import recv_json, step_body, ws_url
from support.processes import RedisServer, start_services
from websockets.asyncio.client import connect

from twin_service.live import create_live
from twin_service.live.redis import RedisStore
from twin_service.settings import Settings

HISTORY_RECENT, HISTORY_TAIL = 50, 20


@pytest.fixture(scope="module")
def replicas(redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    env = {"TWIN_HISTORY_RECENT": str(HISTORY_RECENT), "TWIN_HISTORY_TAIL": str(HISTORY_TAIL)}
    with start_services(2, hub_url=redis_server.url, env=env) as (url_a, url_b):
        yield url_a, url_b


async def post_steps(base_url: str, vehicle_id: str, count: int) -> list[dict[str, Any]]:
    """`count` chained steps of one vehicle, one after the other."""
    out: list[dict[str, Any]] = []
    state = None
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for _ in range(count):
            resp = await client.post("/step", json=step_body(vehicle_id, state))
            assert resp.status_code == 200, resp.text
            out.append(resp.json())
            state = out[-1]["state"]
    return out


async def collect(ws: Any, until_rev: int) -> list[dict[str, Any]]:
    messages = []
    while not messages or messages[-1]["rev"] < until_rev:
        messages.append(await recv_json(ws))
    return messages


async def test_client_on_b_gets_every_step_posted_to_a_in_order(
    replicas: tuple[str, str],
) -> None:
    url_a, url_b = replicas
    async with connect(ws_url(url_b, "/ws/vehicles/rep-1")) as ws:
        posted = await post_steps(url_a, "rep-1", 150)
        received = await collect(ws, 150)
    assert [m["type"] for m in received] == ["state"] * 150
    assert [m["rev"] for m in received] == list(range(1, 151))
    assert [m["telemetry"] for m in received] == [p["telemetry"] for p in posted]
    on_a = httpx.get(f"{url_a}/vehicles/rep-1").json()
    on_b = httpx.get(f"{url_b}/vehicles/rep-1").json()
    assert on_a == on_b == posted[-1]


async def test_concurrent_posts_to_both_replicas_arrive_in_rev_order(
    replicas: tuple[str, str],
) -> None:
    url_a, url_b = replicas
    async with (
        connect(ws_url(url_a, "/ws/vehicles/rep-2")) as ws_a,
        connect(ws_url(url_b, "/ws/fleet")) as ws_fleet,
    ):
        async with httpx.AsyncClient(timeout=10) as client:

            async def worker(base_url: str) -> list[int]:
                revs = []
                for _ in range(40):
                    resp = await client.post(f"{base_url}/step", json=step_body("rep-2"))
                    revs.append(resp.json()["rev"])
                return revs

            results = await asyncio.gather(*(worker(u) for u in (url_a, url_b) * 3))
        assert sorted(r for revs in results for r in revs) == list(range(1, 241))
        on_a = await collect(ws_a, 240)
        fleet = [m for m in await collect_fleet(ws_fleet, "rep-2", 240)]
    assert [m["rev"] for m in on_a] == list(range(1, 241))
    assert [m["rev"] for m in fleet] == list(range(1, 241))


async def collect_fleet(ws: Any, vehicle_id: str, until_rev: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1]["rev"] < until_rev:
        message = await recv_json(ws)
        if message["vehicle_id"] == vehicle_id:
            messages.append(message)
    return messages


async def test_snapshot_on_connect_and_reconnects_see_no_gap_or_duplicate(
    replicas: tuple[str, str],
) -> None:
    url_a, url_b = replicas
    await post_steps(url_a, "rep-3", 5)
    async with connect(ws_url(url_b, "/ws/vehicles/rep-3")) as ws:
        first = await recv_json(ws)
    assert (first["type"], first["rev"]) == ("snapshot", 5)

    total = 5 + 200
    producer = asyncio.create_task(post_steps(url_a, "rep-3", 200))
    last_seen = 5
    reconnects = 0
    while last_seen < total:
        async with connect(ws_url(url_b, "/ws/vehicles/rep-3")) as ws:
            reconnects += 1
            snapshot = await recv_json(ws)
            assert snapshot["type"] == "snapshot"
            assert snapshot["rev"] >= last_seen  # nothing older than what we had
            revs = [snapshot["rev"]]
            for _ in range(10):
                if revs[-1] == total:
                    break
                message = await recv_json(ws)
                assert message["type"] == "state"
                revs.append(message["rev"])
            assert revs == list(range(revs[0], revs[0] + len(revs))), revs  # no gap, no dup
            last_seen = revs[-1]
    await producer
    assert reconnects >= 3


async def test_invalid_vehicle_ids(replicas: tuple[str, str]) -> None:
    url_a, url_b = replicas
    for bad in ("bad!id", "x" * 65, "sp%20ace"):
        assert httpx.get(f"{url_b}/vehicles/{bad}").status_code == 422
        assert httpx.get(f"{url_b}/vehicles/{bad}/history").status_code == 422
        async with connect(ws_url(url_b, f"/ws/vehicles/{bad}")) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv_json(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    resp = httpx.post(f"{url_a}/step", json=step_body("bad id"))
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "vehicle_id"]
    assert httpx.get(f"{url_a}/vehicles/nobody-here").status_code == 404


async def test_history_through_the_service_is_bounded(replicas: tuple[str, str]) -> None:
    url_a, url_b = replicas
    await post_steps(url_a, "rep-hist", 200)
    history = httpx.get(f"{url_b}/vehicles/rep-hist/history?limit=10000").json()
    revs = [t["rev"] for t in history]
    assert len(revs) <= HISTORY_RECENT + HISTORY_TAIL
    assert revs[0] == 1 and revs[-HISTORY_RECENT:] == list(range(151, 201))
    assert revs == sorted(revs)


async def test_redis_history_bound_after_many_thousands_of_steps(
    redis_server: RedisServer,
) -> None:
    settings = Settings(
        hub_url=redis_server.url, history_recent=100, history_tail=40, redis_prefix="bound-test:"
    )
    live = create_live(settings)
    await live.start()
    try:
        for i in range(12_000):
            rev = await live.commit("many", {"soc": 0.5}, {"vehicle_id": "many", "i": i})
            assert rev == i + 1
        assert isinstance(live.store, RedisStore)
        redis = live.store._redis
        assert await redis.llen("bound-test:hist:many") == 100
        assert await redis.llen("bound-test:tail:many") <= 40
        history = await live.history("many", 10_000)
        revs = [t["rev"] for t in history]
        assert revs[0] == 1 and revs[-100:] == list(range(11_901, 12_001))
        assert revs == sorted(revs) and len(revs) <= 140
        snapshot = await live.snapshot("many")
        assert snapshot is not None and snapshot["rev"] == 12_000
        assert snapshot["telemetry"] == history[-1]
    finally:
        await live.close()
