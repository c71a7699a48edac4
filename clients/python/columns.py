"""Samples as columns (SPEC "Batch formats"): one array per field instead of one object per
sample, the form the service parses fastest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
