from __future__ import annotations

from fastapi import APIRouter

from twin_service import __version__
from twin_service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", operation_id="health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok", version=__version__)
