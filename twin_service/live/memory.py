"""In-process hub and store (one service process, zero setup)."""

from __future__ import annotations

import asyncio
from typing import Any

from twin_service.settings import Settings


class MemoryLive:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def commit(self, vehicle_id: str, state: dict[str, Any], telemetry: dict[str, Any]) -> int:
        async with self._lock:
            prev = self._snapshots.get(vehicle_id)
            rev = (prev["rev"] if prev else 0) + 1
            telemetry["rev"] = rev
            self._snapshots[vehicle_id] = {
                "vehicle_id": vehicle_id, "rev": rev, "state": state, "telemetry": telemetry,
            }
            return rev

    async def snapshot(self, vehicle_id: str) -> dict[str, Any] | None:
        return self._snapshots.get(vehicle_id)
