"""History records in process memory and in buckets.

BoundedHistory keeps a vehicle's history for the memory store (the Redis backend runs the same
scheme in Lua, see redis.py):
- the newest `recent` points are kept as they are;
- a point that falls out of the recent window is the n-th evicted point (n = 0, 1, 2, ...);
  it enters the tail when n % stride == 0 (stride starts at 1);
- when the tail grows past `tail` points, every other point is dropped (the kept ones are
  those with n % (2 * stride) == 0) and the stride doubles.

So the tail always spans the vehicle's whole past at an even spacing that doubles as the
vehicle ages, and a vehicle stepping at 10 Hz for days holds at most `recent + tail` points.
The states of the newest `states` revs are kept too, for GET /vehicles/{id}?rev=.

`bucketize` is the bucketing of GET /vehicles/{id}/history?every= for the stores that keep
records in memory or Redis; the SQL store computes the same members in SQL (live/sql.py).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any

from twin_service.live.base import StateNotKept

# A bucket: vehicle_id, timestamp (the bucket's start), count, rev (the last in it), the mean of
# MEAN_FIELDS, the min and max of RANGE_FIELDS (as soc_min, soc_max, ...) and the highest value
# of the running totals in LAST_FIELDS. Members with no value in the bucket are null.
MEAN_FIELDS = (
    "soc", "soh", "temperature", "voltage", "current", "power_kw", "ambient_c",
    "resistance_factor",
)  # fmt: skip
RANGE_FIELDS = ("soc", "power_kw", "temperature")
LAST_FIELDS = (
    "total_distance_km", "energy_throughput_kwh", "cycle_count", "simulated_days",
    "tms_energy_kwh",
)  # fmt: skip


def epoch_of(when: datetime) -> float:
    """Seconds since the Unix epoch; a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def iso_of(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


def record_time(telemetry: dict[str, Any]) -> float | None:
    """The record's `timestamp` in epoch seconds, None when it has none."""
    stamp = telemetry.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return epoch_of(datetime.fromisoformat(stamp))
    except ValueError:
        return None


def in_range(
    records: Iterable[dict[str, Any]], since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """Records with since <= timestamp < until (all of them when both are None)."""
    if since is None and until is None:
        return list(records)
    lo = -math.inf if since is None else epoch_of(since)
    hi = math.inf if until is None else epoch_of(until)
    out = []
    for record in records:
        t = record_time(record)
        if t is not None and lo <= t < hi:
            out.append(record)
    return out


def number(value: Any) -> float | None:
    """A finite number as a float, else None (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def bucket_members() -> list[str]:
    """Every member of a bucket, in output order."""
    names = ["vehicle_id", "timestamp", "count", "rev"]
    for field in MEAN_FIELDS:
        names.append(field)
        if field in RANGE_FIELDS:
            names += [f"{field}_min", f"{field}_max"]
    return names + list(LAST_FIELDS)


def bucketize(
    vehicle_id: str, records: Iterable[dict[str, Any]], every_s: float
) -> list[dict[str, Any]]:
    """Records aggregated into buckets of `every_s` seconds aligned to the epoch, oldest
    first. Records without a timestamp are left out."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        t = record_time(record)
        if t is not None:
            groups.setdefault(math.floor(t / every_s), []).append(record)
    out = []
    for key in sorted(groups):
        rows = groups[key]
        bucket: dict[str, Any] = {
            "vehicle_id": vehicle_id,
            "timestamp": iso_of(key * every_s),
            "count": len(rows),
            "rev": max(int(r.get("rev", 0)) for r in rows),
        }
        for field in MEAN_FIELDS:
            values = [v for v in (number(r.get(field)) for r in rows) if v is not None]
            bucket[field] = math.fsum(values) / len(values) if values else None
            if field in RANGE_FIELDS:
                bucket[f"{field}_min"] = min(values) if values else None
                bucket[f"{field}_max"] = max(values) if values else None
        for field in LAST_FIELDS:
            values = [v for v in (number(r.get(field)) for r in rows) if v is not None]
            bucket[field] = max(values) if values else None
        out.append(bucket)
    return out


class BoundedHistory:
    def __init__(self, recent: int, tail: int, states: int = 0) -> None:
        self.recent: deque[dict[str, Any]] = deque()
        self.tail: list[dict[str, Any]] = []
        # (rev, state) of the newest revs
        self.states: deque[tuple[int, dict[str, Any]]] = deque(maxlen=max(states, 1))
        self.recent_capacity = recent
        self.tail_capacity = tail
        self.stride = 1
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.recent) + len(self.tail)

    def append(self, point: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        self.recent.append(point)
        if state is not None:
            self.states.append((int(point.get("rev", 0)), state))
        while len(self.recent) > self.recent_capacity:
            self._evict(self.recent.popleft())

    def _evict(self, point: dict[str, Any]) -> None:
        n = self.evicted
        self.evicted += 1
        if self.tail_capacity <= 0 or n % self.stride:
            return
        self.tail.append(point)
        if len(self.tail) > self.tail_capacity:
            self.tail = self.tail[::2]
            self.stride *= 2

    def all(self) -> Iterable[dict[str, Any]]:
        return chain(self.tail, self.recent)

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` points, oldest first."""
        total = len(self)
        skip = max(0, total - limit)
        return list(islice(self.all(), skip, None))

    def state_at(self, rev: int) -> dict[str, Any] | None:
        for kept_rev, state in reversed(self.states):
            if kept_rev == rev:
                return state
        return None

    def telemetry_at(self, rev: int) -> dict[str, Any] | None:
        for point in reversed(self.recent):
            if int(point.get("rev", 0)) == rev:
                return point
        return None

    def rev_at(self, at_s: float) -> int | None:
        return rev_at(chain(reversed(self.recent), reversed(self.tail)), at_s)


def rev_at(newest_first: Iterable[dict[str, Any]], at_s: float) -> int | None:
    """The rev of the last record stored at or before `at_s` (epoch seconds)."""
    for record in newest_first:
        t = record_time(record)
        if t is not None and t <= at_s:
            return int(record.get("rev", 0))
    return None


def snapshot_at(
    vehicle_id: str,
    current: dict[str, Any] | None,
    rev: int | None,
    at: datetime | None,
    find_rev: Callable[[float], int | None],
    find: Callable[[int], tuple[dict[str, Any], dict[str, Any]] | None],
) -> dict[str, Any] | None:
    """The shared rule of snapshot(rev=, at=) for stores that keep recent states: `find_rev(at_s)`
    gives the rev stored at or before a time, `find(rev)` gives (telemetry, state) or None."""
    if current is None:
        return None
    if at is not None:
        found = find_rev(epoch_of(at))
        if found is None:
            return None
        rev = found
    if rev is None or rev == current["rev"]:
        return current
    if rev < 1 or rev > current["rev"]:
        return None
    kept = find(rev)
    if kept is None:
        raise StateNotKept(f"the state of {vehicle_id} at rev {rev} is no longer kept")
    telemetry, state = kept
    return {"vehicle_id": vehicle_id, "rev": rev, "state": state, "telemetry": telemetry}
