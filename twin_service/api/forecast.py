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
    model = (snapshot or {}).get("telemetry", {}).get("aging_model") or "naumann"
    return state, usage, preset, model


@router.post("/forecast", operation_id="forecast", response_model=ForecastResponse,
             responses=ERRORS)
async def forecast(body: ForecastRequest, live: LiveDep, settings: SettingsDep) -> dict[str, Any]:
    """SOH and resistance over the coming years for a daily usage profile, with the same aging
    model as /step. Usage defaults come from the vehicle's observed history."""
    state, usage, preset, model = await _resolve(body, live, settings.default_vehicle, ["body"])
    aging_model = body.aging_model or model
    horizon = max(body.years, LONG_HORIZON_YEARS)
    fc = run_forecast([state], [usage], [preset], horizon, aging_model)
    summary = summarise(fc, body.years)
    return {
        "vehicle_id": body.vehicle_id,
        "aging_model": aging_model,
        "usage": usage,
        "points": points(fc, 0, body.years),
        "soh_in_2_years": float(summary["soh_in_2_years"][0]),
        "years_to_80": none_if_nan(summary["years_to_80"][0]),
        "fade_pct_per_year": float(summary["fade_pct_per_year"][0]),
    }


@router.post("/forecast/fleet", operation_id="forecast_fleet",
             response_model=FleetForecastResponse, responses=ERRORS)
async def forecast_fleet(
    body: FleetForecastRequest, live: LiveDep, settings: SettingsDep
) -> dict[str, Any]:
    """The forecast for many vehicles in one vectorised run (summaries; points on request)."""
    resolved = [
        await _resolve(item, live, settings.default_vehicle, ["body", "items", i])
        for i, item in enumerate(body.items)
    ]
    states, usages, presets, _ = (list(x) for x in zip(*resolved, strict=True))
    horizon = max(body.years, 2.0)
    fc = await run_in_threadpool(run_forecast, states, usages, presets, horizon, body.aging_model)
    summary = summarise(fc, body.years)
    results = []
    for i, item in enumerate(body.items):
        results.append({
            "vehicle_id": item.vehicle_id,
            "soh_in_2_years": float(summary["soh_in_2_years"][i]),
            "years_to_80": none_if_nan(summary["years_to_80"][i]),
            "fade_pct_per_year": float(summary["fade_pct_per_year"][i]),
            "points": points(fc, i, body.years) if body.include_points else None,
        })
    return {"years": body.years, "results": results}
