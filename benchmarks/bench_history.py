"""History stores: what group commit costs, and query times on a year of 1 Hz data.

1. Commits in-process (`Live.commit`, the path of every stored /step after the model): steps
   per second and latency with 1, 16 and 64 concurrent writers, memory against SQLite and
   PostgreSQL (each step's state and telemetry as a real step makes them), and the steps per
   transaction group commit reached.
2. Queries through HTTP (a real service on the store) on one vehicle with a year of 1 Hz
   data: the full-resolution records of the retention window (history_retention_days, 30 by
   default: 2.6 million rows, each with its state) and the 1-minute and hourly buckets of the
   whole year, loaded as the store writes them. Best of 5 requests, response decoded.

Needs PostgreSQL on 127.0.0.1:5432 (a fresh database is made and dropped); without it those
rows are skipped. `make bench` loads 2 full-resolution days (`--raw-days`; 30, the default
retention, takes about 11 GB of disk and 4 minutes more): the day queries read an index range,
so their cost does not depend on how many other days the table holds.
3. POST /step through HTTP (wrk, 32 connections, single samples for 64 vehicles in turn): what
   the store's commit adds to the user's path, against the memory store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from benchmarks.common import machine, service, table
from twin_service.live import Live, create_store
from twin_service.live import sql as sqlmod
from twin_service.live.history import iso_of
from twin_service.live.memory import MemoryHub
from twin_service.metrics import Metrics
from twin_service.settings import Settings
from twin_service.step.service import run_step_body

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
COMMIT_SECONDS = 3.0
YEAR_S = 365 * 86400
END = datetime(2026, 12, 1, tzinfo=UTC)
CHUNK = 50_000


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str | None]:
    name = f"twin_bench_{uuid.uuid4().hex[:10]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001  (no server: skipped)
        print(f"bench_history: PostgreSQL rows skipped ({exc})")
        yield None
        return
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with contextlib.suppress(Exception):
            await _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def real_step() -> tuple[dict[str, Any], dict[str, Any]]:
    body = orjson.dumps({"vehicle_id": "b", "samples": [{"dt_s": 1.0, "power_kw": 20.0}]})
    out = run_step_body(body, "sv1ev3", 1000, 200, False)
    return out.state, out.telemetry


async def commits(url: str | None, writers: int) -> tuple[float, float, float, float]:
    """(steps/s, p50 ms, p99 ms, steps per transaction) for `writers` concurrent writers."""
    settings = Settings(store_url=url)
    metrics = Metrics()
    live = Live(create_store(settings, metrics), MemoryHub(settings, metrics), settings, metrics)
    await live.start()
    state, telemetry = real_step()
    latencies: list[float] = []
    stop = time.perf_counter() + COMMIT_SECONDS

    async def writer(i: int) -> None:
        vehicle_id = f"bench-{uuid.uuid4().hex[:6]}-{i}"
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            tel = {**telemetry, "timestamp": datetime.now(UTC).isoformat()}
            await live.commit(vehicle_id, dict(state), tel)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    elapsed = time.perf_counter() - t0
    transactions = metrics.store_transactions.value()
    await live.close()
    latencies.sort()
    per_tx = len(latencies) / transactions if transactions else 1.0
    return (
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1e3,
        latencies[int(len(latencies) * 0.99)] * 1e3,
        per_tx,
    )


def year_of_data(raw_days: int) -> tuple[dict[str, np.ndarray], int, int]:
    """A year of 1 Hz values ending at END: soc cycling daily, power and temperature."""
    n = YEAR_S
    t = END.timestamp() - YEAR_S + np.arange(n, dtype=np.float64)
    day = (t % 86400) / 86400
    values = {
        "ts": t,
        "soc": 60 + 30 * np.cos(2 * np.pi * day),
        "soh": 100 - 2.0 * np.arange(n) / n,
        "temperature": 25 + 8 * np.sin(2 * np.pi * day) + 3 * np.sin(t / 3600),
        "voltage": 380 + 20 * np.cos(2 * np.pi * day),
        "current": 40 * np.sin(t / 97.0),
        "power_kw": 15 * np.sin(t / 97.0),
        "ambient_c": 15 + 10 * np.sin(2 * np.pi * day),
        "resistance_factor": 1 + 0.2 * np.arange(n) / n,
        "total_distance_km": np.arange(n) * 0.004,
        "energy_throughput_kwh": np.arange(n) * 0.001,
        "cycle_count": np.arange(n) / 86400,
        "simulated_days": np.arange(n) / 86400,
        "tms_energy_kwh": np.arange(n) * 1e-5,
    }
    return values, n - raw_days * 86400, n


def tier_rows(values: dict[str, np.ndarray], width: int, vehicle_id: str) -> list[tuple]:
    """The tier's rows as the store writes them, from whole buckets of the year."""
    n = len(values["ts"]) // width * width
    start = math.floor(values["ts"][0] / width)
    out: list[tuple] = []
    cols: list[np.ndarray] = []
    for field in sqlmod.MEAN_FIELDS:
        block = values[field][:n].reshape(-1, width)
        cols += [block.sum(axis=1), np.full(block.shape[0], float(width))]
        if field in sqlmod.RANGE_FIELDS:
            cols += [block.min(axis=1), block.max(axis=1)]
    for field in sqlmod.LAST_FIELDS:
        cols.append(values[field][:n].reshape(-1, width).max(axis=1))
    rows = np.column_stack(cols)
    revs = np.arange(width, n + 1, width)
    for i in range(rows.shape[0]):
        out.append((vehicle_id, start + i, width, int(revs[i]), *map(float, rows[i])))
    return out


def raw_rows(values: dict[str, np.ndarray], first: int, last: int, vehicle_id: str,
             state_json: str, telemetry: dict[str, Any]) -> Iterator[list[tuple]]:  # fmt: skip
    batch: list[tuple] = []
    names = sqlmod.VALUE_COLUMNS
    for i in range(first, last):
        ts = float(values["ts"][i])
        row_values = [float(values[c][i]) for c in names]
        tel = {**telemetry, **dict(zip(names, row_values, strict=True)), "rev": i + 1,
               "timestamp": iso_of(ts), "vehicle_id": vehicle_id}  # fmt: skip
        batch.append((vehicle_id, i + 1, ts, *row_values, state_json, orjson.dumps(tel).decode()))
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


async def load(url: str, vehicle_id: str, raw_days: int) -> float:
    """Fill the store with a year of one vehicle; returns the load time (s)."""
    settings = Settings(store_url=url)
    store = create_store(settings)
    await store.start()  # migrates
    await store.close()
    state, telemetry = real_step()
    values, first, last = year_of_data(raw_days)
    state_json = orjson.dumps(state).decode()
    t0 = time.perf_counter()
    tiers = {tier: tier_rows(values, width, vehicle_id) for tier, width in sqlmod.TIERS.items()}
    cols = ["vehicle_id", "rev", "ts", *sqlmod.VALUE_COLUMNS, "state", "telemetry"]
    tier_cols = ["vehicle_id", "bucket", "n", "rev", *sqlmod.rollup_columns()]
    last_tel = {**telemetry, "rev": last, "vehicle_id": vehicle_id,
                "timestamp": iso_of(float(values["ts"][last - 1]))}  # fmt: skip
    last_state = orjson.dumps({**state, "rev": last}).decode()
    snapshot = (vehicle_id, last, float(values["ts"][last - 1]), int(time.time() * 1e6),
                last_state, orjson.dumps(last_tel).decode())  # fmt: skip
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            for rows in raw_rows(values, first, last, vehicle_id, state_json, telemetry):
                await conn.copy_records_to_table("twin_history", records=rows, columns=cols)
            for tier, rows in tiers.items():
                await conn.copy_records_to_table(f"twin_history_{tier}", records=rows,
                                                 columns=tier_cols)  # fmt: skip
            await conn.execute(sqlmod.insert_snapshot(sqlmod.POSTGRESQL), *snapshot)
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
    else:
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///") :])
        d = sqlmod.SQLITE
        with conn:
            for rows in raw_rows(values, first, last, vehicle_id, state_json, telemetry):
                conn.executemany(sqlmod.insert_history(d), rows)
            for tier, rows in tiers.items():
                marks = ", ".join("?" for _ in tier_cols)
                conn.executemany(f"INSERT INTO twin_history_{tier} ({', '.join(tier_cols)}) "
                                 f"VALUES ({marks})", rows)  # fmt: skip
            conn.execute(sqlmod.insert_snapshot(d), snapshot)
        conn.execute("ANALYZE")
        conn.close()
    return time.perf_counter() - t0


QUERIES = [
    ("a day, every record", timedelta(days=1), None),
    ("a day, 10 s buckets (full resolution)", timedelta(days=1), 10),
    ("a day, 1 min buckets", timedelta(days=1), 60),
    ("a month, 1 min buckets", timedelta(days=30), 60),
    ("a month, 1 h buckets", timedelta(days=30), 3600),
    ("a year, 1 h buckets", timedelta(days=365), 3600),
    ("a year, 1 day buckets", timedelta(days=365), 86400),
]


def query_times(url: str, vehicle_id: str) -> list[tuple[str, int, float]]:
    out = []
    with service({"TWIN_STORE_URL": url}) as base, httpx.Client(timeout=120) as client:
        for name, span, every in QUERIES:
            params: dict[str, Any] = {
                "since": (END - span).isoformat(), "until": END.isoformat(), "limit": 100_000,
            }  # fmt: skip
            if every:
                params["every"] = every
            best, count = math.inf, 0
            for _ in range(5):
                t0 = time.perf_counter()
                resp = client.get(f"{base}/vehicles/{vehicle_id}/history", params=params)
                resp.raise_for_status()
                count = len(resp.json())
                best = min(best, time.perf_counter() - t0)
            out.append((name, count, best * 1e3))
        rev = client.get(f"{base}/vehicles/{vehicle_id}").json()["rev"]
        t0 = time.perf_counter()
        client.get(f"{base}/vehicles/{vehicle_id}", params={"rev": rev - 5000}).raise_for_status()
        out.append(("the state at a rev (?rev=)", 1, (time.perf_counter() - t0) * 1e3))
        at = (END - timedelta(hours=27)).isoformat()
        t0 = time.perf_counter()
        client.get(f"{base}/vehicles/{vehicle_id}", params={"at": at}).raise_for_status()
        out.append(("the state at a time (?at=)", 1, (time.perf_counter() - t0) * 1e3))
    return out


STEP_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = '{"vehicle_id":"wrk-' .. (n % 64) .. '","samples":[{"dt_s":1.0,"power_kw":20.0}],'
    .. '"options":{"replace":true}}'
  return wrk.format(nil, nil, nil, body)
end
"""


def http_steps(stores: list[tuple[str, str | None]], tmp: Path) -> None:
    if shutil.which("wrk") is None:
        print("bench_history: the HTTP rows need wrk (apt-get install wrk)")
        return
    from benchmarks.bench_http import wrk

    script = tmp / "steps.lua"
    script.write_text(STEP_LUA)
    rows = []
    base = None
    for name, url in stores:
        env = {"TWIN_STORE_URL": url} if url else {}
        with service(env) as base_url:
            wrk(base_url + "/step", script)  # warm-up
            rps, p50, p99 = wrk(base_url + "/step", script)
        base = base or rps
        rows.append([name, rps, p50, p99, rps / base])
    table(
        "POST /step through HTTP, one sample, 64 vehicles in turn, wrk -c32",
        ["store", "req/s", "p50 ms", "p99 ms", "x memory"],
        rows,
    )


async def run(raw_days: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with postgres_database() as pg:
            stores = [("memory", None), ("sqlite", f"sqlite:///{Path(tmp) / 'c.sqlite3'}")]
            if pg:
                stores.append(("postgresql", pg))
            rows = []
            base: dict[int, float] = {}
            for name, url in stores:
                for writers in (1, 16, 64):
                    rate, p50, p99, per_tx = await commits(url, writers)
                    base.setdefault(writers, rate)
                    rows.append([name, writers, rate, p50, p99, per_tx, rate / base[writers]])
            table(
                f"Store commits in-process, a real step's state and telemetry ({machine()})",
                [
                    "store",
                    "writers",
                    "steps/s",
                    "p50 ms",
                    "p99 ms",
                    "steps/transaction",
                    "x memory",
                ],  # fmt: skip
                rows,
            )
            http_stores = [(n, u if n != "sqlite" else f"sqlite:///{Path(tmp) / 'h.sqlite3'}")
                           for n, u in stores]  # fmt: skip
            await asyncio.to_thread(http_steps, http_stores, Path(tmp))
            for name, url in stores[1:]:
                assert url is not None
                if name == "sqlite":
                    url = f"sqlite:///{Path(tmp) / 'year.sqlite3'}"
                vehicle_id = "year-1"
                seconds = await load(url, vehicle_id, raw_days)
                print(f"\n{name}: loaded a year ({raw_days} days at 1 Hz in full) in "
                      f"{seconds:.0f} s")  # fmt: skip
                table(
                    f"History queries on {name}: one vehicle, a year of 1 Hz data ({raw_days} "
                    "days at full resolution), through HTTP, best of 5",
                    ["query", "records", "ms"],
                    [list(r) for r in await asyncio.to_thread(query_times, url, vehicle_id)],
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw-days", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.raw_days))


if __name__ == "__main__":
    main()
