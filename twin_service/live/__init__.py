"""Hub and store: where accepted steps go. Memory (default) or Redis, chosen by hub_url."""

from __future__ import annotations

from twin_service.live.base import LiveBackend, LiveUnavailable
from twin_service.metrics import Metrics
from twin_service.settings import Settings


def create_live(settings: Settings, metrics: Metrics | None = None) -> LiveBackend:
    if settings.hub_url.startswith(("redis://", "rediss://")):
        from twin_service.live.redis import RedisLive

        return RedisLive(settings, metrics)
    from twin_service.live.memory import MemoryLive

    return MemoryLive(settings, metrics)


__all__ = ["LiveBackend", "LiveUnavailable", "create_live"]
