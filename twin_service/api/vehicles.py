"""GET /vehicles, /vehicles/{id}, /vehicles/{id}/history: what the store holds.

GET /vehicles/presets is served by api/presets.py, which the app includes first.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response

from twin_service.deps import LiveDep, ReadAuth, SettingsDep
from twin_service.errors import ApiError, error_item
from twin_service.live.base import DEFAULT_HISTORY_LIMIT, DEFAULT_PAGE_LIMIT, LiveUnavailable
from twin_service.schemas import VEHICLE_ID_PATTERN, ErrorResponse, StepResponse, Telemetry

router = APIRouter(
    tags=["vehicles"],
    dependencies=[ReadAuth],
    responses={401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)

VehicleIdPath = Annotated[
    str, Path(pattern=VEHICLE_ID_PATTERN, description="vehicle id", examples=["ev-1"])
]


def json_response(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def store_unavailable(exc: LiveUnavailable) -> ApiError:
    """503 naming no internal host: the details (Redis address, error) go to the log."""
    logging.getLogger(__name__).warning("store unavailable: %s", exc)
    return ApiError(503, [error_item(["store"], "store unavailable", "unavailable")])


def unknown_vehicle(vehicle_id: str) -> ApiError:
    return ApiError(
        404, [error_item(["path", "vehicle_id"], f"unknown vehicle {vehicle_id!r}", "not_found")]
    )


@router.get("/vehicles", operation_id="list_vehicles", response_model=list[Telemetry])
async def list_vehicles(
    live: LiveDep,
    limit: Annotated[
        int, Query(ge=1, le=DEFAULT_PAGE_LIMIT, description="vehicles per page")
    ] = DEFAULT_PAGE_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            pattern=VEHICLE_ID_PATTERN,
            description="the X-Next-Cursor of the previous page: ids after it",
        ),
    ] = None,
    order: Annotated[
        Literal["id", "recent"],
        Query(description="id: sorted by vehicle_id, in pages; recent: newest first, one page"),
    ] = "id",
) -> Response:
    """Latest telemetry of the known vehicles, sorted by vehicle_id, `limit` per page. When
    more follow, the `X-Next-Cursor` header holds the cursor of the next page (and `Link` its
    URL). `order=recent` lists the most recently updated vehicles first (no cursor)."""
    try:
        if order == "recent":
            return json_response(await live.recent(limit))
        rows = await live.page(limit + 1, cursor)
    except LiveUnavailable as exc:
        raise store_unavailable(exc) from None
    response = json_response(rows[:limit])
    if len(rows) > limit:
        nxt = str(rows[limit - 1]["vehicle_id"])
        response.headers["X-Next-Cursor"] = nxt
        response.headers["Link"] = f'</vehicles?limit={limit}&cursor={nxt}>; rel="next"'
    return response


@router.get(
    "/vehicles/{vehicle_id}",
    operation_id="get_vehicle",
    response_model=StepResponse,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def get_vehicle(vehicle_id: VehicleIdPath, live: LiveDep) -> Response:
    """The latest `{"vehicle_id", "rev", "state", "telemetry"}`, the shape of a /step
    response."""
    try:
        snapshot = await live.snapshot(vehicle_id)
    except LiveUnavailable as exc:
        raise store_unavailable(exc) from None
    if snapshot is None:
        raise unknown_vehicle(vehicle_id)
    return json_response(snapshot)


@router.get(
    "/vehicles/{vehicle_id}/history",
    operation_id="get_vehicle_history",
    response_model=list[Telemetry],
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def get_vehicle_history(
    vehicle_id: VehicleIdPath,
    live: LiveDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="newest N records; capped at the bound")] = (
        DEFAULT_HISTORY_LIMIT
    ),
) -> Response:
    """Recent telemetry records, oldest first: the newest `history_recent` at full resolution,
    older ones downsampled (at most `history_recent + history_tail` per vehicle)."""
    limit = min(limit, settings.history_recent + settings.history_tail)
    try:
        records = await live.history(vehicle_id, limit)
        if not records and not await live.latest(vehicle_id):
            raise unknown_vehicle(vehicle_id)
    except LiveUnavailable as exc:
        raise store_unavailable(exc) from None
    return json_response(records)
