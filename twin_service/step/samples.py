"""Column-wise validation of /step samples: one numpy array per field, no object per sample.

Samples come as rows (a list of sample objects) or as columns (one object of equal-length
arrays, SPEC "Batch formats"). The rules are those of `schemas.Sample` either way; errors name
the field and the sample index: `["body", "samples", i, field]` for rows,
`["body", "samples", field, i]` for columns.
"""

from __future__ import annotations

import itertools
import math
import operator
import struct
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
    """Error items at `prefix` + (index, field) for rows, + (field, index) for columns."""

    def __init__(
        self,
        prefix: tuple[str | int, ...] = ("body", "samples"),
        columnar: bool = False,
        items: list[dict[str, Any]] | None = None,
    ) -> None:
        self.items: list[dict[str, Any]] = [] if items is None else items
        self.prefix = prefix
        self.columnar = columnar

    def add(self, index: int | None, field: str | None, msg: str, type_: str) -> None:
        loc: list[str | int] = list(self.prefix)
        parts = (field, index) if self.columnar else (index, field)
        loc += [p for p in parts if p is not None]
        self.items.append(error_item(loc, msg, type_))

    def under(self, *path: str | int) -> _Errors:
        """A reporter at `path` below this one's prefix, adding to the same items."""
        return _Errors((*self.prefix, *path), self.columnar, self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ApiError(422, self.items)


def _is_number(v: Any) -> bool:
    return type(v) in _NUMBER_TYPES


def _column(values: list[Any], name: str, errors: _Errors) -> tuple[np.ndarray, np.ndarray]:
    """A field's values as floats (NaN where absent or null) and where they were given."""
    n = len(values)
    types = set(map(type, values))
    if not types <= {int, float, type(None)}:
        for i, v in enumerate(values):
            if v is not None and not _is_number(v):
                errors.add(i, name, "Input should be a valid number", "float_type")
        # Only the numbers go on to the range checks.
        numeric = [_is_number(v) for v in values]
        floats = [float(v) if ok else math.nan for v, ok in zip(values, numeric, strict=True)]
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


def _flag(values: list[Any], name: str, errors: _Errors) -> np.ndarray:
    """A boolean field's values (False where absent or null)."""
    if not set(map(type, values)) <= {bool, type(None)}:
        for i, v in enumerate(values):
            if v is not None and type(v) is not bool:
                errors.add(i, name, "Input should be a valid boolean", "bool_type")
    return np.array([v is True for v in values], dtype=bool)


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


def _small_column(values: Any, n: int) -> list[Any] | None:
    if type(values) is list:
        return values if len(values) == n else None
    if type(values) is bytes and len(values) == 8 * n:
        return [None if v != v else v for v in struct.unpack(f"<{n}d", values)]
    return None


def rows_of_small_columns(samples: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A columnar batch of at most SMALL_BATCH samples as rows (for parse_small), or None when
    it is larger or not plainly shaped (parse_columnar then reads it and names any problem).
    Float64-bytes columns become numbers, their NaN none."""
    n = _length(samples.get("dt_s")) or 0
    if not 0 < n <= SMALL_BATCH:
        return None
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, values in samples.items():
        if values is None:
            continue
        if name == "motors":
            if type(values) is not list or not values:
                return None
            motors = []
            for m in values:
                if type(m) is not dict or m.keys() != MOTOR_FIELDS.keys():
                    return None
                t, w = _small_column(m["torque_nm"], n), _small_column(m["speed_rad_s"], n)
                if t is None or w is None:
                    return None
                motors.append((t, w))
            for i, row in enumerate(rows):
                entries = [(t[i], w[i]) for t, w in motors]
                if all(t is None and w is None for t, w in entries):
                    continue
                row["motors"] = [{"torque_nm": t, "speed_rad_s": w} for t, w in entries]
            continue
        column = _small_column(values, n)
        if column is None:
            return None
        for row, v in zip(rows, column, strict=True):
            if v is not None:
                row[name] = v
    return rows


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


def _check_count(n: int, max_samples: int, errors: _Errors) -> None:
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


def parse_samples(samples: Any, max_samples: int) -> SampleColumns:
    """Validate the samples, rows or columns, and return them as columns, or raise
    ApiError(422/413)."""
    if type(samples) is dict:
        return parse_columnar(samples, max_samples)
    errors = _Errors()
    if not isinstance(samples, list):
        errors.add(
            None, None, "Field required: a list of samples or an object of arrays", "missing"
        )
        errors.raise_if_any()
    n = len(samples)
    _check_count(n, max_samples, errors)
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
        col, given = _column(_field(samples, name), name, errors)
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
            flags[name] = _flag(_field(samples, name), name, errors)

    has_motors = np.zeros(n, dtype=bool)
    motor_sample, torque, speed = np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)
    if "motors" in seen:
        motors_raw = _field(samples, "motors")
        has_motors = _given(motors_raw)
        motor_sample, torque, speed = _parse_motors(motors_raw, errors)

    return _finish(n, cols, present, flags, has_motors, motor_sample, torque, speed, seen, errors)


def _finish(
    n: int,
    cols: dict[str, np.ndarray],
    present: dict[str, np.ndarray],
    flags: dict[str, np.ndarray],
    has_motors: np.ndarray,
    motor_sample: np.ndarray,
    torque: np.ndarray,
    speed: np.ndarray,
    seen: set[str],
    errors: _Errors,
) -> SampleColumns:
    """The checks across fields (one drive input per sample, aux_kw not with current_a), then
    the columns; raises the errors found so far and these."""
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


_TORQUE = operator.itemgetter("torque_nm")
_SPEED = operator.itemgetter("speed_rad_s")
_MOTOR_KEYS = len(MOTOR_FIELDS)


def _field(samples: list[dict[str, Any]], name: str) -> list[Any]:
    """Every sample's value of `name` (None where absent), in one C-level pass."""
    return list(map(dict.get, samples, itertools.repeat(name)))


def _given(values: list[Any]) -> np.ndarray:
    """Where `values` are not None."""
    if None not in values:
        return np.ones(len(values), dtype=bool)
    return np.fromiter(map(operator.is_not, values, itertools.repeat(None)), dtype=bool)


def _parse_motors(
    motors_raw: list[Any], errors: _Errors
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample index, torque, speed) of every motor entry, sample by sample. Valid input takes
    C-level passes over the entries only; anything else goes to _motors_checked, which names
    each problem."""
    lists = [m for m in motors_raw if m is not None] if None in motors_raw else motors_raw
    if set(map(type, lists)) <= {list}:
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = list(itertools.chain.from_iterable(lists))
        if (
            (counts.size == 0 or counts.max() <= MAX_MOTORS)
            and set(map(type, flat)) <= {dict}
            and sum(map(len, flat)) == _MOTOR_KEYS * len(flat)
        ):
            try:
                torque = list(map(_TORQUE, flat))
                speed = list(map(_SPEED, flat))
            except KeyError:
                pass
            else:
                if set(map(type, torque)) | set(map(type, speed)) <= _NUMBER_TYPES:
                    t = np.array(torque, dtype=float)
                    w = np.array(speed, dtype=float)
                    lo_t, hi_t = MOTOR_FIELDS["torque_nm"]
                    lo_w, hi_w = MOTOR_FIELDS["speed_rad_s"]
                    with np.errstate(invalid="ignore"):
                        ok = bool(
                            ((t >= lo_t) & (t <= hi_t)).all() and ((w >= lo_w) & (w <= hi_w)).all()
                        )
                    if ok:
                        given = np.flatnonzero(_given(motors_raw))
                        return np.repeat(given, counts), t, w
    return _motors_checked(motors_raw, errors)


def _motors_checked(
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


def _length(value: Any) -> int | None:
    """Values in a column: a list's length, or a bin's float64 count (None: not a column)."""
    if type(value) is list or type(value) is np.ndarray:
        return len(value)
    if type(value) is bytes and len(value) % 8 == 0:
        return len(value) // 8
    return None


# A column as sent: a list, a msgpack bin of float64, or an array json_reader has read
Column = list[Any] | bytes | np.ndarray


def _array(value: Any, n: int, errors: _Errors, field: str) -> Column | None:
    """A column when it holds n values; else an error at the column."""
    length = _length(value)
    if length is None:
        msg = f"Input should be an array of {n} values (or {8 * n} bytes of float64)"
        errors.add(None, field, msg, "list_type")
        return None
    if length != n:
        msg = f"Input should have {n} values (as many as dt_s), not {length}"
        errors.add(None, field, msg, "length_mismatch")
        return None
    return value


def _numbers(values: Column, name: str, errors: _Errors) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column as floats and where values were given: a list (null: none), or bytes
    of little-endian float64 or a float array already read (NaN: none)."""
    if type(values) is np.ndarray:
        return values, ~np.isnan(values)
    if type(values) is bytes:
        col = np.frombuffer(values, dtype="<f8").astype(np.float64)
        return col, ~np.isnan(col)
    return _column(values, name, errors)  # type: ignore[arg-type]


def parse_columnar(samples: dict[str, Any], max_samples: int) -> SampleColumns:
    """Columns as SPEC "Batch formats" has them: `{"dt_s": [...], "power_kw": [...], ...}`,
    `motors` a list of `{"torque_nm": [...], "speed_rad_s": [...]}`, null where a sample has
    no value; the same rules and the same columns as the row form of the same samples. A
    numeric column may also be bytes (a msgpack bin) of little-endian float64, NaN where a
    sample has no value: msgpack then carries it without a value per number."""
    errors = _Errors(columnar=True)
    fields = {k: v for k, v in samples.items() if v is not None}
    seen = set(fields)
    for extra in sorted(seen - ALLOWED_FIELDS, key=str):
        errors.add(None, extra, "Extra inputs are not permitted", "extra_forbidden")
    n = _length(fields.get("dt_s"))
    if n is None:
        errors.add(None, "dt_s", "Field required: an array of the samples' dt_s", "missing")
        raise ApiError(422, errors.items)
    _check_count(n, max_samples, errors)
    arrays = {}
    for name in seen & ALLOWED_FIELDS:
        if name != "motors":
            arrays[name] = _array(fields[name], n, errors, name)
    motors_raw = fields.get("motors")
    if motors_raw is not None and (
        type(motors_raw) is not list or not 0 < len(motors_raw) <= MAX_MOTORS
    ):
        msg = (
            f"Input should be a list of 1 to {MAX_MOTORS} motors "
            "({torque_nm: [...], speed_rad_s: [...]})"
        )
        errors.add(None, "motors", msg, "list_type")
        motors_raw = None
    motor_cols: list[dict[str, Column | None]] = []
    for j, m in enumerate(motors_raw or []):
        sub = errors.under("motors", j)
        if type(m) is not dict or m.keys() != MOTOR_FIELDS.keys():
            sub.add(
                None, None, "Each motor needs exactly torque_nm and speed_rad_s", "motor_fields"
            )
            continue
        motor_cols.append({name: _array(m[name], n, sub, name) for name in MOTOR_FIELDS})
    errors.raise_if_any()  # the structure is sound: every column holds n values

    nan_column = np.full(n, np.nan)
    cols: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for name, bounds in NUMERIC_FIELDS.items():
        values = arrays.get(name)
        if values is None:
            cols[name], present[name] = nan_column, np.zeros(n, dtype=bool)
            continue
        col, given = _numbers(values, name, errors)
        _check_range(col, given, name, bounds, errors)
        cols[name], present[name] = col, given
    if not present["dt_s"].all():
        for i in np.flatnonzero(~present["dt_s"])[:5]:
            errors.add(int(i), "dt_s", "Field required", "missing")
    flags = {}
    for name in BOOL_FIELDS:
        values = arrays.get(name)
        if values is None:
            flags[name] = np.zeros(n, dtype=bool)
        elif type(values) is np.ndarray:  # booleans already read (json_reader)
            flags[name] = values
        elif type(values) is bytes:
            errors.add(None, name, "Input should be an array of booleans", "list_type")
            flags[name] = np.zeros(n, dtype=bool)
        else:
            flags[name] = _flag(values, name, errors)  # type: ignore[arg-type]

    has_motors = np.zeros(n, dtype=bool)
    motor_sample, torque, speed = np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)
    if motor_cols:
        parsed = []
        for j, m in enumerate(motor_cols):
            sub = errors.under("motors", j)
            for name, (low, high) in MOTOR_FIELDS.items():
                col, given = _numbers(m[name], name, sub)  # type: ignore[arg-type]
                _check_range(col, given, name, (low, high, False), sub)
                parsed.append((j, name, col, given))
        given_all = np.stack([g for _, _, _, g in parsed])
        has_motors = np.asarray(given_all.all(axis=0))
        partial = given_all.any(axis=0) & ~has_motors
        for i in np.flatnonzero(partial)[:5]:
            j, name = next((j, name) for j, name, _, g in parsed if not g[i])
            sub = errors.under("motors", j)
            msg = "Field required: a sample with motors has every motor's torque_nm and speed_rad_s"
            sub.add(int(i), name, msg, "missing")
        k = len(motor_cols)
        rows = np.flatnonzero(has_motors)
        motor_sample = np.repeat(rows, k)
        torque = np.stack([c for _, name, c, _ in parsed if name == "torque_nm"])[:, rows].T.ravel()
        speed = np.stack([c for _, name, c, _ in parsed if name == "speed_rad_s"])[
            :, rows
        ].T.ravel()
    return _finish(n, cols, present, flags, has_motors, motor_sample, torque, speed, seen, errors)
