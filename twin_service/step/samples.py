"""Column-wise validation of /step samples: one numpy array per field, no object per sample.

The rules are those of `schemas.Sample`; errors name the field and the sample index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin_service.errors import ApiError, error_item

# Shortest sample: below ~1e-300 s the RC-branch law's dt/tau underflows to 0 (and divides
# by it); a microsecond is far below any logger's sample period.
MIN_DT_S = 1e-6
# field -> (low, high, low is exclusive)
NUMERIC_FIELDS: dict[str, tuple[float, float, bool]] = {
    "dt_s": (MIN_DT_S, 86400.0, False),
    "power_kw": (-10000.0, 10000.0, False),
    "current_a": (-1e5, 1e5, False),
    "wheel_speed_m_s": (-150.0, 150.0, False),
    "throttle": (0.0, 1.0, False),
    "brake": (0.0, 1.0, False),
    "ambient_c": (-60.0, 80.0, False),
    "aux_kw": (0.0, 100.0, False),
    # measurements of the real pack (not drive inputs): the state estimator's observations
    "measured_voltage_v": (0.0, 10000.0, False),
    "measured_temperature_c": (-60.0, 150.0, False),
    "measured_soc": (0.0, 1.0, False),
}
MEASURED_FIELDS = ("measured_voltage_v", "measured_temperature_c", "measured_soc")
_MEASURED = frozenset(MEASURED_FIELDS)
MOTOR_FIELDS: dict[str, tuple[float, float]] = {
    "torque_nm": (-1e5, 1e5),
    "speed_rad_s": (-1e5, 1e5),
}
MAX_MOTORS = 16
BOOL_FIELDS = ("charging", "precondition")
ALLOWED_FIELDS = frozenset(NUMERIC_FIELDS) | {"motors", *BOOL_FIELDS}
_NUMBER_TYPES = {int, float}


@dataclass
class SampleColumns:
    n: int
    dt_s: np.ndarray
    power_kw: np.ndarray  # NaN where absent
    current_a: np.ndarray
    wheel_speed_m_s: np.ndarray
    ambient_c: np.ndarray
    aux_kw: np.ndarray
    charging: np.ndarray  # bool
    precondition: np.ndarray  # bool
    has_motors: np.ndarray  # bool
    motor_sample: np.ndarray  # sample index of each motor entry
    motor_torque_nm: np.ndarray
    motor_speed_rad_s: np.ndarray
    measured_voltage_v: np.ndarray  # NaN where not measured
    measured_temperature_c: np.ndarray
    measured_soc: np.ndarray
    measured_seen: bool = False  # a sample named a measurement field (cheap pre-check)

    @property
    def measurement_count(self) -> int:
        """Measured values in the batch (0 without a look at the columns when none was sent)."""
        if not self.measured_seen:
            return 0
        return int(
            np.count_nonzero(~np.isnan(self.measured_voltage_v))
            + np.count_nonzero(~np.isnan(self.measured_temperature_c))
            + np.count_nonzero(~np.isnan(self.measured_soc))
        )


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, index: int | None, field: str | None, msg: str, type_: str) -> None:
        loc: list[str | int] = ["body", "samples"]
        if index is not None:
            loc.append(index)
        if field is not None:
            loc.append(field)
        self.items.append(error_item(loc, msg, type_))

    def raise_if_any(self) -> None:
        if self.items:
            raise ApiError(422, self.items)


def _is_number(v: Any) -> bool:
    return type(v) in _NUMBER_TYPES


def _column(samples: list[dict], name: str, errors: _Errors) -> tuple[np.ndarray, np.ndarray]:
    """The field as floats (NaN where absent or null) and where it was given."""
    values = [s.get(name) for s in samples]
    n = len(values)
    types = set(map(type, values))
    if not types <= {int, float, type(None)}:
        for i, v in enumerate(values):
            if v is not None and not _is_number(v):
                errors.add(i, name, "Input should be a valid number", "float_type")
        # Only the numbers go on to the range checks.
        numeric = [_is_number(v) for v in values]
        floats = [
            float(v) if ok else math.nan  # type: ignore[arg-type]
            for v, ok in zip(values, numeric, strict=True)
        ]
        return np.array(floats), np.array(numeric, dtype=bool)
    given = np.ones(n, dtype=bool)
    if type(None) in types:
        given = np.array([v is not None for v in values], dtype=bool)
        values = [math.nan if v is None else v for v in values]
    try:
        return np.array(values, dtype=float), given
    except OverflowError:
        errors.add(None, name, "number out of range", "float_parsing")
        return np.full(n, np.nan), np.zeros(n, dtype=bool)


def _check_range(
    col: np.ndarray,
    present: np.ndarray,
    name: str,
    bounds: tuple[float, float, bool],
    errors: _Errors,
) -> None:
    low, high, low_exclusive = bounds
    with np.errstate(invalid="ignore"):
        inside = (col > low if low_exclusive else col >= low) & (col <= high)
    if inside.all() or not (present & ~inside).any():
        return  # the common case: one pass, no error detail needed
    vals = np.where(present, col, low if not low_exclusive else high)
    bad_finite = present & ~np.isfinite(col)
    too_low = (vals <= low) if low_exclusive else (vals < low)
    bad_range = present & np.isfinite(col) & (too_low | (vals > high))
    for i in np.flatnonzero(bad_finite)[:5]:
        errors.add(int(i), name, "Input should be a finite number", "finite_number")
    op = ">" if low_exclusive else ">="
    for i in np.flatnonzero(bad_range)[:5]:
        errors.add(int(i), name, f"Input should be {op} {low:g} and <= {high:g}", "out_of_range")


SMALL_BATCH = 16  # at most this many samples take the plain-Python path (parse_small)
_NAN = math.nan
_MOTOR_BOUNDS = {name: (low, high, False) for name, (low, high) in MOTOR_FIELDS.items()}


@dataclass
class SmallSamples:
    """A small, valid batch as plain lists (NaN where absent): no numpy per field."""

    n: int
    dt_s: list[float]
    power_kw: list[float]
    current_a: list[float]
    wheel_speed_m_s: list[float]
    ambient_c: list[float]
    aux_kw: list[float]
    charging: list[bool]
    precondition: list[bool]
    motors: list[list[tuple[float, float]] | None]  # per sample, None where absent
    measured: list[list[float]]  # MEASURED_FIELDS, one list each
    measured_seen: bool = False


def _in_range(v: Any, bounds: tuple[float, float, bool]) -> bool:
    if type(v) not in _NUMBER_TYPES:
        return False
    low, high, low_exclusive = bounds
    return (low < v <= high) if low_exclusive else (low <= v <= high)  # False for NaN


def parse_small(samples: Any, max_samples: int) -> SmallSamples | None:
    """The samples as lists when there are at most SMALL_BATCH of them and all are valid;
    None otherwise, and `parse_samples` then finds and names every problem. Accepts exactly
    what `parse_samples` accepts, with the same values."""
    if type(samples) is not list or not 0 < len(samples) <= min(SMALL_BATCH, max_samples):
        return None
    n = len(samples)
    cols: dict[str, list[float]] = {name: [_NAN] * n for name in NUMERIC_FIELDS}
    flags = {name: [False] * n for name in BOOL_FIELDS}
    motors: list[list[tuple[float, float]] | None] = [None] * n
    measured_seen = False
    for i, sample in enumerate(samples):
        if type(sample) is not dict:
            return None
        inputs = 0
        for name, v in sample.items():
            bounds = NUMERIC_FIELDS.get(name)
            if bounds is not None:
                if v is None:
                    continue
                if not _in_range(v, bounds):
                    return None
                cols[name][i] = float(v)
                if name == "power_kw" or name == "current_a":
                    inputs += 1
                elif name in _MEASURED:
                    measured_seen = True
            elif name == "motors":
                if v is None:
                    continue
                if type(v) is not list or len(v) > MAX_MOTORS:
                    return None
                entries = []
                for m in v:
                    if type(m) is not dict or m.keys() != MOTOR_FIELDS.keys():
                        return None
                    t, w = m["torque_nm"], m["speed_rad_s"]
                    if not (
                        _in_range(t, _MOTOR_BOUNDS["torque_nm"])
                        and _in_range(w, _MOTOR_BOUNDS["speed_rad_s"])
                    ):
                        return None
                    entries.append((float(t), float(w)))
                motors[i] = entries
                inputs += 1
            elif name in flags:
                if v is None:
                    continue
                if type(v) is not bool:
                    return None
                flags[name][i] = v
            else:
                return None  # unknown field
        if inputs != 1 or cols["dt_s"][i] != cols["dt_s"][i]:
            return None  # no or several drive inputs, or dt_s missing
        if cols["aux_kw"][i] == cols["aux_kw"][i] and cols["current_a"][i] == cols["current_a"][i]:
            return None
    return SmallSamples(
        n=n,
        dt_s=cols["dt_s"],
        power_kw=cols["power_kw"],
        current_a=cols["current_a"],
        wheel_speed_m_s=cols["wheel_speed_m_s"],
        ambient_c=cols["ambient_c"],
        aux_kw=cols["aux_kw"],
        charging=flags["charging"],
        precondition=flags["precondition"],
        motors=motors,
        measured=[cols[name] for name in MEASURED_FIELDS],
        measured_seen=measured_seen,
    )


def columns_from_small(ss: SmallSamples) -> SampleColumns:
    """A small batch as columns (one array for the numeric fields)."""
    rows = np.array([ss.dt_s, ss.power_kw, ss.current_a, ss.wheel_speed_m_s, ss.ambient_c,
                     ss.aux_kw, *ss.measured])  # fmt: skip
    sample_idx: list[int] = []
    torque: list[float] = []
    speed: list[float] = []
    for i, motors in enumerate(ss.motors):
        if motors is not None:
            for t, w in motors:
                sample_idx.append(i)
                torque.append(t)
                speed.append(w)
    return SampleColumns(
        n=ss.n, dt_s=rows[0], power_kw=rows[1], current_a=rows[2], wheel_speed_m_s=rows[3],
        ambient_c=rows[4], aux_kw=rows[5], charging=np.array(ss.charging, dtype=bool),
        precondition=np.array(ss.precondition, dtype=bool),
        has_motors=np.array([m is not None for m in ss.motors], dtype=bool),
        motor_sample=np.array(sample_idx, dtype=np.int64), motor_torque_nm=np.array(torque),
        motor_speed_rad_s=np.array(speed), measured_voltage_v=rows[6],
        measured_temperature_c=rows[7], measured_soc=rows[8], measured_seen=ss.measured_seen,
    )  # fmt: skip


def parse_samples(samples: Any, max_samples: int) -> SampleColumns:
    """Validate the samples list and return it as columns, or raise ApiError(422/413)."""
    errors = _Errors()
    if not isinstance(samples, list):
        errors.add(None, None, "Field required: a list of samples", "missing")
        errors.raise_if_any()
    n = len(samples)
    if n == 0:
        errors.add(None, None, "At least one sample is required", "too_short")
        errors.raise_if_any()
    if n > max_samples:
        raise ApiError(
            413,
            [
                error_item(
                    ["body", "samples"],
                    f"{n} samples exceed max_samples_per_request ({max_samples})",
                    "too_many_samples",
                )
            ],
        )
    if set(map(type, samples)) != {dict}:
        not_dicts = [i for i, s in enumerate(samples) if type(s) is not dict]
        for i in not_dicts[:5]:
            errors.add(i, None, "Each sample must be a JSON object", "dict_type")
        errors.raise_if_any()
    # Which fields occur at all (one C-level pass); absent fields need no column work.
    seen: set[str] = set().union(*map(dict.keys, samples))
    if not seen <= ALLOWED_FIELDS:
        unknown = [i for i, s in enumerate(samples) if not s.keys() <= ALLOWED_FIELDS]
        for i in unknown[:5]:
            extra = sorted(set(samples[i]) - ALLOWED_FIELDS)
            errors.add(i, extra[0], "Extra inputs are not permitted", "extra_forbidden")

    nan_column = np.full(n, np.nan)
    cols: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for name, bounds in NUMERIC_FIELDS.items():
        if name not in seen:
            cols[name], present[name] = nan_column, np.zeros(n, dtype=bool)
            continue
        col, given = _column(samples, name, errors)
        # Literal nulls count as absent; NaN or inf sent as numbers (non-standard JSON) are
        # errors.
        _check_range(col, given, name, bounds, errors)
        cols[name], present[name] = col, given
    if not present["dt_s"].all():
        missing = [i for i, s in enumerate(samples) if s.get("dt_s") is None]
        for i in missing[:5]:
            errors.add(i, "dt_s", "Field required", "missing")

    flags = {}
    for name in BOOL_FIELDS:
        flags[name] = np.zeros(n, dtype=bool)
        if name in seen:
            raw = [s.get(name) for s in samples]
            if not set(map(type, raw)) <= {bool, type(None)}:
                for i, v in enumerate(raw):
                    if v is not None and type(v) is not bool:
                        errors.add(i, name, "Input should be a valid boolean", "bool_type")
            flags[name] = np.array([v is True for v in raw], dtype=bool)

    has_motors = np.zeros(n, dtype=bool)
    motor_sample, torque, speed = np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)
    if "motors" in seen:
        motors_raw = [s.get("motors") for s in samples]
        has_motors = np.array([m is not None for m in motors_raw], dtype=bool)
        motor_sample, torque, speed = _parse_motors(motors_raw, errors)

    n_inputs = has_motors.astype(np.int8) + present["power_kw"] + present["current_a"]
    if not (n_inputs == 1).all():
        for i in np.flatnonzero(n_inputs == 0)[:5]:
            errors.add(
                int(i),
                None,
                "Exactly one drive input is required: motors, power_kw or current_a (none given)",
                "drive_input",
            )
        for i in np.flatnonzero(n_inputs > 1)[:5]:
            errors.add(
                int(i),
                None,
                "Exactly one drive input is allowed: motors, power_kw or current_a (several given)",
                "drive_input",
            )
    if "aux_kw" in seen and "current_a" in seen:
        for i in np.flatnonzero(present["aux_kw"] & present["current_a"])[:5]:
            errors.add(
                int(i),
                "aux_kw",
                "aux_kw cannot be combined with current_a (the pack "
                "current already includes every load)",
                "drive_input",
            )
    errors.raise_if_any()

    return SampleColumns(
        n=n,
        dt_s=cols["dt_s"],
        power_kw=cols["power_kw"],
        current_a=cols["current_a"],
        wheel_speed_m_s=cols["wheel_speed_m_s"],
        ambient_c=cols["ambient_c"],
        aux_kw=cols["aux_kw"],
        charging=flags["charging"],
        precondition=flags["precondition"],
        has_motors=has_motors,
        motor_sample=motor_sample,
        motor_torque_nm=torque,
        motor_speed_rad_s=speed,
        measured_voltage_v=cols["measured_voltage_v"],
        measured_temperature_c=cols["measured_temperature_c"],
        measured_soc=cols["measured_soc"],
        measured_seen=not seen.isdisjoint(MEASURED_FIELDS),
    )


def _parse_motors(
    motors_raw: list[Any], errors: _Errors
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sample_idx: list[int] = []
    torque: list[Any] = []
    speed: list[Any] = []
    for i, motors in enumerate(motors_raw):
        if motors is None:
            continue
        if type(motors) is not list or len(motors) > MAX_MOTORS:
            errors.add(
                i,
                "motors",
                f"Input should be a list of at most {MAX_MOTORS} motors "
                "({torque_nm, speed_rad_s})",
                "list_type",
            )
            continue
        for j, m in enumerate(motors):
            if type(m) is not dict or m.keys() != MOTOR_FIELDS.keys():
                errors.items.append(
                    error_item(
                        ["body", "samples", i, "motors", j],
                        "Each motor needs exactly torque_nm and speed_rad_s",
                        "motor_fields",
                    )
                )
                continue
            t, w = m["torque_nm"], m["speed_rad_s"]
            for name, v in (("torque_nm", t), ("speed_rad_s", w)):
                low, high = MOTOR_FIELDS[name]
                if not _is_number(v):
                    errors.items.append(
                        error_item(
                            ["body", "samples", i, "motors", j, name],
                            "Input should be a valid number",
                            "float_type",
                        )
                    )
                elif not math.isfinite(v):
                    errors.items.append(
                        error_item(
                            ["body", "samples", i, "motors", j, name],
                            "Input should be a finite number",
                            "finite_number",
                        )
                    )
                elif not low <= v <= high:
                    errors.items.append(
                        error_item(
                            ["body", "samples", i, "motors", j, name],
                            f"Input should be >= {low:g} and <= {high:g}",
                            "out_of_range",
                        )
                    )
            sample_idx.append(i)
            torque.append(t)
            speed.append(w)
    if errors.items:
        return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)
    return (
        np.array(sample_idx, dtype=np.int64),
        np.array(torque, dtype=float),
        np.array(speed, dtype=float),
    )
