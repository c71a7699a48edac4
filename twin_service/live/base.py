"""The one interface the API uses for snapshots, history and fan-out."""

from __future__ import annotations

from typing import Any, Protocol


class LiveBackend(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def commit(self, vehicle_id: str, state: dict[str, Any], telemetry: dict[str, Any]) -> int:
        """Assign the vehicle's next rev (sets telemetry["rev"]), store the snapshot, append to
        the history and publish. Publishing failures are counted, never raised."""
        ...

    async def snapshot(self, vehicle_id: str) -> dict[str, Any] | None:
        """{"vehicle_id", "rev", "state", "telemetry"} of the latest step, or None."""
        ...

    async def ready(self) -> bool: ...
