"""POST /forecast, POST /forecast/compare and POST /forecast/fleet.

A request's work is bounded before anything runs (`check_single`, `check_fleet`: vehicles,
vehicle-steps, points returned; 413 naming the limit), and everything that costs CPU runs in
worker threads: the body's decoding and validation when it is large, the start states, the
model runs and the JSON encoding. A fleet goes in chunks of FLEET_CHUNK vehicles, so its
memory is that of one chunk's arrays plus the encoded results, and the event loop runs
between chunks. As for /step, each operation is served by a plain route registered first
(which validates the body in a thread); the FastAPI routes below document it in OpenAPI.
"""

from __future__ import annotations

from functools import partial
from typing import Any, TypeVar, cast

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from twin_service.api.vehicles import store_unavailable
from twin_service.deps import LiveDep, ReadAuth, SettingsDep, require_read_key
from twin_service.errors import MAX_REPORTED_ERRORS, ApiError, pydantic_errors
from twin_service.forecast.policy import (
    apply_policy,
    check_compare,
    compare_forecast,
    warranty_share,
)
from twin_service.forecast.service import (
    Resolved,
    check_fleet,
    check_single,
    fleet_results,
    items_errors,
    resolve_item,
    single_forecast,
)
from twin_service.live import LiveBackend
from twin_service.live.base import LiveUnavailable
from twin_service.schemas import (
    ErrorResponse,
    FleetForecastRequest,
    FleetForecastResponse,
    ForecastCompareRequest,
    ForecastCompareResponse,
    ForecastItem,
    ForecastRequest,
    ForecastResponse,
)
from twin_service.settings import Settings
from twin_service.step.service import decode_json

# POST /forecast only reads, so it takes the read key like GET /vehicles.
router = APIRouter(tags=["forecast"], dependencies=[ReadAuth])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    413: {"model": ErrorResponse, "description": "over a body or forecast limit (named)"},
    415: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}
HISTORY_RECORDS = 500  # recent telemetry a vehicle's observed SOC window is taken from
FLEET_CHUNK = 256  # vehicles per worker-thread call
THREAD_THRESHOLD_BYTES = 65_536  # larger /forecast bodies are decoded and validated in a thread

M = TypeVar("M", bound=BaseModel)
_ITEMS = TypeAdapter(list[ForecastItem])


def _model_validate(model: type[M], payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(422, pydantic_errors(exc, ["body"])) from None


def _validate_fleet(payload: Any, settings: Settings) -> FleetForecastRequest:
    """FleetForecastRequest.model_validate, the limits checked first (on the number of items
    and the rest of the request), then the items validated FLEET_CHUNK at a time: one
    validator call holds the GIL (~200 ms for 10,000 items)."""
    raw = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(raw, list) or not raw:
        return _model_validate(FleetForecastRequest, payload)
    if too_many := items_errors(settings, len(raw)):
        raise ApiError(413, too_many)
    errors: list[dict[str, Any]] = []
    try:  # everything but the items
        head = FleetForecastRequest.model_validate({**payload, "items": [{}]})
        check_fleet(settings, len(raw), head.years, head.include_points,
                    len(head.policies or ()), head.warranty.years)  # fmt: skip
    except ValidationError as exc:
        errors = pydantic_errors(exc, ["body"])
    items: list[ForecastItem] = []
    for lo in range(0, len(raw), FLEET_CHUNK):
        try:
            items += _ITEMS.validate_python(raw[lo : lo + FLEET_CHUNK])
        except ValidationError as exc:
            for e in pydantic_errors(exc, []):
                errors.append({**e, "loc": ["body", "items", lo + e["loc"][0], *e["loc"][1:]]})
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        raise ApiError(422, errors)
    return head.model_copy(update={"items": items})


def _validate(body: bytes, model: type[M], settings: Settings) -> M:
    payload = decode_json(body)
    if model is FleetForecastRequest:
        return cast(M, _validate_fleet(payload, settings))
    return _model_validate(model, payload)


async def _parse(request: Request, model: type[M], settings: Settings) -> M:
    """The body as `model` (422 naming the fields), the read key checked first. The body's
    size and media type were checked by twin_service/limits.py."""
    require_read_key(request, settings)
    body = await request.body()
    # A fleet always: 10,000 items of `{}` are 30 kB and take ~150 ms to validate.
    if model is FleetForecastRequest or len(body) > THREAD_THRESHOLD_BYTES:
        return await run_in_threadpool(_validate, body, model, settings)
    return _validate(body, model, settings)


def _json(content: bytes) -> Response:
    return Response(content, media_type="application/json")


async def _fetch(
    item: ForecastItem, live: LiveBackend
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The stored snapshot and recent history of the item's vehicle, if it names one."""
    if not item.vehicle_id:
        return None, []
    try:
        snapshot = await live.snapshot(item.vehicle_id)
        if snapshot is None:
            return None, []
        history = getattr(live, "history", None)
        return snapshot, list(await history(item.vehicle_id, HISTORY_RECORDS)) if history else []
    except LiveUnavailable as exc:
        raise store_unavailable(exc) from None


def _single(body: ForecastRequest, fetched: tuple[Any, Any], default_vehicle: str) -> bytes:
    resolved = resolve_item(body, *fetched, default_vehicle, ["body"])
    return orjson.dumps(single_forecast(body, resolved))


async def run_single(body: ForecastRequest, live: LiveBackend, settings: Settings) -> bytes:
    check_single(settings, body)
    fetched = await _fetch(body, live)
    return await run_in_threadpool(_single, body, fetched, settings.default_vehicle)


def _resolve_chunk(
    items: list[ForecastItem], fetched: list[tuple[Any, Any]], first: int, default_vehicle: str
) -> list[Resolved]:
    return [
        resolve_item(item, *f, default_vehicle, ["body", "items", first + i])
        for i, (item, f) in enumerate(zip(items, fetched, strict=True))
    ]


def _results_chunk(
    resolved: list[Resolved], body: FleetForecastRequest, first: int
) -> list[list[dict[str, Any]]]:
    """The chunk's results: as used, then per policy."""
    ids = [item.vehicle_id for item in body.items[first : first + len(resolved)]]
    policies = [partial(_with_policy, p) for p in body.policies or ()]
    return fleet_results(resolved, ids, body.years, body.aging_model, body.include_points,
                         body.warranty.years, policies)  # fmt: skip


def _with_policy(policy: Any, usage: dict[str, Any]) -> dict[str, Any]:
    return apply_policy(usage, policy)


def _fleet_body(body: FleetForecastRequest, parts: list[list[list[dict[str, Any]]]]) -> bytes:
    """The response from the chunks' results (encoded in a worker thread)."""
    runs = [[r for part in parts for r in part[k]] for k in range(1 + len(body.policies or ()))]
    out: dict[str, Any] = {
        "years": body.years,
        "results": runs[0],
        "warranty": warranty_share([r["soh_at_warranty"] for r in runs[0]], body.warranty),
    }
    if body.policies is not None:
        out["policies"] = [
            {
                "name": policy.name,
                "policy": policy.model_dump(exclude_none=True),
                "results": results,
                "warranty": warranty_share(
                    [r["soh_at_warranty"] for r in results], body.warranty
                ),  # fmt: skip
                "mean_fade_pct_per_year": _mean([r["fade_pct_per_year"] for r in results]),
                "mean_soh_at_warranty": _mean([r["soh_at_warranty"] for r in results]),
            }
            for policy, results in zip(body.policies, runs[1:], strict=True)
        ]
    return orjson.dumps(out)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


async def run_fleet(body: FleetForecastRequest, live: LiveBackend, settings: Settings) -> bytes:
    policies = len(body.policies or ())
    check_fleet(settings, len(body.items), body.years, body.include_points, policies,
                body.warranty.years)  # fmt: skip
    items = body.items
    resolved: list[Resolved] = []
    # Every item is resolved (404 / 422 for a bad one) before any model runs.
    for lo in range(0, len(items), FLEET_CHUNK):
        chunk = items[lo : lo + FLEET_CHUNK]
        fetched = [await _fetch(item, live) for item in chunk]
        resolved += await run_in_threadpool(
            _resolve_chunk, chunk, fetched, lo, settings.default_vehicle
        )
    chunk_size = max(1, FLEET_CHUNK // (1 + policies))
    parts = [
        await run_in_threadpool(_results_chunk, resolved[lo : lo + chunk_size], body, lo)
        for lo in range(0, len(resolved), chunk_size)
    ]
    return await run_in_threadpool(_fleet_body, body, parts)


def _compare(body: ForecastCompareRequest, fetched: tuple[Any, Any], default_vehicle: str) -> bytes:
    resolved = resolve_item(body, *fetched, default_vehicle, ["body"])
    return orjson.dumps(compare_forecast(body, resolved))


async def run_compare(body: ForecastCompareRequest, live: LiveBackend, settings: Settings) -> bytes:
    check_compare(settings, body)
    fetched = await _fetch(body, live)
    return await run_in_threadpool(_compare, body, fetched, settings.default_vehicle)


async def _forecast_endpoint(request: Request) -> Response:
    state = request.app.state
    body = await _parse(request, ForecastRequest, state.settings)
    return _json(await run_single(body, state.live, state.settings))


async def _compare_endpoint(request: Request) -> Response:
    state = request.app.state
    body = await _parse(request, ForecastCompareRequest, state.settings)
    return _json(await run_compare(body, state.live, state.settings))


async def _fleet_endpoint(request: Request) -> Response:
    state = request.app.state
    body = await _parse(request, FleetForecastRequest, state.settings)
    return _json(await run_fleet(body, state.live, state.settings))


router.add_route("/forecast", _forecast_endpoint, methods=["POST"], include_in_schema=False)
router.add_route("/forecast/fleet", _fleet_endpoint, methods=["POST"], include_in_schema=False)
router.add_route("/forecast/compare", _compare_endpoint, methods=["POST"], include_in_schema=False)


@router.post(
    "/forecast", operation_id="forecast", response_model=ForecastResponse, responses=ERRORS
)
async def forecast(body: ForecastRequest, live: LiveDep, settings: SettingsDep) -> Response:
    """SOH and resistance over the coming years for a daily usage profile, with the same aging
    model as /step. Usage defaults come from the vehicle's observed history. With
    `compare_models`, `by_model` holds the forecast of every physical model for the same
    usage: their spread is the model uncertainty."""
    return _json(await run_single(body, live, settings))


@router.post(
    "/forecast/compare",
    operation_id="forecast_compare",
    response_model=ForecastCompareResponse,
    responses=ERRORS,
)
async def forecast_compare(
    body: ForecastCompareRequest, live: LiveDep, settings: SettingsDep
) -> Response:
    """One forecast per policy, side by side, for the usage the vehicle has shown (or the
    usage given): a policy changes the physics of the day (SOC window, DC C-rate and heat,
    power cap, preconditioning), each with the band of the physical aging models and its SOH
    at the warranty age. All policies run as rows of one vectorised run per model."""
    return _json(await run_compare(body, live, settings))


@router.post(
    "/forecast/fleet",
    operation_id="forecast_fleet",
    response_model=FleetForecastResponse,
    responses=ERRORS,
)
async def forecast_fleet(
    body: FleetForecastRequest, live: LiveDep, settings: SettingsDep
) -> Response:
    """The forecast for many vehicles in one vectorised run per aging model (summaries;
    points on request), the share of the fleet projected below the warranty threshold, and
    with `policies` the same under each policy. At most `max_forecast_items` vehicles,
    `max_forecast_work` vehicle-steps (vehicles x weekly steps x runs) and
    `max_forecast_points` points (settings)."""
    return _json(await run_fleet(body, live, settings))
