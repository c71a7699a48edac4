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

import annotated_types
import numpy as np
import orjson
from pydantic import BaseModel, ValidationError

from twin_service.errors import ApiError, error_item, pydantic_errors
from twin_service.models.aging.half_cycles import HalfCycle
from twin_service.models.drivetrain import DrivetrainParams, motor_electrical_power_w
from twin_service.models.pack import (
    AgingSettings,
    DriveInput,
    IntegrationTooLong,
    PackParams,
    PackState,
    StepResult,
    interp_scalar,
    new_pack_state,
    simulate,
)
from twin_service.presets import PRESETS, VehiclePreset, drivetrain_params, pack_params
from twin_service.schemas import (
    STATE_SCHEMA_VERSION,
    VEHICLE_ID_PATTERN,
    AgingState,
    HalfCycleState,
    PackSeed,
    PackStateWire,
    StepEnvelope,
    StepOptions,
)
from twin_service.step.samples import SampleColumns, SmallSamples, parse_samples, parse_small

DEMO_TIME_MULTIPLIER = 10_000.0
DEFAULT_AMBIENT_C = 25.0
SECONDS_PER_DAY = 86400.0
SECONDS_PER_YEAR = 365.0 * SECONDS_PER_DAY


@dataclass
class StepOutcome:
    vehicle_id: str
    state: dict[str, Any]
    telemetry: dict[str, Any]  # without rev; the live store assigns it
    trace: list[dict[str, float]] | None
    samples: int


def decode_json(body: bytes) -> Any:
    """Parse a request body. Non-standard NaN/Infinity literals are accepted here so that the
    validation can name the field that holds them."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", getattr(exc, "start", 0))
        raise ApiError(
            422, [error_item(["body", pos], f"JSON decode error: {exc}", "json_invalid")]
        ) from None


GC_PAUSE_MIN_BYTES = 16_384
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


def run_step_body(body: bytes, default_vehicle: str, max_samples: int) -> StepOutcome:
    """Decode a /step body and run it (see run_step)."""
    if len(body) <= GC_PAUSE_MIN_BYTES:  # few objects: pausing the collector costs more
        return run_step(decode_json(body), default_vehicle, max_samples)
    with gc_paused():
        return run_step(decode_json(body), default_vehicle, max_samples)


def resolve_vehicle(vehicle: str | VehiclePreset | None, default_vehicle: str) -> VehiclePreset:
    if isinstance(vehicle, VehiclePreset):
        return vehicle
    name = vehicle or default_vehicle
    preset = PRESETS.get(name)
    if preset is None:
        raise ApiError(
            422,
            [error_item(["body", "vehicle"],
                        f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}",
                        "unknown_preset")],
        )
    return preset


def state_from_wire(
    raw: dict[str, Any] | None, ambient_c: float
) -> tuple[PackState, float]:
    """A full state (with schema_version) continues with its stored ambient; anything else
    seeds a new pack at `ambient_c`."""
    if raw is None:
        return new_pack_state(temperature_c=ambient_c), ambient_c
    if "schema_version" in raw:
        if raw["schema_version"] != STATE_SCHEMA_VERSION:
            raise ApiError(
                422,
                [error_item(["body", "state", "schema_version"],
                            f"unsupported state schema_version {raw['schema_version']!r}; this "
                            f"service reads version {STATE_SCHEMA_VERSION}",
                            "schema_version")],
            )
        fast = _state_fast(raw)
        if fast is not None:
            return fast
        try:
            wire = PackStateWire.model_validate(raw)
        except ValidationError as exc:
            raise ApiError(422, pydantic_errors(exc, ["body", "state"])) from None
        a = wire.aging
        hc = a.half_cycle
        return PackState(
            soc=wire.soc,
            temperature_c=wire.temperature_c,
            v_rc=wire.v_rc_v,
            elapsed_s=wire.elapsed_s,
            aged_s=wire.aged_s,
            total_distance_km=wire.total_distance_km,
            energy_discharged_kwh=wire.energy_discharged_kwh,
            energy_charged_kwh=wire.energy_charged_kwh,
            throughput_ah=wire.throughput_ah,
            cal_capacity_loss=a.cal_capacity_loss,
            cal_resistance_increase=a.cal_resistance_increase,
            cyc_capacity_loss=a.cyc_capacity_loss,
            cyc_resistance_increase=a.cyc_resistance_increase,
            seed_capacity_loss=a.seed_capacity_loss,
            half_cycle=HalfCycle(**hc.model_dump()),
        ), wire.ambient_c
    try:
        seed = PackSeed.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(422, pydantic_errors(exc, ["body", "state"])) from None
    temperature = ambient_c if seed.temperature_c is None else seed.temperature_c
    return new_pack_state(seed.soc, temperature, seed.soh, seed.resistance_factor), ambient_c


_BIG = 1.7976931348623157e308  # the largest float: "no upper bound", and still rejects inf


def _float_bounds(model: type[BaseModel]) -> dict[str, tuple[float, float]]:
    """(low, high) of each float field of a wire model, read from its ge/le constraints, so
    the fast state check below cannot drift from the schema."""
    bounds = {}
    for name, info in model.model_fields.items():
        if info.annotation is not float:
            continue
        low, high = -_BIG, _BIG
        for rule in info.metadata:
            if isinstance(rule, annotated_types.Ge):
                low = float(rule.ge)
            elif isinstance(rule, annotated_types.Le):
                high = float(rule.le)
            elif isinstance(rule, annotated_types.Gt | annotated_types.Lt):
                raise TypeError(f"{model.__name__}.{name}: strict bounds are not handled here")
        bounds[name] = (low, high)
    return bounds


_STATE_BOUNDS = _float_bounds(PackStateWire)
_AGING_BOUNDS = _float_bounds(AgingState)
_HALF_CYCLE_BOUNDS = _float_bounds(HalfCycleState)
_STATE_KEYS = PackStateWire.model_fields.keys()
_AGING_KEYS = AgingState.model_fields.keys()
_HALF_CYCLE_KEYS = HalfCycleState.model_fields.keys()
_FLOAT_TYPES = (float, int)


def _floats_ok(raw: dict[str, Any], bounds: dict[str, tuple[float, float]]) -> bool:
    for name, (low, high) in bounds.items():
        v = raw[name]
        if type(v) not in _FLOAT_TYPES or not low <= v <= high:  # NaN and inf fail too
            return False
    return True


def _state_fast(raw: dict[str, Any]) -> tuple[PackState, float] | None:
    """A full state that PackStateWire certainly accepts, read without pydantic; None for
    anything else (pydantic then validates it and names the errors)."""
    if raw.keys() != _STATE_KEYS or type(raw["schema_version"]) is not int:
        return None
    aging = raw["aging"]
    if type(aging) is not dict or aging.keys() != _AGING_KEYS:
        return None
    hc = aging["half_cycle"]
    if type(hc) is not dict:
        return None
    direction = hc.get("direction", 0)
    if type(direction) is not int or direction not in (-1, 0, 1):
        return None
    if not (hc.keys() == _HALF_CYCLE_KEYS
            or ("direction" not in hc and hc.keys() == _HALF_CYCLE_BOUNDS.keys())):
        return None
    if not (_floats_ok(raw, _STATE_BOUNDS) and _floats_ok(aging, _AGING_BOUNDS)
            and _floats_ok(hc, _HALF_CYCLE_BOUNDS)):
        return None
    # float() as pydantic's float fields (ints become floats; a float stays itself).
    return PackState(
        soc=float(raw["soc"]),
        temperature_c=float(raw["temperature_c"]),
        v_rc=float(raw["v_rc_v"]),
        elapsed_s=float(raw["elapsed_s"]),
        aged_s=float(raw["aged_s"]),
        total_distance_km=float(raw["total_distance_km"]),
        energy_discharged_kwh=float(raw["energy_discharged_kwh"]),
        energy_charged_kwh=float(raw["energy_charged_kwh"]),
        throughput_ah=float(raw["throughput_ah"]),
        cal_capacity_loss=float(aging["cal_capacity_loss"]),
        cal_resistance_increase=float(aging["cal_resistance_increase"]),
        cyc_capacity_loss=float(aging["cyc_capacity_loss"]),
        cyc_resistance_increase=float(aging["cyc_resistance_increase"]),
        seed_capacity_loss=float(aging["seed_capacity_loss"]),
        half_cycle=HalfCycle(
            direction=direction,
            start_soc=float(hc["start_soc"]),
            extreme_soc=float(hc["extreme_soc"]),
            ah=float(hc["ah"]),
            active_s=float(hc["active_s"]),
            loss_sq_start=float(hc["loss_sq_start"]),
            resistance_start=float(hc["resistance_start"]),
        ),
    ), float(raw["ambient_c"])


def clamp_unit(x: float) -> float:
    """SOC on the wire: a pack emptied exactly to its limit can end a few ulps below 0."""
    return min(1.0, max(0.0, x))


def state_to_wire(state: PackState, ambient_c: float, capacity_ah: float) -> dict[str, Any]:
    hc = state.half_cycle
    return {
        "schema_version": STATE_SCHEMA_VERSION,
        "soc": clamp_unit(state.soc),
        "soh": state.soh,
        "resistance_factor": state.resistance_factor,
        "temperature_c": state.temperature_c,
        "v_rc_v": state.v_rc,
        "ambient_c": ambient_c,
        "elapsed_s": state.elapsed_s,
        "aged_s": state.aged_s,
        "total_distance_km": state.total_distance_km,
        "energy_discharged_kwh": state.energy_discharged_kwh,
        "energy_charged_kwh": state.energy_charged_kwh,
        "throughput_ah": state.throughput_ah,
        "cycle_count": state.throughput_ah / (2.0 * capacity_ah),
        "aging": {
            "cal_capacity_loss": state.cal_capacity_loss,
            "cal_resistance_increase": state.cal_resistance_increase,
            "cyc_capacity_loss": state.cyc_capacity_loss,
            "cyc_resistance_increase": state.cyc_resistance_increase,
            "seed_capacity_loss": state.seed_capacity_loss,
            "half_cycle": {
                "direction": hc.direction,
                "start_soc": hc.start_soc,
                "extreme_soc": hc.extreme_soc,
                "ah": hc.ah,
                "active_s": hc.active_s,
                "loss_sq_start": hc.loss_sq_start,
                "resistance_start": hc.resistance_start,
            },
        },
    }


def drive_input(cols: SampleColumns, preset: VehiclePreset, ambient_start_c: float) -> DriveInput:
    """Terminal power or current demand per sample from whichever input each sample has."""
    n = cols.n
    power_w = cols.power_kw * 1000.0  # NaN where another input is given
    aux_given = ~np.isnan(cols.aux_kw)
    if cols.has_motors.any():
        dt_params = _preset_params(preset)[2]
        mech_w = cols.motor_torque_nm * cols.motor_speed_rad_s
        elec_w = motor_electrical_power_w(mech_w, dt_params)
        motor_w = np.bincount(cols.motor_sample, weights=elec_w, minlength=n)
        # Motor-driven samples get the preset's auxiliary load unless the sample gives its own.
        aux_w = np.where(aux_given, 0.0, dt_params.aux_w)
        power_w = np.where(cols.has_motors, motor_w + aux_w, power_w)
    if aux_given.any():
        power_w = power_w + np.where(aux_given, cols.aux_kw, 0.0) * 1000.0
    speed = cols.wheel_speed_m_s
    distance_m = np.where(np.isnan(speed), 0.0, np.abs(speed)) * cols.dt_s
    return DriveInput(
        dt_s=cols.dt_s,
        power_w=power_w,
        current_a=np.where(np.isnan(power_w), cols.current_a, np.nan),
        ambient_c=forward_fill(cols.ambient_c, ambient_start_c),
        distance_m=distance_m,
    )


def drive_input_small(
    ss: SmallSamples, preset: VehiclePreset, ambient_start_c: float
) -> DriveInput:
    """`drive_input` for a small batch in plain Python, with the same floating-point
    operations in the same order (so the same results), then one array per column."""
    aux = ss.aux_kw
    any_aux = False
    for a in aux:
        if a == a:
            any_aux = True
            break
    dt: DrivetrainParams | None = None
    power_w: list[float] = []
    current: list[float] = []
    ambient: list[float] = []
    distance: list[float] = []
    last = ambient_start_c
    for i, motors in enumerate(ss.motors):
        a = aux[i]
        p = ss.power_kw[i] * 1000.0  # NaN where another input is given
        if motors is not None:
            if dt is None:
                dt = _preset_params(preset)[2]
            total = 0.0  # np.bincount sums in order from 0.0
            for torque, speed in motors:
                mech = torque * speed
                load = min(abs(mech) / dt.motor_peak_w, 1.0)
                eta = interp_scalar(load, dt.efficiency_load, dt.efficiency_value)
                eta *= dt.transmission_efficiency
                total += mech / eta if mech >= 0.0 else mech * eta
            # The preset's auxiliary load unless the sample gives its own.
            p = total + (0.0 if a == a else dt.aux_w)
        if any_aux:
            p = p + (a * 1000.0 if a == a else 0.0)
        power_w.append(p)
        current.append(ss.current_a[i] if p != p else math.nan)
        amb = ss.ambient_c[i]
        if amb == amb:
            last = amb
        ambient.append(last)
        v = ss.wheel_speed_m_s[i]
        distance.append((0.0 if v != v else abs(v)) * ss.dt_s[i])
    # One array for all columns; each row is a C-contiguous float64 view.
    rows = np.array([ss.dt_s, power_w, current, ambient, distance])
    return DriveInput(
        dt_s=rows[0], power_w=rows[1], current_a=rows[2], ambient_c=rows[3], distance_m=rows[4]
    )


_PRESET_PARAMS: dict[str, tuple[VehiclePreset, PackParams, DrivetrainParams]] = {}


def _preset_params(preset: VehiclePreset) -> tuple[VehiclePreset, PackParams, DrivetrainParams]:
    """Model parameters of a preset, kept for the built-in (immutable) presets."""
    hit = _PRESET_PARAMS.get(preset.id)
    if hit is not None and hit[0] is preset:
        return hit
    hit = (preset, pack_params(preset), drivetrain_params(preset))
    if PRESETS.get(preset.id) is preset:
        _PRESET_PARAMS[preset.id] = hit
    return hit


def forward_fill(values: np.ndarray, first: float) -> np.ndarray:
    """Replace NaN by the last given value (`first` before any)."""
    given = ~np.isnan(values)
    if given.all():
        return values
    idx = np.where(given, np.arange(values.shape[0]), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], first)


def aging_settings(options: Any) -> AgingSettings:
    model = options.aging_model or ("seed" if options.demo_mode else "naumann")
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


def _envelope_fast(payload: dict[str, Any]) -> _Envelope | None:
    """The envelope when StepEnvelope certainly accepts it unchanged (no options, a preset
    id or none); None otherwise, and pydantic validates it."""
    if not payload.keys() <= _ENVELOPE_KEYS or "options" in payload:
        return None
    vehicle_id = payload.get("vehicle_id", "default")
    vehicle = payload.get("vehicle")
    state = payload.get("state")
    if (type(vehicle_id) is not str or _VEHICLE_ID.fullmatch(vehicle_id) is None
            or not (vehicle is None or type(vehicle) is str)
            or not (state is None or type(state) is dict)):
        return None
    return _Envelope(vehicle_id, vehicle, state, payload.get("samples"), _DEFAULT_OPTIONS)


def run_step(payload: Any, default_vehicle: str, max_samples: int) -> StepOutcome:
    """Validate a decoded /step body, run the model and build the response parts."""
    if not isinstance(payload, dict):
        raise ApiError(422, [error_item(["body"], "Input should be a JSON object", "dict_type")])
    env = _envelope_fast(payload)
    if env is None:
        try:
            env = StepEnvelope.model_validate(payload)
        except ValidationError as exc:
            raise ApiError(422, pydantic_errors(exc, ["body"])) from None
    if env.state is not None and not isinstance(env.state, dict):
        raise ApiError(422, [error_item(["body", "state"], "Input should be an object or null",
                                        "dict_type")])
    preset = resolve_vehicle(env.vehicle, default_vehicle)
    small = parse_small(env.samples, max_samples)
    cols: SampleColumns | None = None
    if small is not None:
        sample_ambient = next((a for a in small.ambient_c if a == a), None)
        charging_last, n = small.charging[-1], small.n
    else:
        cols = parse_samples(env.samples, max_samples)
        first_ambient = cols.ambient_c[~np.isnan(cols.ambient_c)]
        sample_ambient = float(first_ambient[0]) if first_ambient.size else None
        charging_last, n = bool(cols.charging[-1]), cols.n
    if env.state is not None and "schema_version" in env.state:
        state, stored_ambient = state_from_wire(env.state, DEFAULT_AMBIENT_C)
        ambient_start = stored_ambient
    else:
        ambient_start = DEFAULT_AMBIENT_C if sample_ambient is None else sample_ambient
        state, _ = state_from_wire(env.state, ambient_start)
    if cols is None:
        assert small is not None
        drive = drive_input_small(small, preset, ambient_start)
    else:
        drive = drive_input(cols, preset, ambient_start)
    aging = aging_settings(env.options)
    params = _preset_params(preset)[1]
    try:
        result = simulate(params, state, drive, aging)
    except IntegrationTooLong as exc:
        raise ApiError(422, [error_item(["body", "samples"], str(exc), "too_long")]) from None
    ambient_end = float(drive.ambient_c[-1])
    wire_state = state_to_wire(result.state, ambient_end, params.capacity_ah)
    telemetry = build_telemetry(
        env.vehicle_id, preset, result, wire_state, aging, env.options.demo_mode,
        charging_last,
    )
    trace = build_trace(result) if env.options.trace else None
    return StepOutcome(env.vehicle_id, wire_state, telemetry, trace, n)


def build_telemetry(
    vehicle_id: str,
    preset: VehiclePreset,
    result: StepResult,
    wire_state: dict[str, Any],
    aging: AgingSettings,
    demo_mode: bool,
    charging: bool,
) -> dict[str, Any]:
    s = result.state
    current = float(result.current_a[-1])
    power_kw = float(result.power_w[-1]) / 1000.0
    is_charging = charging and current < 0.0
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "elapsed_seconds": s.elapsed_s,
        "simulated_days": s.aged_s / SECONDS_PER_DAY,
        "simulated_years": s.aged_s / SECONDS_PER_YEAR,
        "soc": clamp_unit(s.soc) * 100.0,
        "soh": s.soh * 100.0,
        "temperature": s.temperature_c,
        "voltage": float(result.voltage_v[-1]),
        "current": current,
        "power_kw": power_kw,
        "total_distance_km": s.total_distance_km,
        "cycle_count": wire_state["cycle_count"],
        "energy_throughput_kwh": s.energy_discharged_kwh + s.energy_charged_kwh,
        "is_charging": is_charging,
        "is_regen": current < 0.0 and not charging,
        "demo_mode": demo_mode,
        "time_multiplier": aging.time_multiplier,
        "vehicle_model": preset.id,
        "simulation_running": True,
        "vehicle_id": vehicle_id,
        "resistance_factor": s.resistance_factor,
        "max_discharge_kw": result.max_discharge_w / 1000.0,
        "max_regen_kw": result.max_regen_w / 1000.0,
        "ambient_c": wire_state["ambient_c"],
        "aging_model": aging.model,
        "power_limited": bool(result.limited[-1]),
    }


def build_trace(result: StepResult) -> list[dict[str, float]]:
    cols = (
        result.t_s.tolist(),
        np.clip(result.soc, 0.0, 1.0).tolist(),
        result.voltage_v.tolist(),
        result.current_a.tolist(),
        (result.power_w / 1000.0).tolist(),
        result.temperature_c.tolist(),
        result.soh.tolist(),
    )
    keys = ("t_s", "soc", "voltage", "current", "power_kw", "temperature", "soh")
    return [dict(zip(keys, row, strict=True)) for row in zip(*cols, strict=True)]
