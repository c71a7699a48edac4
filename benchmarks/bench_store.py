"""Memory store: memory per vehicle, the cap on vehicles, and the cost of the reads that run
on the event loop (a GET /vehicles page, the /ws/fleet snapshot) with a full store."""

from __future__ import annotations

import asyncio
import copy
import gc
import time
import tracemalloc
from typing import Any

from fastapi.testclient import TestClient

from benchmarks.common import machine, table
from twin_service.app import create_app
from twin_service.live import Live, create_live
from twin_service.settings import Settings


def _one_step() -> tuple[dict[str, Any], dict[str, Any]]:
    with TestClient(create_app(Settings())) as c:
        out = c.post("/step", json={"vehicle_id": "m", "samples": [{"dt_s": 1, "power_kw": 20}]})
        body = out.json()
    return body["state"], body["telemetry"]


async def _fill(live: Live, ids: int, steps_each: int, state: Any, tel: Any) -> None:
    for i in range(ids):
        for _ in range(steps_each):
            t = copy.deepcopy(tel)
            t["soc"] = 50.0 + (i % 97) / 7  # distinct floats, as real telemetry has
            await live.commit(f"v-{i:06d}", copy.deepcopy(state), t)


def _traced(ids: int, steps_each: int, state: Any, tel: Any, **settings: Any) -> tuple:
    live = create_live(Settings(**settings))
    gc.collect()
    tracemalloc.start()
    asyncio.run(_fill(live, ids, steps_each, state, tel))
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return live, used


def _ms(fn: Any) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        asyncio.run(fn())
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main() -> None:
    state, tel = _one_step()
    _, one = _traced(2000, 1, state, tel)
    _, full = _traced(1, 4000, state, tel)
    capped, cap_used = _traced(100_000, 1, state, tel)
    evicted = capped.metrics.store_evicted.value()
    big, _ = _traced(100_000, 1, state, tel, max_vehicles=100_000)
    page_ms = _ms(lambda: big.page(1000, "v-050000"))
    recent_ms = _ms(lambda: big.recent(1000))
    rows = [
        ["memory per vehicle, one step", f"{one / 2000 / 1024:.1f} KB"],
        ["memory per vehicle, full history (4000 records)", f"{full / 2**20:.1f} MB"],
        [
            "100,000 new vehicle ids, default cap (1000)",
            f"{cap_used / 2**20:.1f} MB kept, {evicted:.0f} dropped",
        ],
        ["GET /vehicles page of 1000 in a 100,000-vehicle store", f"{page_ms:.2f} ms"],
        ["/ws/fleet snapshot (1000 most recent) in that store", f"{recent_ms:.2f} ms"],
    ]
    table(f"Memory store ({machine()})", ["", "measured"], rows)


if __name__ == "__main__":
    main()
