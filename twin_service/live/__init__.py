"""Hub and store: where accepted steps go. Memory (default) or Redis, chosen by hub_url."""

from __future__ import annotations

from twin_service.live.base import LiveBackend
from twin_service.settings import Settings


def create_live(settings: Settings) -> LiveBackend:
    if settings.hub_url.startswith(("redis://", "rediss://")):
        from twin_service.live.redis import RedisLive

        return RedisLive(settings)
    from twin_service.live.memory import MemoryLive

    return MemoryLive(settings)


__all__ = ["LiveBackend", "create_live"]
