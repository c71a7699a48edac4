"""Bounded per-vehicle history: recent points at full resolution plus a downsampled tail.

Scheme (the Redis backend runs the same one in Lua, see redis.py):
- the newest `recent` points are kept as they are;
- a point that falls out of the recent window is the n-th evicted point (n = 0, 1, 2, ...);
  it enters the tail when n % stride == 0 (stride starts at 1);
- when the tail grows past `tail` points, every other point is dropped (the kept ones are
  those with n % (2 * stride) == 0) and the stride doubles.

So the tail always spans the vehicle's whole past at an even spacing that doubles as the
vehicle ages, and a vehicle stepping at 10 Hz for days holds at most `recent + tail` points.
"""

from __future__ import annotations

from collections import deque
from itertools import chain, islice
from typing import Any


class BoundedHistory:
    def __init__(self, recent: int, tail: int) -> None:
        self.recent: deque[dict[str, Any]] = deque()
        self.tail: list[dict[str, Any]] = []
        self.recent_capacity = recent
        self.tail_capacity = tail
        self.stride = 1
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.recent) + len(self.tail)

    def append(self, point: dict[str, Any]) -> None:
        self.recent.append(point)
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

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` points, oldest first."""
        total = len(self)
        skip = max(0, total - limit)
        return list(islice(chain(self.tail, self.recent), skip, None))
