"""Forecast service: resolve start states and usage, run the vectorised model, summarise."""

from __future__ import annotations

from typing import Any

import numpy as np

from twin_service.errors import ApiError, error_item
from twin_service.models.aging import LAYOUT, MODELS, REGISTRY
from twin_service.models.aging.base import ForecastStart
from twin_service.models.forecast import Forecast, Usage, years_to_threshold
from twin_service.models.pack import PackState
from twin_service.presets import VehiclePreset
from twin_service.schemas import ForecastItem, UsageProfile
from twin_service.step.service import resolve_vehicle, state_from_wire

DEFAULT_USAGE = {
    "daily_km": 40.0,
    "wh_per_km": 160.0,
    "soc_min": 0.2,
    "soc_max": 0.9,
    "ambient_c": 20.0,
    "charge_c_rate": 0.15,
    "dc_fast_share": 0.0,
}
MIN_OBSERVED_KM = 1.0  # less driving than this says nothing about daily distance
MIN_OBSERVED_S = 600.0
MONTHS_PER_YEAR = 12
LONG_HORIZON_YEARS = 50.0


def observed_usage(snapshot: dict[str, Any] | None, history: list[dict[str, Any]]) -> dict:
    """Usage figures a vehicle has shown so far (only those with enough evidence)."""
    if not snapshot:
        return {}
    st = snapshot["state"]
    found: dict[str, float] = {"ambient_c": float(st["ambient_c"])}
    km, elapsed = st["total_distance_km"], st["elapsed_s"]
    if km >= MIN_OBSERVED_KM and elapsed >= MIN_OBSERVED_S:
        found["daily_km"] = min(km / (elapsed / 86400.0), 2000.0)
        net_kwh = st["energy_discharged_kwh"] - st["energy_charged_kwh"]
        if net_kwh > 0:
            found["wh_per_km"] = min(net_kwh * 1000.0 / km, 2000.0)
    socs = [r["soc"] / 100.0 for r in history if "soc" in r]
    if len(socs) >= 10 and max(socs) - min(socs) > 0.02:
        found["soc_min"], found["soc_max"] = float(min(socs)), float(max(socs))
    return found


def resolve_usage(
    requested: UsageProfile, observed: dict[str, float], loc: list[str | int]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    given = requested.model_dump(exclude_none=True)
    for key, default in DEFAULT_USAGE.items():
        if key in given:
            values[key], source[key] = given[key], "request"
        elif key in observed:
            values[key], source[key] = observed[key], "history"
        else:
            values[key], source[key] = default, "default"
    if values["soc_min"] >= values["soc_max"]:
        raise ApiError(
            422,
            [
                error_item(
                    loc + ["usage", "soc_min"], "soc_min must be below soc_max", "value_error"
                )
            ],
        )
    values["source"] = source
    return values


def start_state(
    item: ForecastItem, snapshot: dict[str, Any] | None, loc: list[str | int]
) -> PackState:
    if item.state is not None:
        try:
            return state_from_wire(item.state, DEFAULT_USAGE["ambient_c"])
        except ApiError as exc:
            for e in exc.errors:
                e["loc"] = loc + ["state"] + e["loc"][2:]
            raise
    if item.vehicle_id is not None:
        if snapshot is None:
            raise ApiError(
                404,
                [
                    error_item(
                        loc + ["vehicle_id"], f"unknown vehicle {item.vehicle_id!r}", "not_found"
                    )
                ],
            )
        return state_from_wire(snapshot["state"], DEFAULT_USAGE["ambient_c"])
    return state_from_wire(None, DEFAULT_USAGE["ambient_c"])


def preset_for(item: ForecastItem, snapshot: dict[str, Any] | None, default: str) -> VehiclePreset:
    if item.vehicle is None and snapshot is not None:
        model = snapshot.get("telemetry", {}).get("vehicle_model")
        return resolve_vehicle(model or default, default)
    return resolve_vehicle(item.vehicle, default)


def forecast_start(states: list[PackState], aging_model: str) -> ForecastStart:
    """The model's own accumulated states per vehicle; the other models' losses held."""
    vectors = np.array([st.vector for st in states])  # (vehicles, state fields)
    others = [m for m in REGISTRY if m.name != aging_model]
    cap = [i for m in others for i in LAYOUT.positions(m.name, m.capacity_terms)]
    res = [i for m in others for i in LAYOUT.positions(m.name, m.resistance_terms)]
    off = LAYOUT.offset(aging_model)
    block = vectors[:, off : off + len(LAYOUT.block(aging_model))]
    return ForecastStart(block, vectors[:, cap].sum(axis=1), vectors[:, res].sum(axis=1))


def run_forecast(
    states: list[PackState],
    usages: list[dict[str, Any]],
    presets: list[VehiclePreset],
    years: float,
    aging_model: str,
) -> Forecast:
    def arr(key: str) -> np.ndarray:
        return np.array([u[key] for u in usages], dtype=float)

    usage = Usage(*(arr(k) for k in DEFAULT_USAGE))
    capacity = np.array([p.pack.nominal_energy_kwh for p in presets])
    forecast = MODELS[aging_model].forecast
    return forecast(forecast_start(states, aging_model), usage, capacity, years)


def summarise(fc: Forecast, years: float) -> dict[str, np.ndarray]:
    soh_2 = np.array([np.interp(2.0, fc.years, row) for row in fc.soh])
    soh_h = np.array([np.interp(years, fc.years, row) for row in fc.soh])
    fade = (fc.soh[:, 0] - soh_h) / years * 100.0
    return {
        "soh_in_2_years": soh_2,
        "years_to_80": years_to_threshold(fc.years, fc.soh),
        "fade_pct_per_year": fade,
    }


def points(fc: Forecast, row: int, years: float) -> list[dict[str, float]]:
    """Monthly points from now to `years`."""
    grid = np.linspace(0.0, years, int(round(years * MONTHS_PER_YEAR)) + 1)
    soh = np.interp(grid, fc.years, fc.soh[row])
    rf = np.interp(grid, fc.years, fc.resistance_factor[row])
    return [
        {"years": float(t), "soh": float(s), "resistance_factor": float(r)}
        for t, s, r in zip(grid, soh, rf, strict=True)
    ]


def none_if_nan(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
