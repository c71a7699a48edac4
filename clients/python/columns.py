"""Samples as columns (SPEC "Batch formats"): one array per field instead of one object per
sample, the form the service parses fastest; in msgpack, numeric arrays as float64 bytes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MOTOR_KEYS = ("torque_nm", "speed_rad_s")
_MOTOR_SET = frozenset(MOTOR_KEYS)


def to_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The samples as one object of equal-length arrays (null where a sample has no value),
    or None when columns cannot say the same: samples with different numbers of motors, an
    empty motors list, or entries that are not sample objects (the rows then go as they are,
    and the service names the problem)."""
    if not rows or not all(isinstance(r, Mapping) for r in rows):
        return None
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    columns: dict[str, Any] = {k: [r.get(k) for r in rows] for k in keys if k != "motors"}
    if "motors" in keys:
        motors = [r.get("motors") for r in rows]
        counts = {len(m) for m in motors if isinstance(m, list)}
        if (
            len(counts) != 1
            or 0 in counts
            or any(m is not None and not isinstance(m, list) for m in motors)
        ):
            return None
        (k,) = counts
        for m in motors:
            for entry in m or ():
                if not isinstance(entry, Mapping) or set(entry) != _MOTOR_SET:
                    return None
        columns["motors"] = [
            {key: [None if m is None else m[j][key] for m in motors] for key in MOTOR_KEYS}
            for j in range(k)
        ]
    return columns


_NUMBER_OR_NULL = frozenset({int, float, type(None)})


def _packed(values: Any) -> Any:
    """A list of numbers and nulls as bytes of little-endian float64 (NaN for null); anything
    else (booleans, only nulls, strings, values beyond float64) as it is."""
    if type(values) is not list:
        return values
    types = set(map(type, values))
    if not types <= _NUMBER_OR_NULL or types <= {type(None)}:  # all null: a boolean column too
        return values
    try:
        return np.array(values, dtype="<f8").tobytes()
    except OverflowError:
        return values


def binary_columns(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Columns with every numeric array as float64 bytes (a msgpack bin): the service reads
    them without a msgpack value per number. Boolean columns stay arrays."""
    out: dict[str, Any] = {k: _packed(v) for k, v in columns.items() if k != "motors"}
    if "motors" in columns:
        motors = columns["motors"]
        out["motors"] = (
            [{k: _packed(v) for k, v in m.items()} if isinstance(m, Mapping) else m for m in motors]
            if isinstance(motors, list)
            else motors
        )
    return out
