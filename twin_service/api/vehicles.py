"""GET /vehicles, /vehicles/{id}[?rev=|?at=], /vehicles/{id}/history: what the store holds.

GET /vehicles/presets is served by api/presets.py, which the app includes first.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response

from twin_service.deps import LiveDep, ReadAuth
from twin_service.errors import ApiError, error_item
from twin_service.live.base import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_PAGE_LIMIT,
    MAX_HISTORY_LIMIT,
    LiveUnavailable,
    StateNotKept,
)
from twin_service.schemas import (
    VEHICLE_ID_PATTERN,
    ErrorResponse,
    HistoryBucket,
    StepResponse,
    Telemetry,
)

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


def _when(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 time of a query parameter (UTC when it names no zone)."""
    if value is None:
        return None
    # A "+" left unescaped in a query string arrives as a space: ...T08:00:00 01:00
    value = re.sub(r"(T[\d:.]+) (\d\d:\d\d)$", r"\1+\2", value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422,
            [
                error_item(
                    ["query", name],
                    f"{name} must be an ISO 8601 time, got {value!r}",
                    "datetime_parsing",
                )
            ],  # fmt: skip
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


AtQuery = Annotated[
    str | None,
    Query(
        description="ISO 8601 time: the state of the last step stored at or before it",
        examples=["2026-12-01T08:00:00Z"],
    ),
]


@router.get(
    "/vehicles/{vehicle_id}",
    operation_id="get_vehicle",
    response_model=StepResponse,
    responses={
        404: {"model": ErrorResponse},
        410: {
            "model": ErrorResponse,
            "description": "the state at that rev or time is no longer kept",
        },
        422: {"model": ErrorResponse},
    },
)
async def get_vehicle(
    vehicle_id: VehicleIdPath,
    live: LiveDep,
    rev: Annotated[int | None, Query(ge=1, description="the state after this rev")] = None,
    at: AtQuery = None,
) -> Response:
    """The latest `{"vehicle_id", "rev", "state", "telemetry"}`, the shape of a /step
    response; with `rev`, the twin as it was after that rev; with `at`, as it was at that time.
    The SQL stores keep every state within their retention, memory and Redis the newest
    `history_states` per vehicle; an older one answers 410."""
    if rev is not None and at is not None:
        raise ApiError(
            422, [error_item(["query", "at"], "give rev or at, not both", "value_error")]
        )
    when = _when(at, "at")
    try:
        snapshot = await live.snapshot(vehicle_id, rev, when)
    except LiveUnavailable as exc:
        raise store_unavailable(exc) from None
    except StateNotKept as exc:
        raise ApiError(
            410, [error_item(["query", "rev" if rev else "at"], str(exc), "gone")]
        ) from None
    if snapshot is None:
        if rev is None and at is None:
            raise unknown_vehicle(vehicle_id)
        if not await live.latest(vehicle_id):
            raise unknown_vehicle(vehicle_id)
        where = f"rev {rev}" if rev is not None else f"at {at}"
        raise ApiError(
            404,
            [
                error_item(
                    ["query", "rev" if rev else "at"],
                    f"{vehicle_id!r} has no step {where}",
                    "not_found",
                )
            ],  # fmt: skip
        )
    return json_response(snapshot)


@router.get(
    "/vehicles/{vehicle_id}/history",
    operation_id="get_vehicle_history",
    response_model=list[Telemetry] | list[HistoryBucket],
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def get_vehicle_history(
    vehicle_id: VehicleIdPath,
    live: LiveDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_HISTORY_LIMIT, description="the newest N records or buckets")
    ] = DEFAULT_HISTORY_LIMIT,
    since: Annotated[
        str | None, Query(description="ISO 8601 time, inclusive", examples=["2026-11-01T00:00:00Z"])
    ] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time, exclusive")] = None,
    every: Annotated[
        float | None,
        Query(ge=1, le=366 * 86400, description="seconds: aggregate into buckets this long"),
    ] = None,
) -> Response:
    """Telemetry records with since <= timestamp < until, oldest first, the newest `limit` of
    them. With `every`, buckets of that many seconds aligned to the Unix epoch: the mean of
    soc, soh, temperature, voltage, current, power_kw, ambient_c and resistance_factor, the
    min and max of soc, power_kw and temperature, the highest running totals, the count and
    the last rev (a `HistoryBucket` each).

    What is kept: memory and Redis keep the newest `history_recent` records and a thinned
    `history_tail` before them; the SQL stores keep every record for
    `history_retention_days`, 1-minute buckets for `history_rollup_days` and hourly ones for
    ever (buckets whose length is a whole number of minutes or hours, over a range on that
    grid, are read from them)."""
    lo, hi = _when(since, "since"), _when(until, "until")
    if lo is not None and hi is not None and lo >= hi:
        item = error_item(["query", "until"], "until must be after since", "value_error")
        raise ApiError(422, [item])
    try:
        if every is None:
            records = await live.history(vehicle_id, limit, lo, hi)
        else:
            records = await live.buckets(vehicle_id, every, limit, lo, hi)
        if not records and not await live.latest(vehicle_id):
            raise unknown_vehicle(vehicle_id)
    except LiveUnavailable as exc:
        raise store_unavailable(exc) from None
    return json_response(records)
