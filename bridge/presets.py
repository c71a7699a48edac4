"""Vehicle presets for the road-load model: from the service, else from ``twin_service``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bridge.roadload import RoadLoadParams
from clients.python import TwinClient, TwinConnectionError, TwinHTTPError
from clients.python import preset_ids as find_preset_ids

logger = logging.getLogger(__name__)


def local_preset(vehicle: str) -> dict[str, Any]:
    """The preset from the installed ``twin_service.presets`` package (no service needed)."""
    try:
        from twin_service.presets import PRESETS  # noqa: PLC0415 - optional, heavy import
    except ImportError as exc:
        raise LookupError(f"twin_service.presets is not importable: {exc}") from exc
    if vehicle not in PRESETS:
        raise LookupError(f"unknown vehicle preset {vehicle!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[vehicle]
    dumped = preset.model_dump(mode="json") if hasattr(preset, "model_dump") else dict(preset)
    return {"id": vehicle, **dumped}


def fetch_preset(vehicle: str, client: TwinClient | None) -> dict[str, Any]:
    """Ask the service (the source of truth); fall back to the local package if unreachable."""
    if client is not None:
        try:
            return client.preset(vehicle)
        except KeyError as exc:
            raise LookupError(str(exc)) from exc
        except (TwinConnectionError, TwinHTTPError) as exc:
            logger.info("presets from the service unavailable (%s); using twin_service", exc)
    return local_preset(vehicle)


def preset_ids(client: TwinClient | None) -> list[str]:
    """Preset ids the service knows (else the local ``twin_service.presets``)."""
    if client is not None:
        try:
            return find_preset_ids(client.presets())
        except (TwinConnectionError, TwinHTTPError) as exc:
            logger.info("presets from the service unavailable (%s); using twin_service", exc)
    try:
        from twin_service.presets import PRESETS  # noqa: PLC0415 - optional, heavy import
    except ImportError:
        return []
    return list(PRESETS)


def match_preset(name: str, ids: Iterable[str]) -> str | None:
    """The preset id ``name`` names: an exact match, else the one matching case-insensitively."""
    ids = list(ids)
    if name in ids:
        return name
    folded = [preset for preset in ids if preset.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def roadload_params(vehicle: str, client: TwinClient | None) -> RoadLoadParams:
    """Road-load parameters of a preset id."""
    return RoadLoadParams.from_preset(fetch_preset(vehicle, client))
