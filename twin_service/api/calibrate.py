"""POST /calibrate: pack parameters fitted to a log with measured voltages.

The body is read here and everything else runs in one worker thread: decoding, validation
(the samples column-wise, as /step does), the fit (bounded in model runs, see
twin_service/calibrate/fit.py) and the JSON encoding. Like /forecast it stores nothing and
takes the read key. As for /step, a plain route registered first serves the operation; the
FastAPI route below documents it in OpenAPI.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from twin_service.calibrate.fit import PARAMETERS, CalibrationInputError, Log
from twin_service.calibrate.fit import calibrate as fit_log
from twin_service.calibrate.wire import (
    CalibrateEnvelope,
    CalibrateRequest,
    CalibrateResponse,
    fitted_pack,
    fitted_vehicle,
    spec_bounds,
    wire_fit,
)
from twin_service.deps import ReadAuth, require_read_key
from twin_service.errors import ApiError, error_item, pydantic_errors
from twin_service.models.pack import AgingSettings, PackState
from twin_service.presets import VehicleRef
from twin_service.schemas import ErrorResponse
from twin_service.step.samples import parse_samples
from twin_service.step.service import (
    DEFAULT_AMBIENT_C,
    decode_json,
    drive_input,
    pop_rev,
    preset_params,
    resolve_vehicle,
    state_from_wire,
)

router = APIRouter(tags=["calibrate"], dependencies=[ReadAuth])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    415: {"model": ErrorResponse},
    422: {"model": ErrorResponse, "description": "names the field (no_measurements, too_long…)"},
}
_VEHICLE = TypeAdapter(VehicleRef)


def _start(
    raw: dict[str, Any] | None, ambient_c: np.ndarray, aging_model: str
) -> tuple[PackState, float]:
    """The state at the log's first sample and the ambient the drive starts from, as /step
    reads them (a full state's rev is checked, and kept in the response)."""
    if raw is not None and "schema_version" in raw:
        raw = dict(raw)
        pop_rev(raw)
        state = state_from_wire(raw, DEFAULT_AMBIENT_C)
        return state, state.ambient_c
    given = ambient_c[~np.isnan(ambient_c)]
    ambient = float(given[0]) if given.size else DEFAULT_AMBIENT_C
    return state_from_wire(raw, ambient, aging_model), ambient


def _state_out(raw: dict[str, Any] | None, soc: float, temperature_c: float | None) -> dict:
    """The request's state with the fitted SOC (and the measured start temperature, which the
    fit started from): a full state stays full, anything else becomes a seed."""
    out = dict(raw or {})
    out["soc"] = min(max(soc, 0.0), 1.0)
    if temperature_c is not None:
        out["temperature_c"] = temperature_c
    return out


def run_calibration(body: bytes, default_vehicle: str, max_samples: int) -> bytes:
    """A /calibrate body in, the response JSON out; raises ApiError for bad requests."""
    payload = decode_json(body)
    if not isinstance(payload, dict):
        raise ApiError(422, [error_item(["body"], "Input should be a JSON object", "dict_type")])
    try:
        env = CalibrateEnvelope.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(422, pydantic_errors(exc, ["body"])) from None
    preset = resolve_vehicle(env.vehicle, default_vehicle)
    cols = parse_samples(env.samples, max_samples)
    aging = AgingSettings(model=preset.pack.aging_model)  # what /step runs by default
    state, ambient = _start(env.state, cols.ambient_c, aging.model)
    log = Log(
        drive=drive_input(cols, preset, ambient),
        state=state,
        aging=aging,
        voltage_v=cols.measured_voltage_v,
        temperature_c=cols.measured_temperature_c,
    )
    names = tuple(env.parameters) if env.parameters is not None else PARAMETERS
    try:
        fit = fit_log(preset_params(preset)[1], log, names, spec_bounds(preset))
    except CalibrationInputError as exc:
        raise ApiError(422, [error_item(["body", "samples"], str(exc), exc.kind)]) from None
    temps = cols.measured_temperature_c[~np.isnan(cols.measured_temperature_c)]
    start_temperature = float(temps[0]) if temps.size else None
    try:
        vehicle = fitted_vehicle(payload.get("vehicle"), preset, fitted_pack(preset, fit))
        _VEHICLE.validate_python(vehicle)
    except ValidationError as exc:  # the bounds keep this from happening; a 422, never a 500
        msg = f"the fitted vehicle is not a valid vehicle: {exc.errors()[0]['msg']}"
        raise ApiError(422, [error_item(["body", "vehicle"], msg, "calibration_invalid")]) from None
    response = {
        "vehicle": vehicle,
        "state": _state_out(env.state, fit.initial_soc, start_temperature),
        "fit": wire_fit(fit),
    }
    return orjson.dumps(response)


async def _calibrate_endpoint(request: Request) -> Response:
    settings = request.app.state.settings
    require_read_key(request, settings)
    body = await request.body()
    out = await run_in_threadpool(
        run_calibration, body, settings.default_vehicle, settings.max_samples_per_request
    )
    return Response(out, media_type="application/json")


router.add_route("/calibrate", _calibrate_endpoint, methods=["POST"], include_in_schema=False)


@router.post(
    "/calibrate", operation_id="calibrate", response_model=CalibrateResponse, responses=ERRORS
)
async def calibrate(request: Request, body: CalibrateRequest) -> Response:
    """Fit the pack's capacity, R0, R1, tau1, an OCV offset and the initial SOC to a log's
    measured terminal voltages (least squares on the twin's own model). Each parameter comes
    with its standard error; one the log does not determine is held at its nominal value,
    with a warning. The returned `vehicle` and `state` replay the log in /step as fitted."""
    return await _calibrate_endpoint(request)  # the plain route above serves it first
