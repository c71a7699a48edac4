"""Every SQL statement of the SQL stores (PostgreSQL and SQLite), and the migrations.

Tables (all names start with twin_):
    twin_migrations   the applied schema versions
    twin_snapshots    one row per vehicle: its latest rev, state and telemetry (JSON text)
    twin_history      one row per stored step: rev, time, the bucketed members as columns, the
                      state and the telemetry; kept for history_retention_days
    twin_history_1m   1-minute buckets of twin_history (sums, counts, min, max), kept for
                      history_rollup_days; twin_history_1h the hourly ones, kept for ever
The buckets are written in the same transaction as the step, so every tier always agrees with
what was stored. Times are seconds since the Unix epoch (the telemetry's timestamp).

Placeholders are written $1, $2, ... (PostgreSQL's); SQLite gets ?1, ?2, ... (the same
numbering). The few differences of dialect are the functions of `Dialect`.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin_service.live.history import LAST_FIELDS, MEAN_FIELDS, RANGE_FIELDS

TIERS = {"1m": 60, "1h": 3600}


@dataclass(frozen=True)
class Dialect:
    name: str
    # the text type of vehicle ids: ordered by code point, as the other stores order them
    id_type: str
    greatest: str
    least: str

    def floor(self, expr: str) -> str:
        if self.name == "postgresql":
            return f"floor({expr})"
        # SQLite has floor() only when built with its math functions.
        return f"(CAST({expr} AS INTEGER) - (CAST({expr} AS INTEGER) > ({expr})))"

    def sql(self, text: str) -> str:
        return text if self.name == "postgresql" else text.replace("$", "?")


POSTGRESQL = Dialect("postgresql", 'text COLLATE "C"', "GREATEST", "LEAST")
SQLITE = Dialect("sqlite", "text", "max", "min")

# The history's bucketed members as columns.
VALUE_COLUMNS = tuple(dict.fromkeys(MEAN_FIELDS + LAST_FIELDS))


def rollup_columns() -> list[str]:
    """The columns of a bucket tier after (vehicle_id, bucket, n, rev)."""
    cols: list[str] = []
    for field in MEAN_FIELDS:
        cols += [f"{field}_sum", f"{field}_n"]
        if field in RANGE_FIELDS:
            cols += [f"{field}_min", f"{field}_max"]
    return cols + [f"{field}_max" for field in LAST_FIELDS]


def migrations(d: Dialect) -> list[list[str]]:
    """Each migration: statements applied in one transaction, in order."""
    values = ", ".join(f"{c} double precision" for c in VALUE_COLUMNS)
    tiers = []
    for tier in TIERS:
        cols = ", ".join(f"{c} double precision" for c in rollup_columns())
        tiers.append(
            f"CREATE TABLE twin_history_{tier} (vehicle_id {d.id_type} NOT NULL, "
            f"bucket bigint NOT NULL, n bigint NOT NULL, rev bigint NOT NULL, {cols}, "
            "PRIMARY KEY (vehicle_id, bucket))"
        )
    return [
        [
            f"CREATE TABLE twin_snapshots (vehicle_id {d.id_type} PRIMARY KEY, "
            "rev bigint NOT NULL, ts double precision NOT NULL, updated bigint NOT NULL, "
            "state text NOT NULL, telemetry text NOT NULL)",
            "CREATE INDEX twin_snapshots_updated ON twin_snapshots (updated)",
            f"CREATE TABLE twin_history (vehicle_id {d.id_type} NOT NULL, rev bigint NOT NULL, "
            f"ts double precision NOT NULL, {values}, state text NOT NULL, "
            "telemetry text NOT NULL, PRIMARY KEY (vehicle_id, rev))",
            "CREATE INDEX twin_history_ts ON twin_history (vehicle_id, ts)",
            "CREATE INDEX twin_history_age ON twin_history (ts)",
            *tiers,
        ]
    ]


CREATE_MIGRATIONS = "CREATE TABLE IF NOT EXISTS twin_migrations (version integer PRIMARY KEY)"
APPLIED = "SELECT coalesce(max(version), 0) FROM twin_migrations"
RECORD_MIGRATION = "INSERT INTO twin_migrations (version) VALUES ($1)"
# PostgreSQL: replicas starting together migrate one at a time.
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7305116151)"


def lock_revs(d: Dialect, count: int) -> str:
    """The stored revs of `count` vehicles; PostgreSQL locks their rows (in id order, so two
    replicas' batches cannot deadlock). SQLite's BEGIN IMMEDIATE holds the write lock."""
    if d.name == "postgresql":
        return (
            "SELECT vehicle_id, rev FROM twin_snapshots WHERE vehicle_id = ANY($1::text[]) "
            "ORDER BY vehicle_id FOR UPDATE"
        )
    marks = ", ".join(f"${i + 1}" for i in range(count))
    return d.sql(f"SELECT vehicle_id, rev FROM twin_snapshots WHERE vehicle_id IN ({marks})")


def insert_snapshot(d: Dialect) -> str:
    """A new vehicle; does nothing if another writer created it first (checked by the
    caller)."""
    return d.sql(
        "INSERT INTO twin_snapshots (vehicle_id, rev, ts, updated, state, telemetry) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (vehicle_id) DO NOTHING"
    )


def update_snapshot(d: Dialect) -> str:
    return d.sql(
        "UPDATE twin_snapshots SET rev = $2, ts = $3, updated = $4, state = $5, telemetry = $6 "
        "WHERE vehicle_id = $1"
    )


def _insert(table: str, cols: list[str]) -> str:
    marks = ", ".join(f"${i + 1}" for i in range(len(cols)))
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"


def insert_history(d: Dialect) -> str:
    return d.sql(_insert("twin_history", ["vehicle_id", "rev", "ts", *VALUE_COLUMNS, "state",
                                          "telemetry"]))  # fmt: skip


def upsert_bucket(d: Dialect, tier: str) -> str:
    cols = ["vehicle_id", "bucket", "n", "rev", *rollup_columns()]
    sets = ["n = t.n + excluded.n", f"rev = {d.greatest}(t.rev, excluded.rev)"]
    for col in rollup_columns():
        if col.endswith(("_sum", "_n")):
            sets.append(f"{col} = t.{col} + excluded.{col}")
        else:
            pick = d.least if col.endswith("_min") else d.greatest
            sets.append(
                f"{col} = {pick}(coalesce(t.{col}, excluded.{col}), "
                f"coalesce(excluded.{col}, t.{col}))"
            )
    insert = _insert(f"twin_history_{tier} AS t", cols)
    return d.sql(f"{insert} ON CONFLICT (vehicle_id, bucket) DO UPDATE SET {', '.join(sets)}")


def snapshot(d: Dialect) -> str:
    return d.sql("SELECT rev, state, telemetry, ts FROM twin_snapshots WHERE vehicle_id = $1")


def state_at_rev(d: Dialect) -> str:
    return d.sql(
        "SELECT rev, state, telemetry FROM twin_history WHERE vehicle_id = $1 AND rev = $2"
    )


def state_at_time(d: Dialect) -> str:
    return d.sql(
        "SELECT rev, state, telemetry FROM twin_history WHERE vehicle_id = $1 AND ts <= $2 "
        "ORDER BY ts DESC, rev DESC LIMIT 1"
    )


def bucketed_before(d: Dialect) -> str:
    """Whether a vehicle has history (in the hourly tier) at or before a time."""
    return d.sql("SELECT 1 FROM twin_history_1h WHERE vehicle_id = $1 AND bucket <= $2 LIMIT 1")


def latest(d: Dialect) -> str:
    return d.sql("SELECT telemetry FROM twin_snapshots WHERE vehicle_id = $1")


def page(d: Dialect) -> str:
    return d.sql(
        "SELECT telemetry FROM twin_snapshots WHERE vehicle_id > $1 ORDER BY vehicle_id LIMIT $2"
    )


def recent(d: Dialect) -> str:
    return d.sql("SELECT telemetry FROM twin_snapshots ORDER BY updated DESC, vehicle_id LIMIT $1")


COUNT = "SELECT count(*) FROM twin_snapshots"
PING = "SELECT 1"


def history(d: Dialect) -> str:
    """The newest $4 records with $2 <= ts < $3, newest first."""
    return d.sql(
        "SELECT telemetry FROM twin_history WHERE vehicle_id = $1 AND ts >= $2 AND ts < $3 "
        "ORDER BY rev DESC LIMIT $4"
    )


def _aggregates(mean: str, low: str, high: str, last: str) -> str:
    """The bucket members after count and rev, in history.bucket_members() order; each
    argument formats a field name into its SQL aggregate."""
    cols = []
    for field in MEAN_FIELDS:
        cols.append(mean.format(field))
        if field in RANGE_FIELDS:
            cols += [low.format(field), high.format(field)]
    cols += [last.format(field) for field in LAST_FIELDS]
    return ", ".join(cols)


def buckets_raw(d: Dialect) -> str:
    """Buckets of $5 seconds over the full-resolution records, newest first; the columns are
    (bucket, count, rev, then history.bucket_members() from the mean fields on)."""
    values = _aggregates("avg({})", "min({})", "max({})", "max({})")
    return d.sql(
        f"SELECT {d.floor('ts / $5')} AS b, count(*), max(rev), {values} FROM twin_history "
        "WHERE vehicle_id = $1 AND ts >= $2 AND ts < $3 GROUP BY b ORDER BY b DESC LIMIT $4"
    )


def buckets_tier(d: Dialect, tier: str) -> str:
    """The same from a bucket tier: $2 <= bucket < $3 in the tier's units, $5 the output
    bucket's width in tier buckets."""
    values = _aggregates(
        "sum({0}_sum) / NULLIF(sum({0}_n), 0)", "min({}_min)", "max({}_max)", "max({}_max)"
    )
    return d.sql(
        f"SELECT {d.floor('bucket / $5')} AS b, sum(n), max(rev), {values} "
        f"FROM twin_history_{tier} WHERE vehicle_id = $1 AND bucket >= $2 AND bucket < $3 "
        "GROUP BY b ORDER BY b DESC LIMIT $4"
    )


def prune_history(d: Dialect) -> str:
    return d.sql("DELETE FROM twin_history WHERE ts < $1")


def prune_minutes(d: Dialect) -> str:
    return d.sql("DELETE FROM twin_history_1m WHERE bucket < $1")
