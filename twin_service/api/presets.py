from __future__ import annotations

from fastapi import APIRouter

from twin_service.models.aging import REGISTRY
from twin_service.presets import PRESETS, VehiclePreset
from twin_service.schemas import AgingModelInfo

router = APIRouter(tags=["vehicles"])


@router.get(
    "/vehicles/presets", operation_id="list_presets", response_model=dict[str, VehiclePreset]
)
async def list_presets() -> dict[str, VehiclePreset]:
    """Vehicle presets: pack, drivetrain and road-load data with sources."""
    return PRESETS


@router.get(
    "/models", operation_id="list_models", response_model=list[AgingModelInfo], tags=["models"]
)
async def list_models() -> list[dict[str, object]]:
    """The registered aging models: their cell, sources, validity range, outputs and the
    state fields they keep."""
    return [m.describe() for m in REGISTRY]
