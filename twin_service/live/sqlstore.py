"""The durable store: PostgreSQL (asyncpg) or SQLite (the standard library), one SQL module.

Group commit: `commit` queues the step and waits; one writer task takes every queued step (up
to store_batch_max), writes them in one transaction — the rev check and the snapshot of each,
their history rows and their buckets — and answers each after the transaction committed. So a
/step is answered 200 only once its record is on disk (PostgreSQL's synchronous_commit, SQLite's
synchronous=FULL), and concurrent steps share one commit (one WAL flush).

What a crash can lose: steps whose transaction had not committed. None of them was answered
200 (their clients get an error or no answer, and post again). The hub publishes after the
commit, so a crash between the two loses only a live message; clients catch up by snapshot.

Revs with several replicas on one PostgreSQL: the batch locks its vehicles' snapshot rows (in
id order, so two batches cannot deadlock) before it decides their revs, so revs are unique and
each vehicle's revs are committed in order. Two replicas creating the same new vehicle at once:
the second's insert finds the row and its batch is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from twin_service.live import sql
from twin_service.live.base import (
    DEFAULT_HISTORY_LIMIT,
    Committed,
    LiveUnavailable,
    RevConflict,
    StateNotKept,
    StoreUnavailable,
)
from twin_service.live.history import (
    LAST_FIELDS,
    MEAN_FIELDS,
    RANGE_FIELDS,
    bucket_members,
    epoch_of,
    iso_of,
    number,
    record_time,
)
from twin_service.metrics import Metrics
from twin_service.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
READY_TIMEOUT_S = 1.0
RECONNECT_S = 1.0
PRUNE_EVERY_S = 60.0
RETRIES = 5
# Finite stand-ins for open time bounds.
NEVER_BEFORE, NEVER_AFTER = -1e15, 1e15


@dataclass(eq=False)
class _Pending:
    vehicle_id: str
    state: dict[str, Any]
    telemetry: dict[str, Any]
    expect_rev: int | None
    floor_rev: int
    future: asyncio.Future[Committed]
    ts: float = field(init=False)

    def __post_init__(self) -> None:
        t = record_time(self.telemetry)
        self.ts = time.time() if t is None else t


class _Raced(Exception):
    """Another writer created a vehicle this batch was creating: retry the batch."""


Outcome = Committed | RevConflict


def _plan(
    batch: Sequence[_Pending], stored: dict[str, int], now_us: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[Outcome]]:
    """Decide each step's rev (or conflict) in order: the snapshot rows to insert and to
    update (the last one per vehicle), the history rows, and each step's outcome."""
    inserts: dict[str, tuple[Any, ...]] = {}
    updates: dict[str, tuple[Any, ...]] = {}
    history: list[tuple[Any, ...]] = []
    outcome: list[Outcome] = []
    revs = dict(stored)
    for i, item in enumerate(batch):
        cur = revs.get(item.vehicle_id, 0)
        if item.expect_rev is not None and cur > 0 and item.expect_rev != cur:
            outcome.append(RevConflict(item.vehicle_id, cur, item.expect_rev))
            continue
        rev = max(cur, item.expect_rev or 0, item.floor_rev) + 1
        revs[item.vehicle_id] = rev
        state = {**item.state, "rev": rev}
        telemetry = {**item.telemetry, "rev": rev}
        state_json = orjson.dumps(state).decode()
        tel_json = orjson.dumps(telemetry).decode()
        row = (item.vehicle_id, rev, item.ts, now_us + i, state_json, tel_json)
        (updates if item.vehicle_id in stored else inserts)[item.vehicle_id] = row
        values = tuple(number(telemetry.get(c)) for c in sql.VALUE_COLUMNS)
        history.append((item.vehicle_id, rev, item.ts, *values, state_json, tel_json))
        outcome.append(Committed(rev, cur == 0))
    return list(inserts.values()), list(updates.values()), history, outcome


def _bucket_rows(history: list[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    """The batch's history rows summed into one row per (vehicle, bucket) of a tier."""
    index = {c: 3 + i for i, c in enumerate(sql.VALUE_COLUMNS)}
    groups: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for row in history:
        groups.setdefault((row[0], math.floor(row[2] / width)), []).append(row)
    out = []
    for (vehicle_id, bucket), rows in groups.items():
        cols: list[Any] = [vehicle_id, bucket, len(rows), max(r[1] for r in rows)]
        for name in MEAN_FIELDS:
            values = [r[index[name]] for r in rows if r[index[name]] is not None]
            cols += [math.fsum(values), len(values)]
            if name in RANGE_FIELDS:
                cols += [min(values, default=None), max(values, default=None)]
        for name in LAST_FIELDS:
            values = [r[index[name]] for r in rows if r[index[name]] is not None]
            cols.append(max(values, default=None))
        out.append(tuple(cols))
    return out


def _bucket_dicts(vehicle_id: str, rows: list[Sequence[Any]], every_s: float) -> list[dict]:
    names = bucket_members()[2:]  # count, rev, then the values
    out = []
    for row in reversed(rows):
        bucket: dict[str, Any] = {
            "vehicle_id": vehicle_id,
            "timestamp": iso_of(float(row[0]) * every_s),
        }
        for name, value in zip(names, row[1:], strict=True):
            bucket[name] = value
        bucket["count"] = int(bucket["count"])
        bucket["rev"] = int(bucket["rev"])
        out.append(bucket)
    return out


class _Driver(Protocol):
    """What differs between PostgreSQL and SQLite: connections and running statements."""

    dialect: sql.Dialect

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, batch: list[_Pending], now_us: int) -> list[Outcome]: ...

    async def fetch(self, query: str, *args: Any) -> list[Sequence[Any]]: ...

    async def execute(self, query: str, *args: Any) -> None: ...


class _Postgres(_Driver):
    dialect = sql.POSTGRESQL

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None
        self.writer: Any = None

    async def connect(self) -> None:
        import asyncpg

        self.writer = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S)
        async with self.writer.transaction():
            await self.writer.execute(sql.MIGRATION_LOCK)
            await _migrate_pg(self.writer, self.dialect)
        self.pool = await asyncpg.create_pool(
            self.url, min_size=1, max_size=4, timeout=CONNECT_TIMEOUT_S
        )

    async def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.writer.close()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await self.pool.close()
        self.writer = self.pool = None

    async def write(self, batch: list[_Pending], now_us: int) -> list[Outcome]:
        d = self.dialect
        conn = self.writer
        async with conn.transaction():
            ids = sorted({item.vehicle_id for item in batch})
            rows = await conn.fetch(sql.lock_revs(d, len(ids)), ids)
            stored = {r[0]: int(r[1]) for r in rows}
            inserts, updates, history, outcome = _plan(batch, stored, now_us)
            for row in inserts:
                status = await conn.execute(sql.insert_snapshot(d), *row)
                if status.endswith(" 0"):
                    raise _Raced(row[0])
            if updates:
                await conn.executemany(sql.update_snapshot(d), updates)
            if history:
                await conn.executemany(sql.insert_history(d), history)
                for tier, width in sql.TIERS.items():
                    await conn.executemany(sql.upsert_bucket(d, tier), _bucket_rows(history, width))
        return outcome

    async def fetch(self, query: str, *args: Any) -> list[Sequence[Any]]:
        async with self.pool.acquire() as conn:
            return list(await conn.fetch(query, *args))

    async def execute(self, query: str, *args: Any) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(query, *args)


async def _migrate_pg(conn: Any, d: sql.Dialect) -> None:
    await conn.execute(sql.CREATE_MIGRATIONS)
    applied = int(await conn.fetchval(sql.APPLIED))
    for version, statements in enumerate(sql.migrations(d), start=1):
        if version > applied:
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(sql.RECORD_MIGRATION, version)
            log.info("store schema migrated to version %d", version)


class _Sqlite(_Driver):
    """One writer connection and one reader connection, each on its own thread (WAL mode:
    readers do not wait for the writer)."""

    dialect = sql.SQLITE

    def __init__(self, path: str) -> None:
        self.path = path
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._read_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-read")
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn)

    async def connect(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def migrate() -> None:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(sql.CREATE_MIGRATIONS)
                applied = int(conn.execute(sql.APPLIED).fetchone()[0])
                for version, statements in enumerate(sql.migrations(self.dialect), start=1):
                    if version > applied:
                        for statement in statements:
                            conn.execute(statement)
                        conn.execute(self.dialect.sql(sql.RECORD_MIGRATION), (version,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(self._write_pool, migrate)

    async def close(self) -> None:
        def close_conn() -> None:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

        for pool in (self._write_pool, self._read_pool):
            with contextlib.suppress(Exception):
                await self._run(pool, close_conn)

    async def write(self, batch: list[_Pending], now_us: int) -> list[Outcome]:
        d = self.dialect

        def transaction() -> list[Outcome]:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                ids = sorted({item.vehicle_id for item in batch})
                rows = conn.execute(sql.lock_revs(d, len(ids)), ids).fetchall()
                stored = {r[0]: int(r[1]) for r in rows}
                inserts, updates, history, outcome = _plan(batch, stored, now_us)
                conn.executemany(sql.insert_snapshot(d), inserts)
                conn.executemany(sql.update_snapshot(d), updates)
                conn.executemany(sql.insert_history(d), history)
                for tier, width in sql.TIERS.items():
                    conn.executemany(sql.upsert_bucket(d, tier), _bucket_rows(history, width))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return outcome

        return await self._run(self._write_pool, transaction)

    async def fetch(self, query: str, *args: Any) -> list[Sequence[Any]]:
        return await self._run(
            self._read_pool, lambda: self._conn().execute(query, args).fetchall()
        )

    async def execute(self, query: str, *args: Any) -> None:
        await self._run(self._write_pool, lambda: self._conn().execute(query, args))


def _driver_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, sqlite3.Error, TimeoutError]
    with contextlib.suppress(ImportError):
        import asyncpg

        errors += [asyncpg.PostgresError, asyncpg.InterfaceError]
    return tuple(errors)


class SqlStore:
    durable = True

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        url = settings.store
        if url.startswith("sqlite:///"):
            self.kind = "sqlite"
            # sqlite:///relative/path or sqlite:////absolute/path
            self.driver: _Driver = _Sqlite(url[len("sqlite:///") :])
        else:
            self.kind = "postgresql"
            self.driver = _Postgres(url.replace("postgres://", "postgresql://", 1))
        self.d = self.driver.dialect
        self._errors = _driver_errors()
        self._up = False
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self._last_us = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and migrate; when the database is down, the service starts anyway (not
        ready, steps answered 503) and keeps trying."""
        self._tasks = [
            asyncio.create_task(self._connect_forever(), name="sql-connect"),
            asyncio.create_task(self._write_forever(), name="sql-writer"),
            asyncio.create_task(self._prune_forever(), name="sql-prune"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT_S * 2)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(StoreUnavailable("store closing"))
        await self.driver.close()

    async def _connect_forever(self) -> None:
        failures = 0
        while True:
            if not self._up:
                try:
                    await self.driver.close()
                    await self.driver.connect()
                except self._errors as exc:
                    failures += 1
                    level = logging.WARNING if failures == 1 else logging.DEBUG
                    log.log(level, "%s store unreachable: %s", self.kind, exc)
                else:
                    if failures:
                        log.info("%s store reachable again", self.kind)
                    failures = 0
                    self._set_up(True)
                    self._connected.set()
            await asyncio.sleep(RECONNECT_S)

    def _set_up(self, up: bool) -> None:
        self._up = up
        self.metrics.store_up.set(1 if up else 0)

    async def ready(self) -> bool:
        if not self._up:
            return False
        try:
            await asyncio.wait_for(self.driver.fetch(sql.PING), READY_TIMEOUT_S)
        except self._errors:
            return False
        return True

    def status(self) -> dict[str, Any]:
        return {"store": self.kind, "store_up": self._up}

    # -- the writer ------------------------------------------------------------------------

    async def commit(
        self,
        vehicle_id: str,
        state: dict[str, Any],
        telemetry: dict[str, Any],
        expect_rev: int | None = None,
        floor_rev: int = 0,
    ) -> Committed:
        if not self._up:
            raise StoreUnavailable(f"{self.kind} store unreachable")
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(vehicle_id, state, telemetry, expect_rev, floor_rev,
                                        future))  # fmt: skip
        committed = await future
        state["rev"] = telemetry["rev"] = committed.rev
        return committed

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.settings.store_batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [item for item in batch if not item.future.done()]
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        for attempt in range(RETRIES):
            now_us = max(int(time.time() * 1e6), self._last_us + 1)
            self._last_us = now_us + len(batch)
            try:
                outcome = await self.driver.write(batch, now_us)
                self.metrics.store_transactions.inc()
            except _Raced:
                continue
            except self._errors as exc:
                if _retryable(exc) and attempt + 1 < RETRIES:
                    continue
                log.warning("%s store: %d steps not committed: %s", self.kind, len(batch), exc)
                if not _retryable(exc):
                    self._set_up(False)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(StoreUnavailable(str(exc)))
                return
            self.metrics.store_committed.inc(sum(isinstance(r, Committed) for r in outcome))
            for item, result in zip(batch, outcome, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
            return
        for item in batch:
            if not item.future.done():
                item.future.set_exception(StoreUnavailable("the batch kept racing; retry"))

    async def _prune_forever(self) -> None:
        await self._connected.wait()
        while True:
            try:
                await self.prune(time.time())
            except self._errors as exc:
                log.info("%s store: pruning skipped: %s", self.kind, exc)
            await asyncio.sleep(PRUNE_EVERY_S)

    async def prune(self, now_s: float) -> None:
        """Drop full-resolution records older than the retention, and 1-minute buckets older
        than theirs (hourly buckets are kept)."""
        s = self.settings
        await self.driver.execute(
            sql.prune_history(self.d), now_s - s.history_retention_days * 86400
        )
        oldest_minute = math.floor((now_s - s.history_rollup_days * 86400) / 60)
        await self.driver.execute(sql.prune_minutes(self.d), oldest_minute)

    # -- reads -----------------------------------------------------------------------------

    async def _fetch(self, query: str, *args: Any) -> list[Sequence[Any]]:
        if not self._up:
            raise LiveUnavailable(f"{self.kind} store unreachable")
        try:
            return await self.driver.fetch(query, *args)
        except self._errors as exc:
            raise LiveUnavailable(str(exc)) from exc

    async def snapshot(
        self, vehicle_id: str, rev: int | None = None, at: datetime | None = None
    ) -> dict[str, Any] | None:
        rows = await self._fetch(sql.snapshot(self.d), vehicle_id)
        if not rows:
            return None
        current_rev = int(rows[0][0])
        if at is not None and float(rows[0][3]) <= epoch_of(at):
            pass  # the latest step is the state at that time
        elif at is not None:
            at_s = epoch_of(at)
            rows = await self._fetch(sql.state_at_time(self.d), vehicle_id, at_s)
            if not rows:
                older = await self._fetch(
                    sql.bucketed_before(self.d), vehicle_id, math.floor(at_s / 3600)
                )
                if older:
                    raise StateNotKept(
                        f"the state of {vehicle_id} at {iso_of(at_s)} is older than the retention"
                    )
                return None
        elif rev is not None and rev != current_rev:
            if rev < 1 or rev > current_rev:
                return None
            rows = await self._fetch(sql.state_at_rev(self.d), vehicle_id, rev)
            if not rows:
                raise StateNotKept(f"the state of {vehicle_id} at rev {rev} is older than the "
                                   "retention")  # fmt: skip
        found_rev, state, telemetry = rows[0][:3]
        return {
            "vehicle_id": vehicle_id,
            "rev": int(found_rev),
            "state": orjson.loads(state),
            "telemetry": orjson.loads(telemetry),
        }

    async def latest(self, vehicle_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch(sql.latest(self.d), vehicle_id)
        return [orjson.loads(r[0]) for r in rows]

    async def page(self, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        rows = await self._fetch(sql.page(self.d), after or "", limit)
        return [orjson.loads(r[0]) for r in rows]

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        rows = await self._fetch(sql.recent(self.d), limit)
        return [orjson.loads(r[0]) for r in rows]

    async def count(self) -> int:
        rows = await self._fetch(sql.COUNT)
        return int(rows[0][0])

    async def history(
        self,
        vehicle_id: str,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        lo, hi = _bounds(since, until)
        rows = await self._fetch(sql.history(self.d), vehicle_id, lo, hi, limit)
        return [orjson.loads(r[0]) for r in reversed(rows)]

    async def buckets(
        self,
        vehicle_id: str,
        every_s: float,
        limit: int = DEFAULT_HISTORY_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        lo, hi = _bounds(since, until)
        for tier, width in sorted(sql.TIERS.items(), key=lambda kv: -kv[1]):
            # A tier serves buckets made of whole tier buckets within bounds on its grid.
            if every_s % width == 0 and all(
                b in (NEVER_BEFORE, NEVER_AFTER) or b % width == 0 for b in (lo, hi)
            ):
                rows = await self._fetch(
                    sql.buckets_tier(self.d, tier), vehicle_id, math.floor(lo / width),
                    math.ceil(hi / width), limit, int(every_s // width),
                )  # fmt: skip
                return _bucket_dicts(vehicle_id, rows, every_s)
        rows = await self._fetch(sql.buckets_raw(self.d), vehicle_id, lo, hi, limit, float(every_s))
        return _bucket_dicts(vehicle_id, rows, every_s)


def _bounds(since: datetime | None, until: datetime | None) -> tuple[float, float]:
    return (
        NEVER_BEFORE if since is None else epoch_of(since),
        NEVER_AFTER if until is None else epoch_of(until),
    )


def _retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the batch can simply run again."""
    return getattr(exc, "sqlstate", None) in ("40P01", "40001")
