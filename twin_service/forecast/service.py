"""Forecast service: resolve start states and usage, bound the work, run the vectorised
model, summarise. No web framework here; twin_service/api/forecast.py fetches the vehicles
and runs these functions in worker threads."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np

from twin_service.errors import ApiError, error_item
from twin_service.models.aging import LAYOUT, MODELS, REGISTRY
from twin_service.models.aging.base import ForecastStart
from twin_service.models.duty import Duty, pack_duty
from twin_service.models.forecast import Forecast, Usage, forecast_steps, years_to_threshold
from twin_service.models.pack import PackState
from twin_service.presets import PRESETS, VehiclePreset
from twin_service.schemas import ForecastItem, ForecastRequest, UsageProfile
from twin_service.settings import Settings
from twin_service.step.service import preset_params, resolve_vehicle, state_from_wire

DEFAULT_USAGE = {
    "daily_km": 40.0,
    "wh_per_km": 160.0,
    "soc_min": 0.2,
    "soc_max": 0.9,
    "ambient_c": 20.0,
    "charge_c_rate": 0.15,
    "dc_fast_share": 0.0,
}
MIN_OBSERVED_KM = 1.0  # less driving than this says nothing about distance
# Simulated days before the distance per day is taken from history: km / days overstates a
# day that has begun with its driving (24 km a day reads 46 right after day 2's drive), a
# bias that falls as 1/days; after a week it is within 15 %.
MIN_OBSERVED_DAYS = 7.0
MIN_RECORDS = 10  # history records before a window, climate or charging habit is taken
MAX_DAILY_KM = 800.0  # 16 h a day at 50 km/h
MIN_WH_PER_KM, MAX_WH_PER_KM = 60.0, 400.0
DC_FAST_MIN_C = 1.0  # a charge above this C-rate counts as DC fast charging
DAY_S = 86400.0
MONTHS_PER_YEAR = 12
LONG_HORIZON_YEARS = 50.0
FLEET_MIN_HORIZON_YEARS = 2.0  # soh_in_2_years needs at least two years
PHYSICAL_MODELS = tuple(m.name for m in REGISTRY if m.physical)


@dataclass(frozen=True)
class Resolved:
    """One forecast item ready to run."""

    state: PackState
    usage: dict[str, Any]
    preset: VehiclePreset
    aging_model: str  # the vehicle's last model, else its preset's


def points_per_item(years: float) -> int:
    """Monthly points from now to `years` (see `points`)."""
    return int(round(years * MONTHS_PER_YEAR)) + 1


def items_errors(settings: Settings, items: int) -> list[dict[str, Any]]:
    if items <= settings.max_forecast_items:
        return []
    msg = f"{items} items exceed max_forecast_items ({settings.max_forecast_items})"
    return [error_item(["body", "items"], msg, "too_many_items")]


def check_budget(
    settings: Settings,
    *,
    items: int,
    years: float,
    horizon_years: float,
    models: int,
    returned: int,
    points_loc: list[str | int],
) -> None:
    """ApiError(413) naming every limit a request exceeds, before anything runs: `items`
    vehicles, each run with `models` models over `horizon_years` in weekly steps, `returned` of
    those runs per vehicle coming back as monthly points up to `years`."""
    steps = forecast_steps(horizon_years)
    work = items * steps * models
    per_item = points_per_item(years)
    points = items * returned * per_item
    errors = items_errors(settings, items)
    if work > settings.max_forecast_work:
        msg = (
            f"{items} items x {steps} weekly steps ({horizon_years:g} years) x {models} model(s)"
            f" = {work} vehicle-steps exceed max_forecast_work ({settings.max_forecast_work})"
        )
        errors.append(error_item(["body"], msg, "too_much_work"))
    if points > settings.max_forecast_points:
        msg = (
            f"{items} items x {returned} forecast(s) x {per_item} monthly points = {points} "
            f"points exceed max_forecast_points ({settings.max_forecast_points})"
        )
        errors.append(error_item(points_loc, msg, "too_many_points"))
    if errors:
        raise ApiError(413, errors)


def check_single(settings: Settings, body: ForecastRequest) -> None:
    """POST /forecast runs LONG_HORIZON_YEARS (for years_to_80) once per model it returns."""
    models = 1 + len(PHYSICAL_MODELS) * body.compare_models
    check_budget(
        settings,
        items=1,
        years=body.years,
        horizon_years=max(body.years, LONG_HORIZON_YEARS),
        models=models,
        returned=models,
        points_loc=["body", "compare_models"] if body.compare_models else ["body", "years"],
    )


def check_fleet(
    settings: Settings,
    items: int,
    years: float,
    include_points: bool,
    policies: int = 0,
    warranty_years: float = 0.0,
) -> None:
    """POST /forecast/fleet runs each vehicle once as it is used and once per policy, over at
    least FLEET_MIN_HORIZON_YEARS and the warranty age."""
    runs = 1 + policies
    check_budget(
        settings,
        items=items,
        years=years,
        horizon_years=max(years, warranty_years, FLEET_MIN_HORIZON_YEARS),
        models=runs,
        returned=int(include_points) * runs,
        points_loc=["body", "include_points"],
    )


def observed_usage(
    snapshot: dict[str, Any] | None, history: list[dict[str, Any]], capacity_ah: float
) -> dict[str, float]:
    """Usage figures a vehicle has shown so far, only those with enough evidence, in the
    twin's own (simulated, never aging-accelerated) time and within sane bounds.

    - daily_km: distance per simulated day, once MIN_OBSERVED_DAYS have passed (a drive
      without the rest of its day says nothing about a day);
    - wh_per_km: energy discharged per km (regen is not told apart from plug charging, so it
      is not subtracted);
    - soc_min/soc_max: the SOC range of the recent history once it holds a charge (the day's
      window is driven down from where charging leaves the pack);
    - ambient_c: the mean ambient of the recent history, else the last one;
    - charge_c_rate and dc_fast_share: the mean C-rate of the charging records, and the share
      of them above DC_FAST_MIN_C.
    """
    if not snapshot:
        return {}
    st = snapshot["state"]
    found: dict[str, float] = {"ambient_c": float(st["ambient_c"])}
    km, elapsed = st["total_distance_km"], st["elapsed_s"]
    if km >= MIN_OBSERVED_KM and elapsed >= MIN_OBSERVED_DAYS * DAY_S:
        found["daily_km"] = min(km / (elapsed / DAY_S), MAX_DAILY_KM)
    if km >= MIN_OBSERVED_KM:
        wh = st["energy_discharged_kwh"] * 1000.0 / km
        found["wh_per_km"] = min(max(wh, MIN_WH_PER_KM), MAX_WH_PER_KM)
    socs = [r["soc"] / 100.0 for r in history if "soc" in r]
    charged = any(r.get("is_charging") for r in history)
    if charged and len(socs) >= MIN_RECORDS and max(socs) - min(socs) > 0.02:
        found["soc_min"], found["soc_max"] = float(min(socs)), float(max(socs))
    ambients = [float(r["ambient_c"]) for r in history if "ambient_c" in r]
    if len(ambients) >= MIN_RECORDS:
        found["ambient_c"] = sum(ambients) / len(ambients)
    c_rates = [
        abs(float(r["current"])) / capacity_ah
        for r in history
        if r.get("is_charging") and "current" in r
    ]
    if len(c_rates) >= MIN_RECORDS:
        found["charge_c_rate"] = min(max(sum(c_rates) / len(c_rates), 0.01), 5.0)
        found["dc_fast_share"] = sum(c > DC_FAST_MIN_C for c in c_rates) / len(c_rates)
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


@cache
def _fresh_vector() -> np.ndarray:
    return state_from_wire(None, DEFAULT_USAGE["ambient_c"]).vector


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
    return PackState(_fresh_vector().copy())  # a new pack (building one costs ~0.1 ms)


def preset_for(
    item: ForecastItem, snapshot: dict[str, Any] | None, default: str, loc: list[str | int]
) -> VehiclePreset:
    if item.vehicle is None and snapshot is not None:
        model = snapshot.get("telemetry", {}).get("vehicle_model") or default
        if model not in PRESETS:
            msg = (
                f"vehicle {item.vehicle_id!r} was stepped with an inline vehicle ({model!r}), "
                "which the store does not keep; send that vehicle as `vehicle`"
            )
            raise ApiError(422, [error_item(loc + ["vehicle"], msg, "vehicle_required")])
        return resolve_vehicle(model, default)
    return resolve_vehicle(item.vehicle, default)


def resolve_item(
    item: ForecastItem,
    snapshot: dict[str, Any] | None,
    history: list[dict[str, Any]],
    default_vehicle: str,
    loc: list[str | int],
) -> Resolved:
    """Start state, usage, preset and aging model of one item (`snapshot` and `history`: the
    stored vehicle of `item.vehicle_id`, if any)."""
    preset = preset_for(item, snapshot, default_vehicle, loc)
    observed = observed_usage(snapshot, history, preset.pack.capacity_ah) if snapshot else {}
    state = start_state(item, snapshot, loc)
    usage = resolve_usage(item.usage, observed, loc)
    model = (snapshot or {}).get("telemetry", {}).get("aging_model")
    if model not in MODELS:
        model = preset.pack.aging_model
    return Resolved(state, usage, preset, model)


def forecast_start(states: list[PackState], aging_model: str) -> ForecastStart:
    """The model's own accumulated states per vehicle; the other models' losses held."""
    vectors = np.array([st.vector for st in states])  # (vehicles, state fields)
    others = [m for m in REGISTRY if m.name != aging_model]
    cap = [i for m in others for i in LAYOUT.positions(m.name, m.capacity_terms)]
    res = [i for m in others for i in LAYOUT.positions(m.name, m.resistance_terms)]
    off = LAYOUT.offset(aging_model)
    block = vectors[:, off : off + len(LAYOUT.block(aging_model))]
    return ForecastStart(block, vectors[:, cap].sum(axis=1), vectors[:, res].sum(axis=1))


def duty(
    states: list[PackState], usages: list[dict[str, Any]], presets: list[VehiclePreset]
) -> Duty:
    """The pack's day (models/duty.py) of each vehicle, one compiled call per pack design.
    A usage may carry a policy's `max_discharge_kw` and `preconditioning` (default: the
    preset's power limit, preconditioning on)."""
    n = len(states)
    out = Duty(np.empty(n), np.empty(n), np.empty(n), np.empty((n, 3)), np.empty((n, 3)))
    groups: dict[int, list[int]] = {}
    for i, preset in enumerate(presets):
        groups.setdefault(id(preset), []).append(i)
    for idx in groups.values():
        preset = presets[idx[0]]
        params = preset_params(preset)[1]
        rows = [usages[i] for i in idx]
        limit_w = params.circuit.max_discharge_w
        cap_w = np.array([min(u.get("max_discharge_kw") or math.inf, limit_w / 1000.0) * 1000.0
                          for u in rows])  # fmt: skip
        precondition = np.array([u.get("preconditioning") is not False for u in rows])
        columns = {k: np.array([u[k] for u in rows], dtype=float) for k in DEFAULT_USAGE}
        soh = np.array([states[i].soh for i in idx])
        d = pack_duty(params, preset.pack.nominal_energy_kwh, columns, soh, cap_w, precondition)
        for name in ("drive_c_rate", "ac_c_rate", "dc_c_rate", "op_fraction", "op_temp_c"):
            getattr(out, name)[idx] = getattr(d, name)
    return out


def run_forecast(
    states: list[PackState],
    usages: list[dict[str, Any]],
    presets: list[VehiclePreset],
    years: float,
    aging_model: str,
) -> Forecast:
    def arr(key: str) -> np.ndarray:
        return np.array([u[key] for u in usages], dtype=float)

    d = duty(states, usages, presets)
    usage = Usage(*(arr(k) for k in DEFAULT_USAGE))
    usage = replace(usage, charge_c_rate=d.ac_c_rate, drive_c_rate=d.drive_c_rate,
                    dc_c_rate=d.dc_c_rate, op_fraction=d.op_fraction,
                    op_temp_c=d.op_temp_c)  # fmt: skip
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


def _summary(summary: dict[str, np.ndarray], row: int) -> dict[str, Any]:
    return {
        "soh_in_2_years": float(summary["soh_in_2_years"][row]),
        "years_to_80": none_if_nan(summary["years_to_80"][row]),
        "fade_pct_per_year": float(summary["fade_pct_per_year"][row]),
    }


def model_forecast(r: Resolved, years: float, aging_model: str) -> dict[str, Any]:
    """One vehicle over LONG_HORIZON_YEARS (so years_to_80 is found), points up to `years`."""
    horizon = max(years, LONG_HORIZON_YEARS)
    fc = run_forecast([r.state], [r.usage], [r.preset], horizon, aging_model)
    return {
        "aging_model": aging_model,
        "points": points(fc, 0, years),
        **_summary(summarise(fc, years), 0),
    }


def single_forecast(body: ForecastRequest, r: Resolved) -> dict[str, Any]:
    """The response of POST /forecast."""
    result = model_forecast(r, body.years, body.aging_model or r.aging_model)
    by_model = band = None
    if body.compare_models:
        by_model = [model_forecast(r, body.years, name) for name in PHYSICAL_MODELS]
        band = model_band(by_model)
    return {**result, "vehicle_id": body.vehicle_id, "usage": r.usage, "by_model": by_model,
            "band": band}  # fmt: skip


def model_band(by_model: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """[lowest, highest] of each summary over the models; years_to_80 beyond the long horizon
    (None) counts as the highest."""
    band: dict[str, list[float | None]] = {}
    for key in ("soh_in_2_years", "fade_pct_per_year"):
        values = [m[key] for m in by_model]
        band[key] = [min(values), max(values)]
    years = [m["years_to_80"] for m in by_model]
    known = [y for y in years if y is not None]
    band["years_to_80"] = [
        min(known) if known else None,
        None if len(known) < len(years) else max(known),
    ]
    return band


def fleet_results(
    resolved: list[Resolved],
    vehicle_ids: list[str | None],
    years: float,
    aging_model: str | None,
    include_points: bool,
    warranty_years: float = 0.0,
    policies: Sequence[Callable[[dict[str, Any]], dict[str, Any]]] = (),
) -> list[list[dict[str, Any]]]:
    """Results of POST /forecast/fleet for these vehicles as they are used, then under each
    of `policies` (functions of the usage): one vectorised run per aging model over every
    (vehicle, policy) row."""
    horizon = max(years, warranty_years, FLEET_MIN_HORIZON_YEARS)
    variants: list[Callable[[dict[str, Any]], dict[str, Any]] | None] = [None, *policies]
    models = [aging_model or r.aging_model for r in resolved]
    out: list[list[dict[str, Any]]] = [[{} for _ in resolved] for _ in variants]
    for model in dict.fromkeys(models):
        idx = [i for i, m in enumerate(models) if m == model]
        rows = [(k, i) for k in range(len(variants)) for i in idx]
        usages = [
            resolved[i].usage if variants[k] is None else variants[k](resolved[i].usage)  # type: ignore[misc]
            for k, i in rows
        ]
        fc = run_forecast([resolved[i].state for _, i in rows], usages,
                          [resolved[i].preset for _, i in rows], horizon, model)  # fmt: skip
        summary = summarise(fc, years)
        at_warranty = np.array([np.interp(warranty_years, fc.years, r) for r in fc.soh])
        for row, (k, i) in enumerate(rows):
            out[k][i] = {
                "vehicle_id": vehicle_ids[i],
                "aging_model": model,
                **_summary(summary, row),
                "soh_at_warranty": float(at_warranty[row]),
                "points": points(fc, row, years) if include_points else None,
            }
    return out
