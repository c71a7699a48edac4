"""Policies: the usage a vehicle has shown, changed the way a charging or software policy
changes it, then forecast like any other usage (POST /forecast/compare, and `policies` of
POST /forecast/fleet). A policy acts on the physics, not on the result:

- `charge_limit` caps the SOC every charge goes to (`soc_max`): the pack rests lower (calendar
  stress) and, when the day no longer fits the window, swings more often; the plug-in SOC
  (`soc_min`) is kept unless it would leave less than MIN_WINDOW below the limit;
- `dc_fast_share` sets the share of the energy charged at the pack's DC rate: higher C-rate
  (cycle stress) and more heat (the pack's temperature while charging);
- `max_discharge_kw` caps the battery power while driving: lower mean current and heat;
- `preconditioning` (default on) brings the pack to its preconditioning target before a DC
  charge: full DC rate in the cold, and a warmer pack.
models/duty.py turns each into C-rates and temperatures; the aging models do the rest. Every
(vehicle, policy) pair is one row of one vectorised run per aging model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin_service.forecast.service import (
    LONG_HORIZON_YEARS,
    PHYSICAL_MODELS,
    Resolved,
    check_budget,
    duty,
    model_band,
    none_if_nan,
    points,
    run_forecast,
    summarise,
)
from twin_service.models.duty import AC, DC, DRIVE
from twin_service.models.forecast import Forecast
from twin_service.schemas import ForecastCompareRequest, Policy, Warranty
from twin_service.settings import Settings

MIN_WINDOW = 0.05  # SOC a charge limit leaves above the plug-in SOC at least


def apply_policy(usage: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """The usage under `policy` (a new dict; `source` says "policy" for what it changed)."""
    out = dict(usage)
    source = dict(usage["source"])
    if policy.charge_limit is not None and policy.charge_limit < out["soc_max"]:
        out["soc_max"] = policy.charge_limit
        source["soc_max"] = "policy"
        if out["soc_min"] > policy.charge_limit - MIN_WINDOW:
            out["soc_min"] = max(policy.charge_limit - MIN_WINDOW, 0.0)
            source["soc_min"] = "policy"
    if policy.dc_fast_share is not None:
        out["dc_fast_share"] = policy.dc_fast_share
        source["dc_fast_share"] = "policy"
    if policy.max_discharge_kw is not None:
        out["max_discharge_kw"] = policy.max_discharge_kw
    if policy.preconditioning is not None:
        out["preconditioning"] = policy.preconditioning
    out["source"] = source
    return out


def warranty_horizon(years: float, warranty: Warranty, floor: float) -> float:
    return max(years, warranty.years, floor)


def soh_at(fc: Forecast, years: float) -> np.ndarray:
    return np.array([np.interp(years, fc.years, row) for row in fc.soh])


def check_compare(settings: Settings, body: ForecastCompareRequest) -> None:
    """Each policy is run with every physical model (the band) and the requested one, over
    LONG_HORIZON_YEARS (for years_to_80)."""
    models = len(body.policies) * (1 + len(PHYSICAL_MODELS))
    check_budget(
        settings,
        items=1,
        years=body.years,
        horizon_years=warranty_horizon(body.years, body.warranty, LONG_HORIZON_YEARS),
        models=models,
        returned=models,
        points_loc=["body", "policies"],
    )


def _usage_out(usage: dict[str, Any]) -> dict[str, Any]:
    """A usage as ResolvedUsage shows it (the policy's own knobs are in `policy`)."""
    return {k: v for k, v in usage.items() if k not in ("max_discharge_kw", "preconditioning")}


def _duty_out(d: Any, row: int) -> dict[str, Any]:
    names = {AC: "ac_charging", DC: "dc_charging", DRIVE: "driving"}
    return {
        "drive_c_rate": float(d.drive_c_rate[row]),
        "ac_c_rate": float(d.ac_c_rate[row]),
        "dc_c_rate": float(d.dc_c_rate[row]),
        "hours_per_day": {n: float(d.op_fraction[row, j] * 24.0) for j, n in names.items()},
        "temperature_c": {n: float(d.op_temp_c[row, j]) for j, n in names.items()},
    }


def _model_rows(
    r: Resolved, usages: list[dict[str, Any]], years: float, warranty: Warranty, model: str
) -> list[dict[str, Any]]:
    horizon = warranty_horizon(years, warranty, LONG_HORIZON_YEARS)
    n = len(usages)
    fc = run_forecast([r.state] * n, usages, [r.preset] * n, horizon, model)
    summary = summarise(fc, years)
    at_warranty = soh_at(fc, warranty.years)
    return [
        {
            "aging_model": model,
            "points": points(fc, i, years),
            "soh_in_2_years": float(summary["soh_in_2_years"][i]),
            "years_to_80": none_if_nan(summary["years_to_80"][i]),
            "fade_pct_per_year": float(summary["fade_pct_per_year"][i]),
            "soh_at_warranty": float(at_warranty[i]),
        }
        for i in range(n)
    ]


def compare_forecast(body: ForecastCompareRequest, r: Resolved) -> dict[str, Any]:
    """The response of POST /forecast/compare: one forecast per policy, with the band of the
    physical models; each model runs all policies at once."""
    usages = [apply_policy(r.usage, p) for p in body.policies]
    model = body.aging_model or r.aging_model
    main = _model_rows(r, usages, body.years, body.warranty, model)
    by_model = [_model_rows(r, usages, body.years, body.warranty, m) for m in PHYSICAL_MODELS]
    d = duty([r.state] * len(usages), usages, [r.preset] * len(usages))
    out = []
    for i, (policy, usage) in enumerate(zip(body.policies, usages, strict=True)):
        models = [rows[i] for rows in by_model]
        band = model_band(models)
        at_w = [m["soh_at_warranty"] for m in models]
        band["soh_at_warranty"] = [min(at_w), max(at_w)]
        out.append({
            "name": policy.name,
            "policy": policy.model_dump(exclude_none=True),
            "usage": _usage_out(usage),
            "duty": _duty_out(d, i),
            **main[i],
            "below_warranty": main[i]["soh_at_warranty"] < body.warranty.soh,
            "by_model": [{k: v for k, v in m.items() if k != "soh_at_warranty"} for m in models],
            "band": band,
        })  # fmt: skip
    return {
        "vehicle_id": body.vehicle_id,
        "years": body.years,
        "warranty": body.warranty.model_dump(),
        "usage": _usage_out(r.usage),
        "policies": out,
    }


def warranty_share(soh_at_warranty: list[float], warranty: Warranty) -> dict[str, Any]:
    below = sum(s < warranty.soh for s in soh_at_warranty)
    n = len(soh_at_warranty)
    return {**warranty.model_dump(), "vehicles": n, "vehicles_below": below,
            "share_below": below / n if n else 0.0}  # fmt: skip
