"""Battery Data Format (BDF) CSV → samples with measurements.

The Battery Data Alliance's BDF (https://github.com/battery-data-alliance/battery-data-format)
is a fixed table schema for cycler time series: the header holds each quantity's preferred
label (``Test Time / s``, ``Voltage / V``, ``Current / A``, ...) or its machine-readable name
(``test_time_second``, ``voltage_volt``, ``current_ampere``, ...), units are fixed, and the
current is positive while CHARGING. Both header forms are read; the twin's ``current_a`` is
discharge-positive, so the current is negated.

Row k becomes a sample covering ``(t[k-1], t[k]]`` with row k's current and, as measurements,
row k's voltage (``measured_voltage_v``) and temperature T1 (``measured_temperature_c``); its
ambient temperature, when logged, becomes ``ambient_c``. The first row only sets the start
(the same convention as a ``time_s`` column in replay logs). Rows whose Test Time does not
increase are skipped and counted. A gap longer than ``max_gap_s`` (logging stopped) is
integrated at zero current, as replay integrates a gap in BeamNG readings with the motors
idle: only the log's usual interval before the row takes the row's current and measurements.
Cyclers log sparsely in rests and long constant-current steps, so the default gap for BDF
logs (:data:`DEFAULT_BDF_MAX_GAP_S`) is far longer than the one for BeamNG polls.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.samples import Sample

logger = logging.getLogger(__name__)

#: Gaps between BDF rows longer than this are integrated at zero current.
DEFAULT_BDF_MAX_GAP_S = 60.0

#: Our field → accepted headers (preferred label, machine-readable name, older labels).
COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("Test Time / s", "test_time_second"),
    "voltage": ("Voltage / V", "voltage_volt"),
    "current": ("Current / A", "current_ampere"),
    "temperature": (
        "Surface Temperature T1 / degC",
        "Temperature T1 / degC",
        "temperature_t1_celsius",
    ),
    "ambient": ("Ambient Temperature / degC", "ambient_temperature_celsius"),
    "unix_time": ("Unix Time / s", "unix_time_second"),
    "step": ("Step Count / 1", "step_count"),
    "cycle": ("Cycle Count / 1", "cycle_count"),
}
REQUIRED = ("time", "voltage", "current")
#: Columns copied to the sample's extras (the local sample log), under these names.
_EXTRAS = {"time": "bdf_test_time_s", "unix_time": "bdf_unix_time_s", "step": "bdf_step_count",
           "cycle": "bdf_cycle_count"}  # fmt: skip


def _key(header: str) -> str:
    """Headers compared without case and with any run of spaces as one."""
    return re.sub(r"\s+", " ", header.strip()).lower()


_LOOKUP = {_key(name): field for field, names in COLUMNS.items() for name in names}


def bdf_columns(header: Sequence[str]) -> dict[str, str]:
    """Our field → the header as written in the file, for the BDF columns present."""
    found: dict[str, str] = {}
    for name in header:
        field = _LOOKUP.get(_key(name or ""))
        if field is not None and field not in found:
            found[field] = name
    return found


def is_bdf_header(header: Sequence[str]) -> bool:
    """True when the header has BDF's required Test Time, Voltage and Current columns."""
    return all(field in bdf_columns(header) for field in REQUIRED)


def is_bdf_file(path: Path) -> bool:
    """True for a CSV file whose first line is a BDF header."""
    try:
        with open(path, newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return is_bdf_header(header)


def _number(row: Mapping[str, Any], column: str | None, path: Path, line: int) -> float | None:
    """The cell as a float; None when the column is absent, the cell empty or not finite. Text
    in a required column is an error; in an optional one it counts as not logged."""
    if column is None:
        return None
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        if _LOOKUP[_key(column)] in REQUIRED:
            raise ValueError(f"{path}: line {line}: {column!r} is not a number: {text!r}") from None
        return None
    return value if math.isfinite(value) else None


def bdf_samples(path: Path, *, max_gap_s: float | None = None) -> Iterator[Sample]:
    """Samples of a BDF CSV file (see the module docstring)."""
    gap_limit_s = DEFAULT_BDF_MAX_GAP_S if max_gap_s is None else max_gap_s
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = bdf_columns(reader.fieldnames or [])
        missing = [COLUMNS[f][0] for f in REQUIRED if f not in columns]
        if missing:
            raise ValueError(f"{path}: not a BDF file: no {', '.join(missing)} column")
        last_time_s: float | None = None
        usual_dt_s: float | None = None
        skipped = gaps = 0
        for line, row in enumerate(reader, start=2):
            values = {field: _number(row, columns.get(field), path, line) for field in COLUMNS}
            time_s, current = values["time"], values["current"]
            if time_s is None:
                skipped += 1
                continue
            if last_time_s is None:
                last_time_s = time_s  # the first row sets the start
                continue
            dt_s = time_s - last_time_s
            if dt_s <= 0:
                skipped += 1
                continue
            last_time_s = time_s
            if current is None:
                raise ValueError(f"{path}: line {line}: no {columns['current']!r}")
            ambient = values["ambient"]
            if dt_s > gap_limit_s:
                gaps += 1
                hold_s = min(usual_dt_s or gap_limit_s, gap_limit_s)
                yield Sample(dt_s=dt_s - hold_s, current_a=0.0, ambient_c=ambient,
                             extras={"bdf_gap_s": dt_s})  # fmt: skip
                dt_s = hold_s
            else:
                usual_dt_s = dt_s
            extras = {name: values[f] for f, name in _EXTRAS.items() if values[f] is not None}
            yield Sample(
                dt_s=dt_s,
                current_a=-current + 0.0,  # BDF: charge > 0; the twin: discharge > 0 (no -0.0)
                ambient_c=ambient,
                measured_voltage_v=values["voltage"],
                measured_temperature_c=values["temperature"],
                extras=extras,
            )
    if skipped:
        logger.warning(
            "%s: %d rows without an increasing %s skipped", path.name, skipped, columns["time"]
        )
    if gaps:
        logger.warning(
            "%s: %d gaps longer than %g s integrated at zero current (--max-gap-s)",
            path.name,
            gaps,
            gap_limit_s,
        )
