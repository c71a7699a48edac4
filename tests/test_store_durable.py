"""The durable stores with real service processes: a real PostgreSQL (a fresh database on the
machine's server) and SQLite. History and snapshots survive a restart and a kill -9 loses no
step that was answered 200; two replicas on one PostgreSQL keep revs unique and in order; an
unreachable database refuses steps (503) instead of losing them. Redis with its append-only
file keeps history across a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.live import STEP_SAMPLE, recv_json, step_body, ws_url
from support.postgres import fresh_database, private_postgres
from support.processes import RedisServer, ServiceProcess, free_port, start_services
from websockets.asyncio.client import connect

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.sqlite3'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def chain(url: str, vehicle_id: str, steps: int) -> list[dict[str, Any]]:
    """`steps` chained steps of one vehicle from a new pack; the responses."""
    out: list[dict[str, Any]] = []
    state = None
    with httpx.Client(timeout=30) as client:
        for _ in range(steps):
            body = {"vehicle_id": vehicle_id, "state": state, "samples": [STEP_SAMPLE] * 5}
            resp = client.post(f"{url}/step", json=body)
            assert resp.status_code == 200, resp.text
            out.append(resp.json())
            state = out[-1]["state"]
    return out


def test_snapshots_and_history_survive_a_restart(store_url: str, tmp_path: Path) -> None:
    service = ServiceProcess(env={"TWIN_STORE_URL": store_url}, log_dir=tmp_path)
    service.start()
    try:
        answers = {v: chain(service.url, v, 12) for v in ("dur-a", "dur-b")}
        before = httpx.get(f"{service.url}/vehicles/dur-a").json()
        history = httpx.get(f"{service.url}/vehicles/dur-a/history?limit=100").json()
        assert [r["rev"] for r in history] == list(range(1, 13))
        service.stop()
        service.start()
        assert httpx.get(f"{service.url}/ready").json()["store_up"] is True
        assert httpx.get(f"{service.url}/vehicles/dur-a").json() == before
        assert httpx.get(f"{service.url}/vehicles/dur-a/history?limit=100").json() == history
        assert [t["telemetry"] for t in answers["dur-a"]] == history
        # The state at an earlier rev is the step's answer then.
        fifth = httpx.get(f"{service.url}/vehicles/dur-b?rev=5").json()
        assert fifth == {k: answers["dur-b"][4][k] for k in ("vehicle_id", "rev", "state",
                                                             "telemetry")}  # fmt: skip
        at = answers["dur-b"][7]["telemetry"]["timestamp"]
        assert httpx.get(f"{service.url}/vehicles/dur-b", params={"at": at}).json()["rev"] == 8
        # The twin continues where it was: its state's rev is still the stored one.
        body = {"vehicle_id": "dur-a", "state": before["state"], "samples": [STEP_SAMPLE]}
        assert httpx.post(f"{service.url}/step", json=body).json()["rev"] == 13
        ids = [t["vehicle_id"] for t in httpx.get(f"{service.url}/vehicles").json()]
        assert ids == ["dur-a", "dur-b"]
    finally:
        service.stop()


async def test_a_kill_9_loses_no_answered_step(store_url: str, tmp_path: Path) -> None:
    """Eight clients step their vehicles as fast as they can; the service is killed mid-run.
    Every step answered 200 is in the store afterwards, with the telemetry it was answered
    with."""
    service = ServiceProcess(env={"TWIN_STORE_URL": store_url}, log_dir=tmp_path)
    service.start()
    answered: dict[str, list[dict[str, Any]]] = {f"kill-{i}": [] for i in range(8)}

    async def worker(client: httpx.AsyncClient, vehicle_id: str) -> None:
        state = None
        with contextlib.suppress(httpx.TransportError):
            while True:
                body = {"vehicle_id": vehicle_id, "state": state, "samples": [STEP_SAMPLE] * 3}
                resp = await client.post(f"{service.url}/step", json=body)
                assert resp.status_code == 200, resp.text
                answer = resp.json()
                answered[vehicle_id].append(answer)
                state = answer["state"]

    try:
        async with httpx.AsyncClient(timeout=30) as client:
            tasks = [asyncio.create_task(worker(client, v)) for v in answered]
            while sum(len(a) for a in answered.values()) < 300:
                await asyncio.sleep(0.01)
            service.kill()
            await asyncio.gather(*tasks)
        service.start()
        for vehicle_id, answers in answered.items():
            assert answers, vehicle_id
            stored = httpx.get(
                f"{service.url}/vehicles/{vehicle_id}/history", params={"limit": 100_000}
            ).json()
            by_rev = {r["rev"]: r for r in stored}
            for answer in answers:
                assert by_rev.get(answer["rev"]) == answer["telemetry"], (vehicle_id, answer["rev"])
            # At most the steps in flight were stored without an answer.
            assert len(stored) - len(answers) <= 1
    finally:
        service.stop()


async def test_two_replicas_on_one_postgresql_keep_revs_unique_and_ordered(pg_url: str) -> None:
    vehicles = ["two-a", "two-b", "two-c"]
    with start_services(2, env={"TWIN_STORE_URL": pg_url}) as urls:
        async with httpx.AsyncClient(timeout=30) as client:

            async def worker(url: str, vehicle_id: str) -> list[dict[str, Any]]:
                out = []
                for _ in range(25):
                    resp = await client.post(f"{url}/step", json=step_body(vehicle_id))
                    assert resp.status_code == 200, resp.text
                    out.append(resp.json())
                return out

            async def chained(url: str, vehicle_id: str) -> int:
                """Chained steps racing the others: a conflict restarts from the latest."""
                done = 0
                while done < 10:
                    latest = (await client.get(f"{url}/vehicles/{vehicle_id}")).json()
                    body = {"vehicle_id": vehicle_id, "state": latest["state"],
                            "samples": [STEP_SAMPLE]}  # fmt: skip
                    resp = await client.post(f"{url}/step", json=body)
                    assert resp.status_code in (200, 409), resp.text
                    done += resp.status_code == 200
                return done

            for v in vehicles:
                assert (await client.post(f"{urls[0]}/step", json=step_body(v))).json()["rev"] == 1
            jobs = [worker(u, v) for v in vehicles for u in urls * 2]
            races = [chained(u, v) for v in vehicles for u in urls]
            results = await asyncio.gather(*jobs, *races)
        answers = [a for group in results[: len(jobs)] for a in group]  # type: ignore[union-attr]
        for v in vehicles:
            revs = sorted(a["rev"] for a in answers if a["vehicle_id"] == v)
            assert len(revs) == len(set(revs)) == 100
            for url in urls:
                stored = httpx.get(f"{url}/vehicles/{v}/history", params={"limit": 1000}).json()
                # 1 first step, 100 unconditional and 20 chained ones: contiguous revs.
                assert [r["rev"] for r in stored] == list(range(1, 122))
                assert set(revs) <= {r["rev"] for r in stored}
                snapshot = httpx.get(f"{url}/vehicles/{v}").json()
                assert snapshot["rev"] == 121 and snapshot["telemetry"] == stored[-1]


def test_an_unreachable_database_refuses_steps(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    service = ServiceProcess(env={"TWIN_STORE_URL": url}, log_dir=tmp_path)
    service.start()
    try:
        ready = httpx.get(f"{service.url}/ready")
        assert ready.status_code == 503
        assert ready.json()["store"] == "postgresql" and ready.json()["store_up"] is False
        resp = httpx.post(f"{service.url}/step", json=step_body("nowhere-1"))
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert resp.json()["detail"][0]["loc"] == ["store"]
        assert "127.0.0.1" not in resp.text  # no internal address in the answer
        read = httpx.get(f"{service.url}/vehicles/nowhere-1")
        assert read.status_code == 503
        # A what-if step (not stored) still answers.
        body = {**step_body("nowhere-1"), "options": {"store": False}}
        assert httpx.post(f"{service.url}/step", json=body).status_code == 200
    finally:
        service.stop()


def test_redis_with_its_append_only_file_keeps_history_across_a_restart(tmp_path: Path) -> None:
    with RedisServer(appendonly=True) as redis:
        redis.start()
        service = ServiceProcess(hub_url=redis.url, log_dir=tmp_path)
        service.start()
        try:
            answers = chain(service.url, "aof-1", 6)
            history = httpx.get(f"{service.url}/vehicles/aof-1/history").json()
            redis.stop()
            redis.start()
            with httpx.Client(timeout=5) as client:
                for _ in range(200):
                    if client.get(f"{service.url}/ready").status_code == 200:
                        break
                    time.sleep(0.05)
                assert client.get(f"{service.url}/vehicles/aof-1/history").json() == history
                assert [a["telemetry"] for a in answers] == history
                body = {"vehicle_id": "aof-1", "state": answers[-1]["state"],
                        "samples": [STEP_SAMPLE]}  # fmt: skip
                assert client.post(f"{service.url}/step", json=body).json()["rev"] == 7
        finally:
            service.stop()


def wait_status(client: httpx.Client, url: str, status: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get(url).status_code != status:
        assert time.monotonic() < deadline, f"{url} never answered {status}"
        time.sleep(0.05)


def test_a_database_restart_refuses_steps_meanwhile_and_loses_none(tmp_path: Path) -> None:
    """PostgreSQL stops under a running service and comes back: meanwhile /step answers 503
    (nothing stored) and /ready 503; afterwards the service reconnects on its own and every
    step answered 200, before and after, is stored, and nothing else."""
    with private_postgres() as pg:
        service = ServiceProcess(env={"TWIN_STORE_URL": pg.url}, log_dir=tmp_path)
        service.start()
        try:
            with httpx.Client(base_url=service.url, timeout=30) as client:
                answers = chain(service.url, "pg-down", 5)
                pg.stop()
                body = {"vehicle_id": "pg-down", "state": answers[-1]["state"],
                        "samples": [STEP_SAMPLE]}  # fmt: skip
                refused = client.post("/step", json=body)
                assert refused.status_code == 503, refused.text
                wait_status(client, "/ready", 503)
                assert client.get("/vehicles/pg-down").status_code == 503
                pg.start()
                wait_status(client, "/ready", 200)
                again = client.post("/step", json=body)
                assert again.status_code == 200 and again.json()["rev"] == 6
                history = client.get("/vehicles/pg-down/history").json()
                assert [r["rev"] for r in history] == [1, 2, 3, 4, 5, 6]
                assert history == [a["telemetry"] for a in answers] + [again.json()["telemetry"]]
        finally:
            service.stop()


async def test_replicas_on_postgresql_and_redis_keep_order_and_history_through_a_redis_restart(
    pg_url: str, redis_server: RedisServer
) -> None:
    """compose's layout: two replicas, PostgreSQL the store, Redis the hub. Concurrent steps
    to both replicas reach a WebSocket client in rev order; Redis restarts empty (no file):
    nothing stored is lost and the stream goes on."""
    env = {"TWIN_STORE_URL": pg_url}
    with start_services(2, hub_url=redis_server.url, env=env) as (url_a, url_b):
        async with (
            connect(ws_url(url_b, "/ws/vehicles/pg-redis")) as ws,
            httpx.AsyncClient(timeout=30) as client,
        ):

            async def worker(url: str) -> list[int]:
                revs = []
                for _ in range(30):
                    resp = await client.post(f"{url}/step", json=step_body("pg-redis"))
                    assert resp.status_code == 200, resp.text
                    revs.append(resp.json()["rev"])
                return revs

            results = await asyncio.gather(*(worker(u) for u in (url_a, url_b) * 2))
            assert sorted(r for revs in results for r in revs) == list(range(1, 121))
            seen = [(await recv_json(ws))["rev"] for _ in range(120)]
            assert seen == list(range(1, 121))
            history = (await client.get(f"{url_a}/vehicles/pg-redis/history")).json()
            redis_server.stop()
            redis_server.start()
            for url in (url_a, url_b):
                deadline = time.monotonic() + 20
                while (await client.get(f"{url}/ready")).status_code != 200:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            assert (await client.get(f"{url_b}/vehicles/pg-redis/history")).json() == history
            resp = await client.post(f"{url_a}/step", json=step_body("pg-redis"))
            assert resp.json()["rev"] == 121
            message = await recv_json(ws)
            while message["rev"] < 121:
                message = await recv_json(ws)
            assert message["rev"] == 121 and message["telemetry"] == resp.json()["telemetry"]
