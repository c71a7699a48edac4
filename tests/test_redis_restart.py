"""Redis stopped and restarted under running replicas (a private redis-server): /ready reports
the outage, /step keeps answering, and the stream resumes without restarting the service."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets
from support.live import metric_value, recv_json, step_body, ws_url
from support.processes import RedisServer, start_service, start_services
from websockets.asyncio.client import connect


async def wait_ready(base_url: str, status: int, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            resp = await client.get(f"{base_url}/ready")
            if resp.status_code == status:
                return resp.json()
            assert time.monotonic() < deadline, f"/ready stayed {resp.status_code}"
            await asyncio.sleep(0.05)


async def test_stream_survives_a_redis_restart(redis_server: RedisServer) -> None:
    with start_services(2, hub_url=redis_server.url) as (url_a, url_b):
        async with (
            connect(ws_url(url_b, "/ws/vehicles/rr-1")) as ws,
            httpx.AsyncClient(timeout=10) as client,
        ):

            async def post() -> dict:
                resp = await client.post(f"{url_a}/step", json=step_body("rr-1"))
                assert resp.status_code == 200, resp.text
                return resp.json()

            for rev in range(1, 6):
                assert (await post())["rev"] == rev
                assert (await recv_json(ws))["rev"] == rev

            redis_server.stop()
            for url in (url_a, url_b):
                body = await wait_ready(url, 503)
                assert body["status"] == "not_ready" and body["hub"] == "redis"
            # /step still answers; the step is counted as not published.
            during = await post()
            assert during["rev"] == 6 and during["telemetry"]["rev"] == 6
            assert metric_value(url_a, "twin_publish_failures_total") >= 1
            assert metric_value(url_a, "twin_hub_up") == 0
            outage_read = await client.get(f"{url_b}/vehicles/rr-1")
            assert outage_read.status_code == 503 and outage_read.json()["detail"]
            async with connect(ws_url(url_b, "/ws/vehicles/rr-1")) as refused:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await recv_json(refused)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013

            redis_server.start()  # same port, empty: nothing was persisted
            for url in (url_a, url_b):
                await wait_ready(url, 200)
            # Revs continue above what the replicas handed out, though Redis lost its counter.
            after = [await post() for _ in range(5)]
            assert [p["rev"] for p in after] == [7, 8, 9, 10, 11]
            received = [await recv_json(ws) for _ in range(5)]
            assert [(m["type"], m["rev"]) for m in received] == [("state", r) for r in range(7, 12)]
            assert [m["telemetry"] for m in received] == [p["telemetry"] for p in after]
            snapshot = (await client.get(f"{url_b}/vehicles/rr-1")).json()
            assert snapshot == after[-1]
            assert metric_value(url_b, "twin_hub_reconnects_total") >= 1


async def test_service_starts_while_redis_is_down(redis_server: RedisServer) -> None:
    redis_server.stop()
    with start_service(hub_url=redis_server.url) as url:
        await wait_ready(url, 503, timeout_s=2)
        resp = httpx.post(f"{url}/step", json=step_body("rr-2"))
        assert resp.status_code == 200 and resp.json()["rev"] == 1
        redis_server.start()
        await wait_ready(url, 200)
        async with connect(ws_url(url, "/ws/vehicles/rr-2")) as ws:
            assert httpx.post(f"{url}/step", json=step_body("rr-2")).json()["rev"] == 2
            assert (await recv_json(ws))["rev"] == 2
