from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from twin_service.api.vehicles import store_unavailable
from twin_service.deps import LiveDep, ReadAuth, SettingsDep
from twin_service.forecast.service import (
    LONG_HORIZON_YEARS,
    none_if_nan,
    observed_usage,
    points,
    preset_for,
    resolve_usage,
    run_forecast,
    start_state,
    summarise,
)
from twin_service.live.base import LiveUnavailable
from twin_service.models.aging import MODELS, REGISTRY
from twin_service.models.forecast import Forecast
from twin_service.schemas import (
    ErrorResponse,
    FleetForecastRequest,
    FleetForecastResponse,
    ForecastItem,
    ForecastRequest,
    ForecastResponse,
)

# POST /forecast only reads, so it takes the read key like GET /vehicles.
router = APIRouter(tags=["forecast"], dependencies=[ReadAuth])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


async def _history(live: Any, vehicle_id: str) -> list[dict[str, Any]]:
    history = getattr(live, "history", None)
    return list(await history(vehicle_id, 500)) if history else []


async def _resolve(item: ForecastItem, live: Any, default_vehicle: str, loc: list[str | int]):
    observed = {}
    snapshot = None
    if item.vehicle_id:
        try:
            snapshot = await live.snapshot(item.vehicle_id)
            if snapshot is not None:
                observed = observed_usage(snapshot, await _history(live, item.vehicle_id))
        except LiveUnavailable as exc:
            raise store_unavailable(exc) from None
    state = start_state(item, snapshot, loc)
    usage = resolve_usage(item.usage, observed, loc)
    preset = preset_for(item, snapshot, default_vehicle)
    model = (snapshot or {}).get("telemetry", {}).get("aging_model")
    if model not in MODELS:
        model = preset.pack.aging_model
    return state, usage, preset, model


def _summary(fc: Forecast, row: int, years: float, model: str) -> dict[str, Any]:
    summary = summarise(fc, years)
    return {
        "aging_model": model,
        "points": points(fc, row, years),
        "soh_in_2_years": float(summary["soh_in_2_years"][row]),
        "years_to_80": none_if_nan(summary["years_to_80"][row]),
        "fade_pct_per_year": float(summary["fade_pct_per_year"][row]),
    }


@router.post(
    "/forecast", operation_id="forecast", response_model=ForecastResponse, responses=ERRORS
)
async def forecast(body: ForecastRequest, live: LiveDep, settings: SettingsDep) -> dict[str, Any]:
    """SOH and resistance over the coming years for a daily usage profile, with the same aging
    model as /step. Usage defaults come from the vehicle's observed history. With
    `compare_models`, `by_model` holds the forecast of every physical model for the same
    usage: their spread is the model uncertainty."""
    state, usage, preset, model = await _resolve(body, live, settings.default_vehicle, ["body"])
    aging_model = body.aging_model or model
    horizon = max(body.years, LONG_HORIZON_YEARS)
    fc = run_forecast([state], [usage], [preset], horizon, aging_model)
    result = {"vehicle_id": body.vehicle_id, "usage": usage,
              **_summary(fc, 0, body.years, aging_model)}  # fmt: skip
    if body.compare_models:
        result["by_model"] = [
            _summary(run_forecast([state], [usage], [preset], horizon, m.name), 0, body.years,
                     m.name)
            for m in REGISTRY
            if m.physical
        ]  # fmt: skip
    return result


@router.post(
    "/forecast/fleet",
    operation_id="forecast_fleet",
    response_model=FleetForecastResponse,
    responses=ERRORS,
)
async def forecast_fleet(
    body: FleetForecastRequest, live: LiveDep, settings: SettingsDep
) -> dict[str, Any]:
    """The forecast for many vehicles in one vectorised run per aging model (summaries;
    points on request)."""
    resolved = [
        await _resolve(item, live, settings.default_vehicle, ["body", "items", i])
        for i, item in enumerate(body.items)
    ]
    horizon = max(body.years, 2.0)
    models = [body.aging_model or r[3] for r in resolved]
    rows: dict[int, tuple[Forecast, int]] = {}
    for model in dict.fromkeys(models):
        idx = [i for i, m in enumerate(models) if m == model]
        fc = await run_in_threadpool(
            run_forecast, [resolved[i][0] for i in idx], [resolved[i][1] for i in idx],
            [resolved[i][2] for i in idx], horizon, model)  # fmt: skip
        for row, i in enumerate(idx):
            rows[i] = (fc, row)
    results = []
    summaries = {id(fc): summarise(fc, body.years) for fc, _ in rows.values()}
    for i, item in enumerate(body.items):
        fc, row = rows[i]
        summary = summaries[id(fc)]
        results.append(
            {
                "vehicle_id": item.vehicle_id,
                "aging_model": models[i],
                "soh_in_2_years": float(summary["soh_in_2_years"][row]),
                "years_to_80": none_if_nan(summary["years_to_80"][row]),
                "fade_pct_per_year": float(summary["fade_pct_per_year"][row]),
                "points": points(fc, row, body.years) if body.include_points else None,
            }
        )
    return {"years": body.years, "results": results}
