from __future__ import annotations

from fastapi import APIRouter

from twin_service.presets import PRESETS, VehiclePreset

router = APIRouter(tags=["vehicles"])


@router.get(
    "/vehicles/presets", operation_id="list_presets", response_model=dict[str, VehiclePreset]
)
async def list_presets() -> dict[str, VehiclePreset]:
    """Vehicle presets: pack, drivetrain and road-load data with sources."""
    return PRESETS
