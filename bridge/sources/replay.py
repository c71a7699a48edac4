"""Replay source: recorded BeamNG JSON, CSV, JSONL, BDF, MDF4 and CAN logs → samples.

- ``*.json``: a PowertrainSensor poll (int or string keys, or ``[]``), an Electrics poll
  (held for the powertrain file of the same recording: ``<model>_electrics_<ts>.json`` goes
  with ``<model>_powertrain_<ts>.json``; a lone Electrics file applies to every powertrain
  file), or a ``/step`` request body (``{"samples": [...]}``) or a list of samples.
- ``*.csv``: one row per sample, columns named like ``/step`` sample fields (``dt_s`` or a
  ``time_s`` column, ``power_kw`` / ``current_a`` / motors as ``torque_nm``+``speed_rad_s``,
  ``motor<i>_torque_nm``+``motor<i>_speed_rad_s`` or a JSON ``motors`` column, ...).
- ``*.jsonl`` / ``*.ndjson``: one sample object per line, same names.
- A Battery Data Format file (``*.csv``, ``*.bdf.csv``, ``*.bdf`` whose header has BDF's
  ``Test Time / s``, ``Voltage / V`` and ``Current / A``): see :mod:`bridge.sources.bdf`
  (charge-positive current negated, voltage and temperature T1 as measurements).
- Vehicle logs, ASAM MDF4 (``*.mf4``, ``*.mdf``) and CAN traces (``*.blf``, ``*.asc``, with
  a DBC), through a YAML signal map (``signal_map``): see :mod:`bridge.sources.vehicle_log`
  (resampled onto the map's grid; measurements are the latest value, no look-ahead).

Measurements (not drive inputs; a row still needs one of motors / power_kw / current_a, and
``current_a`` is the pack current, discharge > 0) in CSV, JSONL and lists of samples:

============================  ==========================================================
field                         also read from
============================  ==========================================================
``measured_voltage_v`` (V)    ``voltage_v``, ``pack_voltage_v``
``measured_temperature_c``    ``temperature_c``, ``pack_temperature_c``
``measured_soc`` (0..1)       ``soc``, ``bms_soc``
============================  ==========================================================

The field's own name wins over an alias in the same row (the alias then only goes to the
sample log). An SOC column whose largest value exceeds 1.5 is read as percent (0..100) and
divided by 100; a log line says so.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.samples import WIRE_FIELDS, Sample
from bridge.sources.bdf import bdf_samples, is_bdf_file
from bridge.sources.powertrain import (
    DEFAULT_MAX_GAP_S,
    ReadingIntegrator,
    is_electrics,
    is_powertrain_poll,
    normalize_poll,
)

if TYPE_CHECKING:
    from bridge.sources.signal_map import SignalMap

logger = logging.getLogger(__name__)

#: Vehicle logs (bridge/sources/vehicle_log.py), read only through a signal map.
VEHICLE_LOG_SUFFIXES = (".mf4", ".mdf", ".blf", ".asc")

_MOTOR_COLUMN = re.compile(r"^motors?[._]?(\d+)[._](torque_nm|speed_rad_s)$")

#: Common names of the measurement fields in logs → the sample field (see the docstring).
MEASUREMENT_ALIASES = {
    "voltage_v": "measured_voltage_v",
    "pack_voltage_v": "measured_voltage_v",
    "temperature_c": "measured_temperature_c",
    "pack_temperature_c": "measured_temperature_c",
    "soc": "measured_soc",
    "bms_soc": "measured_soc",
}
#: An SOC column with a larger value than this is in percent.
SOC_PERCENT_ABOVE = 1.5
_SOC_COLUMNS = ("measured_soc", *(a for a, f in MEASUREMENT_ALIASES.items() if f == "measured_soc"))


def recording_key(path: Path) -> str:
    """``Model3_2024_powertrain_20250911_123812`` and its electrics file share a key."""
    return re.sub(r"_(powertrain|electrics|battery_analysis)_", "_", path.stem)


#: ``<model>_<kind>_<YYYYMMDD>[_<HHMMSS>]``: the explorer's (and the recordings') file names.
_KNOWN_KIND = re.compile(r"_(?:powertrain|electrics|battery_analysis)_\d{8}(?:_\d{6})?")
_ANY_KIND = re.compile(r"_[A-Za-z]+(?:_[A-Za-z]+)*_\d{8}(?:_\d{6})?")
#: Fields of a JSON log's top level that name the vehicle (first string wins).
_VEHICLE_FIELDS = ("vehicle", "vehicle_model", "model")


def recording_vehicles(paths: Sequence[Path]) -> Iterator[tuple[str, str]]:
    """Vehicle names the recordings give, in order: ``(name, where it comes from)``.

    Per file, a string ``vehicle`` / ``vehicle_model`` / ``model`` at the top of a JSON
    object, then the file name's prefix before its first ``_<kind>_<date>``
    (``Model3_2024_powertrain_20250911_123812.json`` → ``Model3_2024``).
    """
    for path in map(Path, paths):
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = None  # reported by the replay itself
            if isinstance(data, Mapping):
                for key in _VEHICLE_FIELDS:
                    value = data.get(key)
                    if isinstance(value, str) and value.strip():
                        yield value.strip(), f"the {key!r} field of {path.name}"
                        break
        match = _KNOWN_KIND.search(path.stem) or _ANY_KIND.search(path.stem)
        if match and match.start() > 0:
            yield path.stem[: match.start()], f"the file name {path.name}"


def replay_samples(
    paths: Sequence[Path],
    *,
    motors: Sequence[str] | None = None,
    ambient_c: float | None = None,
    max_gap_s: float | None = None,
    start: int = 0,
    signal_map: Path | SignalMap | None = None,
    dbc: Path | None = None,
) -> Iterator[Sample]:
    """Samples of every file in order (electrics files only provide held values).

    A sample's ``position`` is ``{"index": n}``: n samples of the replay are done with it;
    ``start`` skips that many (they are still read: a powertrain poll is integrated in order).
    ``max_gap_s`` (None: each format's default, 1 s between BeamNG readings, 60 s between
    BDF rows, 5 s in a vehicle log's drive input) is the longest gap integrated as it was
    logged; longer ones count as idle. ``signal_map`` (a YAML file or a loaded map) is needed
    by MDF4 and CAN logs; ``dbc`` overrides the map's DBC.
    """
    vehicle_map = _signal_map(signal_map)
    if vehicle_map is not None and not any(_is_vehicle_log(Path(p)) for p in paths):
        suffixes = ", ".join(VEHICLE_LOG_SUFFIXES)
        logger.warning("--signal-map is only read for MDF4 and CAN logs (%s)", suffixes)
    loaded = [(Path(p), _load(Path(p), max_gap_s, vehicle_map, dbc)) for p in paths]
    electrics = {recording_key(p): d for p, (kind, d) in loaded if kind == "electrics"}
    lone_electrics = next(iter(electrics.values())) if len(electrics) == 1 else None
    produced = 0
    for path, (kind, data) in loaded:
        if kind == "electrics":
            continue
        if kind == "powertrain":
            integrator = ReadingIntegrator(
                motors=motors,
                ambient_c=ambient_c,
                max_gap_s=DEFAULT_MAX_GAP_S if max_gap_s is None else max_gap_s,
            )
            integrator.update_electrics(electrics.get(recording_key(path), lone_electrics))
            readings = normalize_poll(data)
            if not readings:
                logger.warning("%s: empty powertrain poll, nothing to replay", path)
            for sample in integrator.feed(readings):
                produced += 1
                if produced > start:
                    sample.position = {"index": produced}
                    yield sample
            logger.info(
                "%s: %d readings, %.3f s, motors %s",
                path.name,
                integrator.readings,
                integrator.elapsed_s,
                ", ".join(integrator.motor_names or []),
            )
        else:
            for sample in data:
                if ambient_c is not None and sample.ambient_c is None:
                    sample.ambient_c = ambient_c
                produced += 1
                if produced > start:
                    sample.position = {"index": produced}
                    yield sample
    if not produced and not any(kind == "powertrain" for _, (kind, _) in loaded):
        raise ValueError("nothing to replay: Electrics polls alone have no time series")
    if start:
        logger.info("replay: continued after sample %d of %d", min(start, produced), produced)


def _signal_map(signal_map: Path | SignalMap | None) -> SignalMap | None:
    if signal_map is None or not isinstance(signal_map, str | Path):
        return signal_map
    from bridge.sources.signal_map import load_signal_map

    return load_signal_map(Path(signal_map))


def _is_vehicle_log(path: Path) -> bool:
    return path.suffix.lower() in VEHICLE_LOG_SUFFIXES


def _load(
    path: Path,
    max_gap_s: float | None = None,
    signal_map: SignalMap | None = None,
    dbc: Path | None = None,
) -> tuple[str, Any]:
    suffix = path.suffix.lower()
    if _is_vehicle_log(path):
        if signal_map is None:
            raise ValueError(
                f"{path}: an MDF4 or CAN log needs a signal map (--signal-map MAP.yaml; "
                "bridge/signal_maps/example.yaml shows every key)"
            )
        from bridge.sources.vehicle_log import vehicle_log_samples

        return "samples", vehicle_log_samples(path, signal_map, dbc=dbc, max_gap_s=max_gap_s)
    if suffix in (".csv", ".bdf"):
        if is_bdf_file(path):
            return "samples", list(bdf_samples(path, max_gap_s=max_gap_s))
        if suffix == ".csv":
            return "samples", list(csv_samples(path))
    if suffix in (".jsonl", ".ndjson"):
        return "samples", list(jsonl_samples(path))
    if suffix != ".json":
        raise ValueError(
            f"{path}: unknown log type (use .json, .csv, .jsonl, a BDF .csv, or .mf4, .mdf, "
            ".blf, .asc with --signal-map)"
        )
    data = json.loads(path.read_text())
    if data == [] or is_powertrain_poll(data):
        return "powertrain", data
    if isinstance(data, Mapping) and isinstance(data.get("samples"), list):
        return "samples", [_row_sample(row, path, i) for i, row in enumerate(data["samples"])]
    if isinstance(data, list) and all(isinstance(row, Mapping) for row in data):
        return "samples", list(_timed_rows(data, path))
    if is_electrics(data):
        return "electrics", data
    raise ValueError(f"{path}: neither a PowertrainSensor/Electrics poll nor a sample log")


def csv_samples(path: Path) -> Iterator[Sample]:
    """Samples of a CSV log (empty cells are missing values)."""
    with open(path, newline="") as handle:
        rows = (
            {k.strip(): v for k, v in row.items() if k and v not in ("", None)}
            for row in csv.DictReader(handle)
        )
        yield from _timed_rows(rows, path)


def jsonl_samples(path: Path) -> Iterator[Sample]:
    """Samples of a JSONL log (one object per line; blank lines ignored)."""
    with open(path) as handle:
        rows = (json.loads(line) for line in handle if line.strip())
        yield from _timed_rows(rows, path)


def _timed_rows(rows: Any, path: Path) -> Iterator[Sample]:
    """Rows with ``dt_s``, or with ``time_s`` (each row covers the time since the last)."""
    last_time_s: float | None = None
    for index, row in enumerate(_with_measurements(rows, path)):
        if "dt_s" not in row and "time_s" in row:
            time_s = float(row["time_s"])
            if last_time_s is None or time_s <= last_time_s:
                last_time_s = time_s
                continue
            row["dt_s"] = time_s - last_time_s
            last_time_s = time_s
        yield _row_sample(row, path, index)


def _with_measurements(rows: Any, path: Path) -> list[dict[str, Any]]:
    """Rows with the measurement aliases renamed and percent SOC columns scaled to 0..1."""
    rows = [dict(row) for row in rows]
    present = {name for row in rows for name in row}
    for name in (name for name in _SOC_COLUMNS if name in present):
        values = [v for v in (_float_or_none(row.get(name)) for row in rows) if v is not None]
        if values and max(values) > SOC_PERCENT_ABOVE:
            logger.info(
                "%s: column %r read as percent (largest value %g > %g): divided by 100",
                path.name,
                name,
                max(values),
                SOC_PERCENT_ABOVE,
            )
            for row in rows:
                value = _float_or_none(row.get(name))
                if value is not None:
                    row[name] = value / 100.0
    for row in rows:
        for alias, field in MEASUREMENT_ALIASES.items():
            if alias in row and row.get(field) is None:
                row[field] = row.pop(alias)
    return rows


def _float_or_none(value: Any) -> float | None:
    """A number of a log cell, None when empty or not a number (the sample then says why)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _row_sample(row: Mapping[str, Any], path: Path, index: int) -> Sample:
    row = dict(row)
    motors = row.pop("motors", None)
    if isinstance(motors, str):
        motors = json.loads(motors)
    indexed: dict[int, dict[str, float]] = {}
    for key in list(row):
        match = _MOTOR_COLUMN.match(key)
        if match:
            indexed.setdefault(int(match.group(1)), {})[match.group(2)] = float(row.pop(key))
    if "torque_nm" in row and "speed_rad_s" in row:
        indexed.setdefault(0, {}).update(
            torque_nm=float(row.pop("torque_nm")), speed_rad_s=float(row.pop("speed_rad_s"))
        )
    if indexed:
        motors = [indexed[i] for i in sorted(indexed)]
    if motors is not None:
        row["motors"] = [
            m if isinstance(m, Mapping) else {"torque_nm": m[0], "speed_rad_s": m[1]}
            for m in motors
        ]
    try:
        return Sample.from_wire(row)
    except (KeyError, TypeError, ValueError) as exc:
        known = ", ".join(WIRE_FIELDS)
        raise ValueError(f"{path}: row {index}: {exc} (sample fields: {known})") from exc
