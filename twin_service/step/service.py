"""The step service: request envelope -> model run -> new state, telemetry and trace.

No web framework here; the router in twin_service/api/step.py only reads the body and calls
`run_step`, then publishes the result.
"""

from __future__ import annotations

import gc
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack
import numpy as np
import orjson
from pydantic import ValidationError

from twin_service.errors import ApiError, error_item, pydantic_errors
from twin_service.models import estimator
from twin_service.models.aging import DEFAULT_MODEL, LAYOUT
from twin_service.models.aging.base import out_of_range_names
from twin_service.models.constants import SECONDS_PER_DAY
from twin_service.models.drivetrain import DrivetrainParams, drive_columns
from twin_service.models.kernel import MODE_CHARGING, MODE_PRECONDITION
from twin_service.models.pack import (
    AgingSettings,
    DriveInput,
    Estimation,
    IntegrationTooLong,
    PackParams,
    PackState,
    StepResult,
    new_pack_state,
    simulate,
)
from twin_service.models.state import MAX_REV, from_validated, migrate, read_fast, to_wire
from twin_service.presets import PRESETS, VehiclePreset, drivetrain_params, pack_params
from twin_service.schemas import (
    VEHICLE_ID_PATTERN,
    EstimatorOptions,
    PackSeed,
    PackStateWire,
    StepEnvelope,
    StepOptions,
)
from twin_service.step.json_reader import read_step_json
from twin_service.step.samples import (
    SampleColumns,
    columns_from_small,
    parse_samples,
    parse_small,
    rows_of_small_columns,
)

DEMO_TIME_MULTIPLIER = 10_000.0
DEFAULT_AMBIENT_C = 25.0
SECONDS_PER_YEAR = 365.0 * SECONDS_PER_DAY


@dataclass
class StepOutcome:
    vehicle_id: str
    state: dict[str, Any]
    telemetry: dict[str, Any]  # without rev; the live store assigns it
    trace: list[dict[str, Any]] | dict[str, list[Any]] | None  # rows or columns
    samples: int
    base_rev: int | None = None  # the rev the request's state carried
    store: bool = True
    replace: bool = False
    live_trace: dict[str, list[float | None]] | None = None  # published with the step
    estimate: dict[str, Any] | None = None


MAX_JSON_DEPTH = 1024  # orjson's nesting limit; no request needs a tenth of it


def _too_deep() -> ApiError:
    msg = f"JSON nesting deeper than {MAX_JSON_DEPTH} levels"
    return ApiError(422, [error_item(["body"], msg, "json_too_deep")])


def decode_json(body: bytes) -> Any:
    """Parse a request body. Non-standard NaN/Infinity literals are accepted here so that the
    validation can name the field that holds them. Nesting deeper than MAX_JSON_DEPTH is
    refused before the recursive fallback parser could exhaust the stack."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc).lower():
            raise _too_deep() from None
    try:
        return json.loads(body)
    except RecursionError:
        raise _too_deep() from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", getattr(exc, "start", 0))
        raise ApiError(
            422, [error_item(["body", pos], f"JSON decode error: {exc}", "json_invalid")]
        ) from None


GC_PAUSE_MIN_BYTES = 16_384
# Bodies above this size are first offered to json_reader (below it orjson is as quick).
READER_MIN_BYTES = 16_384
_gc_lock = threading.Lock()
_gc_pausers = 0


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a large body becomes columns: the tens of
    thousands of short-lived sample dicts otherwise trigger full collections that cost more
    than the model run. Reference counting still frees everything at once."""
    global _gc_pausers
    with _gc_lock:
        _gc_pausers += 1
        if _gc_pausers == 1:
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0:
                gc.enable()


def decode_msgpack(body: bytes) -> Any:
    """Parse a msgpack request body: string keys only, one object, nothing after it."""
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True)
    except msgpack.ExtraData:
        msg = "msgpack decode error: data after the first object"
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        msg = f"msgpack decode error: {exc or type(exc).__name__}"
    raise ApiError(422, [error_item(["body"], msg, "msgpack_invalid")])


def run_step_body(
    body: bytes,
    default_vehicle: str,
    max_samples: int,
    trace_points: int = 0,
    packed: bool = False,
) -> StepOutcome:
    """Decode a /step body, JSON or (`packed`) msgpack, and run it (see run_step)."""
    decode = decode_msgpack if packed else decode_json
    if not packed and len(body) > READER_MIN_BYTES:
        read = read_step_json(body, max_samples)
        if read is not None:
            return run_step(read[0], default_vehicle, max_samples, trace_points, read[1])
    if len(body) <= GC_PAUSE_MIN_BYTES:  # few objects: pausing the collector costs more
        return run_step(decode(body), default_vehicle, max_samples, trace_points)
    with gc_paused():
        return run_step(decode(body), default_vehicle, max_samples, trace_points)


def resolve_vehicle(vehicle: str | VehiclePreset | None, default_vehicle: str) -> VehiclePreset:
    if isinstance(vehicle, VehiclePreset):
        return vehicle
    name = vehicle or default_vehicle
    preset = PRESETS.get(name)
    if preset is None:
        raise ApiError(
            422,
            [
                error_item(
                    ["body", "vehicle"],
                    f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}",
                    "unknown_preset",
                )
            ],
        )
    return preset


def state_from_wire(
    raw: dict[str, Any] | None, ambient_c: float, aging_model: str = DEFAULT_MODEL
) -> PackState:
    """A full state (with schema_version; older versions are migrated) continues as it was;
    anything else seeds a new pack at `ambient_c`, its seeded losses booked in `aging_model`."""
    if raw is None:
        return new_pack_state(temperature_c=ambient_c, aging_model=aging_model)
    if "schema_version" in raw:
        try:
            raw = migrate(raw)
        except ValueError as exc:
            raise ApiError(
                422, [error_item(["body", "state", "schema_version"], str(exc), "schema_version")]
            ) from None
        est = None
        if "estimator" in raw:
            raw = dict(raw)
            est = _estimator_from_wire(raw.pop("estimator"))
        vec = read_fast(LAYOUT, raw)
        if vec is not None:
            return PackState(vec, est)
        try:
            wire = PackStateWire.model_validate(raw)
        except ValidationError as exc:
            raise ApiError(422, pydantic_errors(exc, ["body", "state"])) from None
        return PackState(from_validated(LAYOUT, wire.model_dump()), est)
    try:
        seed = PackSeed.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(422, pydantic_errors(exc, ["body", "state"])) from None
    temperature = ambient_c if seed.temperature_c is None else seed.temperature_c
    return new_pack_state(
        seed.soc, temperature, seed.soh, seed.resistance_factor, ambient_c, aging_model
    )


def _estimator_from_wire(raw: Any) -> np.ndarray | None:
    if raw is None:
        return None
    found = estimator.problems(raw)
    if found:
        raise ApiError(
            422,
            [
                error_item(["body", "state", "estimator", *loc], msg, "estimator")
                for loc, msg in found
            ],
        )
    return estimator.from_wire(raw)


def state_to_wire(state: PackState, capacity_ah: float) -> dict[str, Any]:
    wire = to_wire(LAYOUT, state.vector, state.soh, state.resistance_factor, capacity_ah)
    if state.estimator is not None:
        wire["estimator"] = estimator.to_wire(state.estimator)
    return wire


_DEFAULT_ESTIMATOR_OPTIONS = EstimatorOptions()


def estimation_for(
    options: StepOptions, preset: VehiclePreset, state: PackState, cols: SampleColumns
) -> Estimation | None:
    """The estimator's inputs when it runs (measurements in the samples, or a filter in the
    state, and options.estimate); starts the filter in `state` when it has none (or on reset)."""
    if not options.estimate or not (cols.measurement_count or state.estimator is not None):
        return None
    eo = options.estimator or _DEFAULT_ESTIMATOR_OPTIONS
    sensors = preset.sensors
    if options.sensors is not None:
        sensors = sensors.model_copy(update=options.sensors.model_dump(exclude_none=True))
    if state.estimator is None or eo.reset:
        pack = preset.pack
        state.estimator = estimator.new_estimator(
            state.soh, state.resistance_factor, eo.initial_soc_std, eo.initial_soh_std,
            eo.initial_resistance_factor_std, sensors.current_bias_a,
            ESTIMATOR_V_RC_STD_PER_CELL * pack.cells_series, max(pack.hysteresis_v, 1e-4),
            ESTIMATOR_TEMPERATURE_STD_C,
        )  # fmt: skip
    settings = estimator.settings_vector(
        sensors.voltage_std_v, sensors.voltage_bias_v, sensors.current_std_a,
        sensors.temperature_std_c, sensors.soc_std, eo.gate_sigma, options.assimilate,
    )  # fmt: skip
    return Estimation(
        settings, cols.measured_voltage_v, cols.measured_temperature_c, cols.measured_soc
    )


# The filter's prior on the RC voltage (per cell) and the temperature when it starts.
ESTIMATOR_V_RC_STD_PER_CELL = 0.01
ESTIMATOR_TEMPERATURE_STD_C = 2.0


def estimate_of(result: StepResult, assimilate: bool, measured: int) -> dict[str, Any] | None:
    """The response's `estimate` (None when no filter ran)."""
    est = result.state.estimator
    if est is None or result.estimate is None:
        return None
    e = estimator
    rejected = int(result.estimate[:, e.EO_REJECTED].sum())
    state = result.state
    soh_std = e.std(est, e.X_SOH)
    rf_std = e.std(est, e.X_RF)
    return {
        "soc": min(1.0, max(0.0, state.soc)),
        "soc_std": e.std(est, e.X_SOC),
        "soh": float(est[e.E_SOH]),
        "soh_std": soh_std,
        "resistance_factor": float(est[e.E_RF]),
        "resistance_factor_std": rf_std,
        "voltage_rms_residual_v": math.sqrt(est[e.E_MS]) if est[e.E_MS] > 0 else None,
        "temperature_c": state.temperature_c,
        "temperature_std_c": e.std(est, e.X_TEMP),
        "current_bias_a": float(est[e.E_BIAS]),
        "current_bias_std_a": e.std(est, e.X_BIAS),
        "model_soh": state.soh,
        "model_resistance_factor": state.resistance_factor,
        "accepted": measured - rejected,
        "rejected": rejected,
        "assimilated": bool(
            assimilate and soh_std < e.ASSIMILATE_SOH_STD and rf_std < e.ASSIMILATE_RF_STD
        ),
    }


def drive_input(cols: SampleColumns, preset: VehiclePreset, ambient_start_c: float) -> DriveInput:
    """Terminal power or current demand per sample from whichever input each sample has."""
    power_w, current_a, ambient_c, distance_m = drive_columns(
        cols.dt_s, cols.power_kw, cols.current_a, cols.aux_kw, cols.wheel_speed_m_s,
        cols.ambient_c, float(ambient_start_c), cols.motor_sample, cols.motor_torque_nm,
        cols.motor_speed_rad_s, cols.has_motors, preset_params(preset)[2],
    )  # fmt: skip
    mode = cols.charging * MODE_CHARGING + cols.precondition * MODE_PRECONDITION
    return DriveInput(cols.dt_s, power_w, current_a, ambient_c, distance_m, mode.astype(np.int64))


_PRESET_PARAMS: dict[str, tuple[VehiclePreset, PackParams, DrivetrainParams]] = {}


def preset_params(preset: VehiclePreset) -> tuple[VehiclePreset, PackParams, DrivetrainParams]:
    """Model parameters of a preset, kept for the built-in (immutable) presets."""
    hit = _PRESET_PARAMS.get(preset.id)
    if hit is not None and hit[0] is preset:
        return hit
    hit = (preset, pack_params(preset), drivetrain_params(preset))
    if PRESETS.get(preset.id) is preset:
        _PRESET_PARAMS[preset.id] = hit
    return hit


def aging_settings(options: Any, preset: VehiclePreset) -> AgingSettings:
    model = options.aging_model or ("seed" if options.demo_mode else preset.pack.aging_model)
    multiplier = options.time_multiplier
    if multiplier is None:
        multiplier = DEMO_TIME_MULTIPLIER if options.demo_mode else 1.0
    return AgingSettings(model=model, time_multiplier=float(multiplier))


@dataclass
class _Envelope:
    vehicle_id: str
    vehicle: str | None
    state: dict[str, Any] | None
    samples: Any
    options: StepOptions


_ENVELOPE_KEYS = frozenset(StepEnvelope.model_fields)
_DEFAULT_OPTIONS = StepOptions()
_VEHICLE_ID = re.compile(VEHICLE_ID_PATTERN)


_FAST_OPTIONS = frozenset({"store", "replace", "trace", "estimate", "assimilate"})
# The (at most 32) validated option sets of the fast path, shared like _DEFAULT_OPTIONS (read only).
_FAST_OPTION_SETS: dict[tuple[tuple[str, bool], ...], StepOptions] = {}


def _envelope_fast(payload: dict[str, Any]) -> _Envelope | None:
    """The envelope when StepEnvelope certainly accepts it unchanged (a preset id or none, no
    options or only boolean store/replace/trace); None otherwise, and pydantic validates it."""
    if not payload.keys() <= _ENVELOPE_KEYS:
        return None
    vehicle_id = payload.get("vehicle_id", "default")
    vehicle = payload.get("vehicle")
    state = payload.get("state")
    if (
        type(vehicle_id) is not str
        or _VEHICLE_ID.fullmatch(vehicle_id) is None
        or not (vehicle is None or type(vehicle) is str)
        or not (state is None or type(state) is dict)
    ):
        return None
    options = _DEFAULT_OPTIONS
    raw = payload.get("options")
    if raw is not None:
        if not (
            type(raw) is dict
            and raw.keys() <= _FAST_OPTIONS
            and all(type(v) is bool for v in raw.values())
        ):
            return None
        key = tuple(sorted(raw.items()))
        options = _FAST_OPTION_SETS.get(key)  # type: ignore[assignment]
        if options is None:
            options = _FAST_OPTION_SETS[key] = StepOptions(**raw)
    return _Envelope(vehicle_id, vehicle, state, payload.get("samples"), options)


def run_step(
    payload: Any,
    default_vehicle: str,
    max_samples: int,
    trace_points: int = 0,
    columns: SampleColumns | None = None,
) -> StepOutcome:
    """Validate a decoded /step body, run the model and build the response parts (with a
    live trace of at most `trace_points` samples when stored). `columns`: the samples, read
    and validated already (json_reader; the payload's own are then ignored)."""
    if not isinstance(payload, dict):
        raise ApiError(422, [error_item(["body"], "Input should be a JSON object", "dict_type")])
    env: _Envelope | StepEnvelope | None = _envelope_fast(payload)
    if env is None:
        try:
            env = StepEnvelope.model_validate(payload)
        except ValidationError as exc:
            raise ApiError(422, pydantic_errors(exc, ["body"])) from None
    if env.state is not None and not isinstance(env.state, dict):
        raise ApiError(
            422, [error_item(["body", "state"], "Input should be an object or null", "dict_type")]
        )
    preset = resolve_vehicle(env.vehicle, default_vehicle)
    if columns is not None:
        cols = columns
    else:
        samples = env.samples
        if type(samples) is dict:  # columns: a small batch takes the rows' plain-Python path
            samples = rows_of_small_columns(samples)
        small = parse_small(samples, max_samples)
        cols = (
            columns_from_small(small)
            if small is not None
            else parse_samples(env.samples, max_samples)
        )
    aging = aging_settings(env.options, preset)
    base_rev = None
    if env.state is not None and "schema_version" in env.state:
        base_rev = pop_rev(env.state)
        state = state_from_wire(env.state, DEFAULT_AMBIENT_C)
        ambient_start = state.ambient_c
    else:
        given = cols.ambient_c[~np.isnan(cols.ambient_c)]
        ambient_start = float(given[0]) if given.size else DEFAULT_AMBIENT_C
        state = state_from_wire(env.state, ambient_start, aging.model)
    drive = drive_input(cols, preset, ambient_start)
    params = preset_params(preset)[1]
    estimation = estimation_for(env.options, preset, state, cols)
    try:
        result = simulate(params, state, drive, aging, estimation)
    except IntegrationTooLong as exc:
        raise ApiError(422, [error_item(["body", "samples"], str(exc), "too_long")]) from None
    check_continuable(result.state)
    wire_state = state_to_wire(result.state, params.capacity_ah)
    telemetry = build_telemetry(
        env.vehicle_id, preset, result, wire_state, aging, env.options.demo_mode,
        bool(cols.charging[-1]),
    )  # fmt: skip
    estimate = None
    if estimation is not None:
        estimate = estimate_of(result, env.options.assimilate, cols.measurement_count)
        add_estimate_telemetry(telemetry, result, estimation)
    trace: list[dict[str, Any]] | dict[str, list[Any]] | None = None
    if env.options.trace:
        as_columns = env.options.trace_format == "columns"
        trace = (trace_columns if as_columns else build_trace)(result, estimation)
    return StepOutcome(
        env.vehicle_id, wire_state, telemetry, trace, cols.n, base_rev,
        env.options.store, env.options.replace,
        live_trace(result, trace_points, estimation) if env.options.store else None,
        estimate,
    )  # fmt: skip


def check_continuable(state: PackState) -> None:
    """Raise ApiError(422) unless the new state is one the service reads back: every field
    finite and within its wire bounds, SOH above 0 and the resistance factor finite. A step
    that ages the pack past its end of life is refused rather than returning a state nobody
    can continue from."""
    errors = [
        error_item(
            ["body", "samples"],
            f"the step would leave state.{path} at {value:.6g}, outside [{low:.6g}, {high:.6g}]"
            + (": aging beyond end of life" if "capacity_loss" in path else ""),
            "end_of_life" if "capacity_loss" in path else "state_out_of_range",
        )
        for path, value, low, high in LAYOUT.out_of_bounds(state.vector)
    ]
    soh, rf = state.soh, state.resistance_factor
    if not errors and not (soh > 0.0 and math.isfinite(rf)):
        errors.append(
            error_item(
                ["body", "samples"],
                f"aging beyond end of life: the step would leave soh at {soh:.6g} and "
                f"resistance_factor at {rf:.6g}; lower options.time_multiplier or age less",
                "end_of_life",
            )
        )
    if errors:
        raise ApiError(422, errors)


def pop_rev(state: dict[str, Any]) -> int | None:
    """Remove and return the `rev` a stored state carries (None when absent)."""
    rev = state.pop("rev", None)
    if rev is None or (type(rev) is int and 0 <= rev <= MAX_REV):
        return rev
    msg = f"rev must be an integer in [0, {MAX_REV}] or absent"
    raise ApiError(422, [error_item(["body", "state", "rev"], msg, "int_type")])


def build_telemetry(
    vehicle_id: str,
    preset: VehiclePreset,
    result: StepResult,
    wire_state: dict[str, Any],
    aging: AgingSettings,
    demo_mode: bool,
    charging: bool,
) -> dict[str, Any]:
    s = wire_state
    oor = result.out_of_range
    flags = int(oor[0]) if oor.shape[0] == 1 else int(np.bitwise_or.reduce(oor))
    current = float(result.current_a[-1])
    power_kw = float(result.power_w[-1]) / 1000.0
    is_charging = charging and current < 0.0
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "elapsed_seconds": s["elapsed_s"],
        "simulated_days": s["aged_s"] / SECONDS_PER_DAY,
        "simulated_years": s["aged_s"] / SECONDS_PER_YEAR,
        "soc": s["soc"] * 100.0,
        "soh": s["soh"] * 100.0,
        "temperature": s["temperature_c"],
        "voltage": float(result.voltage_v[-1]),
        "current": current,
        "power_kw": power_kw,
        "total_distance_km": s["total_distance_km"],
        "cycle_count": s["cycle_count"],
        "energy_throughput_kwh": s["energy_discharged_kwh"] + s["energy_charged_kwh"],
        "is_charging": is_charging,
        "is_regen": current < 0.0 and not charging,
        "demo_mode": demo_mode,
        "time_multiplier": aging.time_multiplier,
        "vehicle_model": preset.id,
        "simulation_running": True,
        "vehicle_id": vehicle_id,
        "resistance_factor": s["resistance_factor"],
        "max_discharge_kw": result.max_discharge_w / 1000.0,
        "max_regen_kw": result.max_regen_w / 1000.0,
        "ambient_c": s["ambient_c"],
        "aging_model": aging.model,
        "power_limited": bool(result.limited[-1]),
        "tms_kw": float(result.tms_w[-1]) / 1000.0,
        "tms_energy_kwh": s["tms_energy_kwh"],
        "aging_out_of_range": flags != 0,
        "aging_out_of_range_stressors": out_of_range_names(flags),
        **_NO_ESTIMATE,
    }


_NO_ESTIMATE: dict[str, Any] = {
    "soc_std": None,
    "measured_voltage": None,
    "voltage_residual": None,
    "soh_estimated": None,
    "soh_estimated_std": None,
    "resistance_factor_estimated": None,
    "measurements_rejected": None,
}


def _finite_or_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def add_estimate_telemetry(
    telemetry: dict[str, Any], result: StepResult, estimation: Estimation
) -> None:
    """The estimator's telemetry fields (last sample), in telemetry's units (%)."""
    e = estimator
    if result.estimate is None:
        return
    last = result.estimate[-1]
    measured = float(estimation.measured_voltage_v[-1])
    telemetry["soc_std"] = float(last[e.EO_SOC_STD]) * 100.0
    telemetry["measured_voltage"] = _finite_or_none(measured)
    telemetry["voltage_residual"] = _finite_or_none(float(last[e.EO_RESIDUAL]))
    telemetry["soh_estimated"] = float(last[e.EO_SOH]) * 100.0
    telemetry["soh_estimated_std"] = float(last[e.EO_SOH_STD]) * 100.0
    telemetry["resistance_factor_estimated"] = float(last[e.EO_RF])
    telemetry["measurements_rejected"] = int(result.estimate[:, e.EO_REJECTED].sum())


# Columns of the trace published with a step, their scale (to telemetry's units) and the
# decimals kept (finer than any chart shows).
_LIVE_TRACE = (
    ("elapsed_s", "t_s", 1.0, 3),
    ("soc", "soc", 100.0, 4),
    ("soh", "soh", 100.0, 5),
    ("voltage", "voltage_v", 1.0, 3),
    ("current", "current_a", 1.0, 2),
    ("power_kw", "power_w", 1e-3, 3),
    ("temperature", "temperature_c", 1.0, 3),
)


def _nullable(column: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in column.tolist()]


def live_trace(
    result: StepResult, points: int, estimation: Estimation | None = None
) -> dict[str, list[float | None]] | None:
    """The batch's course for live charts: at most `points` samples evenly spread over it,
    the last one included (it equals the telemetry); None for one sample or points < 2. With
    the estimator: its SOC sigma, the measured voltage and residual (null where not measured)
    and its SOH."""
    n = result.t_s.shape[0]
    if n < 2 or points < 2:
        return None
    idx = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(np.int64))
    out: dict[str, list[float | None]] = {}
    for key, attr, scale, decimals in _LIVE_TRACE:
        column = getattr(result, attr)[idx]
        if key == "soc":
            column = np.clip(column, 0.0, 1.0)
        out[key] = np.round(column * scale, decimals).tolist()
    if estimation is not None and result.estimate is not None:
        e = estimator
        est = result.estimate[idx]
        out["soc_std"] = np.round(est[:, e.EO_SOC_STD] * 100.0, 4).tolist()
        out["measured_voltage"] = _nullable(np.round(estimation.measured_voltage_v[idx], 3))
        out["voltage_residual"] = _nullable(np.round(est[:, e.EO_RESIDUAL], 4))
        out["soh_estimated"] = np.round(est[:, e.EO_SOH] * 100.0, 5).tolist()
    return out


def trace_columns(result: StepResult, estimation: Estimation | None = None) -> dict[str, list[Any]]:
    """The trace as one list per TraceRow field (the estimator's fields with one)."""
    cols: dict[str, list[Any]] = {
        "t_s": result.t_s.tolist(),
        "soc": np.clip(result.soc, 0.0, 1.0).tolist(),
        "voltage": result.voltage_v.tolist(),
        "current": result.current_a.tolist(),
        "power_kw": (result.power_w / 1000.0).tolist(),
        "temperature": result.temperature_c.tolist(),
        "soh": result.soh.tolist(),
        "tms_kw": (result.tms_w / 1000.0).tolist(),
        "power_limited": result.limited.tolist(),
    }
    est = result.estimate
    if estimation is not None and est is not None:
        e = estimator
        cols["soc_std"] = est[:, e.EO_SOC_STD].tolist()
        cols["measured_voltage"] = _nullable(estimation.measured_voltage_v)
        cols["voltage_residual"] = _nullable(est[:, e.EO_RESIDUAL])
        cols["soh_estimated"] = est[:, e.EO_SOH].tolist()
        cols["resistance_factor_estimated"] = est[:, e.EO_RF].tolist()
        cols["rejected"] = (est[:, e.EO_REJECTED] > 0).tolist()
    return cols


def build_trace(result: StepResult, estimation: Estimation | None = None) -> list[dict[str, Any]]:
    """The trace as rows (TraceRow)."""
    cols = trace_columns(result, estimation)
    keys = tuple(cols)
    return [dict(zip(keys, row, strict=True)) for row in zip(*cols.values(), strict=True)]
