"""WebSocket fan-out: messages per second one replica delivers to 100 clients, and the delay
from POST /step on replica A to delivery on replica B (both replicas on one private Redis).

    python -m benchmarks.bench_fanout [--clients 100] [--steps 1000] [--latency-steps 500]

The clients run in two separate processes (so the figure is the service's, as far as the
machine's cores allow); steps are single-sample POST /step requests from 4 concurrent posters.
Fan-out is measured with and without permessage-deflate, which browsers negotiate by default
and which costs the service one compression per client per message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import machine, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.processes import RedisServer, start_services  # noqa: E402

CLIENT_PROCESSES = 2
POSTERS = 4


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


# -- fan-out --------------------------------------------------------------------------------

def _client_process(url: str, count: int, last_rev: int, compression: str | None,
                    ready: Any, results: Any) -> None:
    asyncio.run(_clients(url, count, last_rev, compression, ready, results))


async def _clients(url: str, count: int, last_rev: int, compression: str | None,
                   ready: Any, results: Any) -> None:
    from websockets.asyncio.client import connect

    conns = [await connect(url, compression=compression, max_size=None) for _ in range(count)]
    ready.put(count)

    async def consume(ws: Any) -> tuple[int, int, float, float]:
        received = gaps = 0
        first = last = 0.0
        prev = None
        while True:
            message = json.loads(await ws.recv())
            now = time.time()
            first = first or now
            last = now
            received += 1
            if prev is not None and message["rev"] != prev + 1:
                gaps += 1
            prev = message["rev"]
            if prev >= last_rev:
                return received, gaps, first, last

    try:
        stats = await asyncio.wait_for(asyncio.gather(*(consume(ws) for ws in conns)), 120)
    finally:
        for ws in conns:
            await ws.close()
    results.put(stats)


async def _post_steps(base_url: str, vehicle_id: str, steps: int) -> float:
    """Post `steps` single-sample steps from POSTERS concurrent posters; returns seconds."""
    body = {"vehicle_id": vehicle_id, "samples": [{"dt_s": 0.1, "power_kw": 20.0}]}
    remaining = steps
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def poster() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                resp = await client.post("/step", json=body)
                resp.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(POSTERS)))
        return time.perf_counter() - started


def fanout(base_url: str, clients: int, steps: int, compression: str | None,
           vehicle_id: str) -> list[Any]:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    per_process = [clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES)
                   for i in range(CLIENT_PROCESSES)]
    url = ws_url(base_url, f"/ws/vehicles/{vehicle_id}")
    procs = [ctx.Process(target=_client_process,
                         args=(url, n, steps, compression, ready, results))
             for n in per_process]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    started = time.time()
    post_s = asyncio.run(_post_steps(base_url, vehicle_id, steps))
    stats = [s for _ in procs for s in results.get(timeout=180)]
    for p in procs:
        p.join(30)
    received = sum(s[0] for s in stats)
    gaps = sum(s[1] for s in stats)
    elapsed = max(s[3] for s in stats) - started
    return [
        clients, "deflate" if compression else "off", steps, f"{steps / post_s:.0f}",
        f"{received / elapsed:.0f}", f"{received / (clients * steps):.1%}", gaps,
        f"{elapsed:.2f}",
    ]


# -- cross-replica latency ------------------------------------------------------------------

async def latency(url_a: str, url_b: str, steps: int) -> list[list[Any]]:
    from websockets.asyncio.client import connect

    body = {"vehicle_id": "bench-latency", "samples": [{"dt_s": 0.1, "power_kw": 20.0}]}
    delivery_ms: list[float] = []
    response_ms: list[float] = []
    async with connect(ws_url(url_b, "/ws/vehicles/bench-latency")) as ws, \
            httpx.AsyncClient(base_url=url_a, timeout=10) as client:
        await client.post("/step", json=body)  # warm up both sides
        while json.loads(await ws.recv())["type"] != "state":
            pass
        for _ in range(steps):
            t0 = time.perf_counter()
            post = asyncio.create_task(client.post("/step", json=body))
            message = json.loads(await ws.recv())
            delivery_ms.append((time.perf_counter() - t0) * 1000)
            resp = await post
            response_ms.append((time.perf_counter() - t0) * 1000)
            assert resp.json()["rev"] == message["rev"]

    def row(name: str, values: list[float]) -> list[Any]:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return [name, len(values), f"{statistics.median(values):.2f}", f"{p99:.2f}",
                f"{ordered[-1]:.2f}"]

    return [row("POST /step on A -> message on B's WebSocket", delivery_ms),
            row("POST /step on A -> HTTP response (for comparison)", response_ms)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--latency-steps", type=int, default=500)
    args = parser.parse_args()
    print(f"bench_fanout on {machine()}")
    env = {"TWIN_WS_QUEUE_SIZE": "1024"}  # measure delivery, not the slow-client policy
    with RedisServer() as redis:
        redis.start()
        with start_services(2, hub_url=redis.url, env=env) as (url_a, url_b):
            rows = [fanout(url_a, args.clients, args.steps, compression, f"bench-fan-{i}")
                    for i, compression in enumerate((None, "deflate"))]
            table(f"Fan-out: one replica (Redis hub) to {args.clients} WebSocket clients",
                  ["clients", "compression", "steps", "steps/s posted", "messages/s delivered",
                   "delivered", "gaps", "s"], rows)
            table("Cross-replica delay (Redis pub/sub), sequential steps",
                  ["path", "n", "median ms", "p99 ms", "max ms"],
                  asyncio.run(latency(url_a, url_b, args.latency_steps)))


if __name__ == "__main__":
    main()
