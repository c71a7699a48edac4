"""Vehicle logs → samples: ASAM MDF4 files and CAN traces, through a signal map.

Reading (the optional extra ``logs``: ``pip install 'ev-battery-twin[logs]'``):

- MDF4 (``*.mf4``, also MDF3 ``*.mdf``; asammdf): each mapped channel with its own master
  time, physical values (a channel whose conversion gives text is read raw; samples marked
  invalid are dropped). A name in several channel groups needs ``group: N`` in the map; the
  error lists the groups.
- CAN traces (``*.blf``, ``*.asc``; python-can) decoded with a DBC (cantools; the map's
  ``dbc`` or ``--dbc``). A channel is ``Message.Signal`` or just ``Signal`` when only one
  message has it. Frames whose ID the DBC lacks, and frames that do not decode, are skipped
  and counted; error and remote frames are ignored. Time is each frame's timestamp since the
  log's first frame, rounded to the microsecond (ASC's resolution; a float epoch timestamp
  resolves only about 0.2 µs anyway).

Each signal is converted to the sample field's unit per :mod:`bridge.sources.signal_map`.

Resampling onto ``t_k = t_0 + k / rate_hz``, where ``t_0`` is the first time every drive
channel (the pack current, the power, or each motor's torque and speed) has a value; the
grid ends at the last such time, a shorter last sample covering any rest. Sample k covers
``(t_{k-1}, t_k]``:

- drive channels and the wheel speed: the mean over the interval of the linearly
  interpolated signal, so the samples' charge (``current_a · dt_s``) and energy are the
  logged signal's integral (trapezoid rule) exactly. Where the wheel speed's logged span
  covers only part of an interval, the mean is over that part; it is left out where it
  covers none.
- measurements (pack voltage, temperature, SOC), ambient and charging (nonzero: plugged
  in): the latest value logged at or before ``t_k`` (no look-ahead). Left out before the
  first value and when the latest is stale: older than the signal's ``stale_s``, by default
  :data:`STALE_S` or :data:`STALE_INTERVALS` of the channel's median logging interval,
  whichever is longer (a 0.2 Hz SOC is held 15 s, a 10 Hz voltage 5 s).
- a drive channel's logging interval longer than ``max_gap_s`` (default
  :data:`DEFAULT_LOG_MAX_GAP_S`; logging stopped) is integrated as zero, like gaps in BDF
  rows and BeamNG readings; grid intervals wholly inside such a gap become one idle sample
  (zero drive input, wheel speed 0) and the log counts the gaps.

A sample's ``extras`` (the local sample log only) hold ``log_time_s`` (``t_k`` in the log's
time), ``log_idle_s`` for an idle sample, and the interval means of the mapped drive signals
that are not the input (``log_pack_current_a``, ``log_power_kw``,
``log_motor<i>_torque_nm``, ``log_motor<i>_speed_rad_s``).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bridge.samples import Motor, Sample
from bridge.sources.replay import SOC_PERCENT_ABOVE
from bridge.sources.signal_map import SAMPLE_UNITS, SignalMap, SignalSpec

logger = logging.getLogger(__name__)

MDF_SUFFIXES = (".mf4", ".mdf")
CAN_SUFFIXES = (".blf", ".asc")
SUFFIXES = MDF_SUFFIXES + CAN_SUFFIXES
#: Longer intervals between a drive channel's values count as idle.
DEFAULT_LOG_MAX_GAP_S = 5.0
#: Held measurements go stale after the longer of these (unless the map sets stale_s).
STALE_S = 5.0
STALE_INTERVALS = 3.0
EXTRA = "pip install 'ev-battery-twin[logs]'"
#: "At or before t_k" tolerates this much (s): grid times carry rounding errors.
_AT_EPS_S = 1e-9
#: Span ends and the last short sample are compared to this (s).
_SPAN_EPS_S = 1e-6


class LogsExtraMissing(ValueError):
    """asammdf, python-can or cantools is not installed."""


@dataclass(slots=True)
class Channel:
    """A channel as read from the log: times (s), values, the log's own unit."""

    t: np.ndarray
    v: np.ndarray
    unit: str | None


def _require(module: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LogsExtraMissing(
            f"{what} need the optional extra 'logs' ({module} is not installed): {EXTRA}"
        ) from exc


def _close_names(name: str, choices: Iterable[str]) -> str:
    """`` (close: a, b)`` for names like ``name`` (any letter case), else ``""``."""
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)
    return f" (close: {', '.join(by_lower[c] for c in close)})" if close else ""


# -- MDF4 ----------------------------------------------------------------------------------


def read_mdf(path: Path, specs: Sequence[SignalSpec]) -> dict[str, Channel]:
    """The mapped channels of an MDF file, by ``spec.key``."""
    asammdf = _require("asammdf", "MDF4 logs")
    try:
        mdf = asammdf.MDF(path)
    except OSError:
        raise
    except Exception as exc:  # asammdf's own errors for what is not MDF
        raise ValueError(f"{path}: not a readable MDF file: {exc}") from exc
    with mdf:
        channels_db = mdf.channels_db
        if not mdf.groups or not channels_db:
            raise ValueError(f"{path}: empty log: the MDF file has no channels")
        out = {}
        for spec in specs:
            group, index = _mdf_entry(path, mdf, spec)
            signal = mdf.get(group=group, index=index)
            values = np.asarray(signal.samples)
            if values.dtype.kind not in "biuf":  # a value-to-text conversion: the raw numbers
                signal = mdf.get(group=group, index=index, raw=True)
                values = np.asarray(signal.samples)
            if values.ndim != 1 or values.dtype.kind not in "biuf":
                raise ValueError(
                    f"{path}: {spec.key}: channel {spec.channel!r} is not a numeric scalar "
                    f"({values.dtype}, shape {values.shape})"
                )
            times = np.asarray(signal.timestamps, dtype=float)
            invalid = getattr(signal, "invalidation_bits", None)
            if invalid is not None:  # the logger marked these samples invalid
                valid = ~np.asarray(invalid, dtype=bool)
                times, values = times[valid], values[valid]
            unit = str(signal.unit or "").strip() or None
            out[spec.key] = Channel(times, values, unit)
        return out


def _mdf_entry(path: Path, mdf: Any, spec: SignalSpec) -> tuple[int, int]:
    """(group, index) of the spec's channel; errors name close names or the candidates."""
    entries = [(int(g), int(i)) for g, i in mdf.channels_db.get(spec.channel, ())]
    if not entries:
        raise ValueError(
            f"{path}: {spec.key}: no channel {spec.channel!r} in the file"
            f"{_close_names(spec.channel, mdf.channels_db)}"
        )
    if spec.group is not None:
        picked = [e for e in entries if e[0] == spec.group]
        if not picked:
            where = ", ".join(str(g) for g, _ in entries)
            raise ValueError(
                f"{path}: {spec.key}.group: channel {spec.channel!r} is not in group "
                f"{spec.group} (it is in group {where})"
            )
        entries = picked
    if len(entries) > 1:
        groups = [g for g, _ in entries]
        candidates = ", ".join(
            _describe_group(mdf, g) + (f" index {i}" if groups.count(g) > 1 else "")
            for g, i in entries
        )
        raise ValueError(
            f"{path}: {spec.key}: channel {spec.channel!r} is in several places: {candidates}: "
            "set group: N in the map"
        )
    return entries[0]


def _describe_group(mdf: Any, group: int) -> str:
    """``group 2 (its acquisition name or comment)``."""
    channel_group = mdf.groups[group].channel_group
    names = [str(getattr(channel_group, a, "") or "").strip() for a in ("acq_name", "comment")]
    label = next((n for n in names if n), "")
    return f"group {group}" + (f" ({label})" if label else "")


# -- CAN -----------------------------------------------------------------------------------


def read_can(path: Path, specs: Sequence[SignalSpec], dbc: Path | None) -> dict[str, Channel]:
    """The mapped signals of a CAN trace decoded with the DBC, by ``spec.key``."""
    if dbc is None:
        raise ValueError(
            f"{path}: a CAN log needs a DBC to decode its frames: dbc: in the signal map or "
            "--dbc FILE"
        )
    cantools = _require("cantools", "CAN logs")
    can = _require("can", "CAN logs")
    database = _load_dbc(cantools, dbc)
    wanted = _resolve_can(database, specs, dbc)
    by_id: dict[int, tuple[Any, list[tuple[str, str]]]] = {}
    for key, (message, signal) in wanted.items():
        by_id.setdefault(message.frame_id, (message, []))[1].append((signal.name, key))
    known_ids = {message.frame_id for message in database.messages}
    times: dict[str, list[float]] = {key: [] for key in wanted}
    values: dict[str, list[float]] = {key: [] for key in wanted}
    first: float | None = None
    frames = unknown = undecodable = 0
    try:
        with can.LogReader(path) as reader:
            for frame in reader:
                if frame.is_error_frame or frame.is_remote_frame:
                    continue
                frames += 1
                if first is None:
                    first = float(frame.timestamp)
                entry = by_id.get(frame.arbitration_id)
                if entry is None:
                    unknown += frame.arbitration_id not in known_ids
                    continue
                message, signals = entry
                try:
                    decoded = message.decode(bytes(frame.data), decode_choices=False)
                except (cantools.database.Error, ValueError):
                    undecodable += 1
                    continue
                t_s = round((float(frame.timestamp) - first) * 1e6) / 1e6
                for name, key in signals:
                    value = decoded.get(name)
                    if isinstance(value, int | float):
                        times[key].append(t_s)
                        values[key].append(float(value))
    except OSError:
        raise
    except Exception as exc:  # python-can's parse errors of a damaged file
        raise ValueError(f"{path}: not a readable CAN log: {exc}") from exc
    if not frames:
        raise ValueError(f"{path}: empty log: no CAN frames")
    logger.info(
        "%s: %d CAN frames, %d with IDs not in %s (skipped)", path.name, frames, unknown, dbc.name
    )
    if undecodable:
        logger.warning(
            "%s: %d frames that %s cannot decode skipped", path.name, undecodable, dbc.name
        )
    return {
        key: Channel(np.array(times[key]), np.array(values[key]), signal.unit or None)
        for key, (_, signal) in wanted.items()
    }


def _load_dbc(cantools: ModuleType, dbc: Path) -> Any:
    try:
        database = cantools.database.load_file(dbc)
    except OSError:
        raise
    except Exception as exc:  # cantools' parse errors
        raise ValueError(f"{dbc}: not a readable DBC: {exc}") from exc
    if not hasattr(database, "messages"):
        raise ValueError(f"{dbc}: not a CAN database (DBC, ARXML, KCD, SYM)")
    return database


def _resolve_can(
    database: Any, specs: Sequence[SignalSpec], dbc: Path
) -> dict[str, tuple[Any, Any]]:
    """spec.key → (message, signal) for ``Message.Signal`` or a ``Signal`` in one message."""
    full: dict[str, tuple[Any, Any]] = {}
    by_signal: dict[str, list[tuple[Any, Any]]] = {}
    for message in database.messages:
        for signal in message.signals:
            full[f"{message.name}.{signal.name}"] = (message, signal)
            by_signal.setdefault(signal.name, []).append((message, signal))
    wanted = {}
    for spec in specs:
        found = full.get(spec.channel)
        if found is None:
            candidates = by_signal.get(spec.channel, [])
            if len(candidates) > 1:
                names = ", ".join(f"{m.name}.{s.name}" for m, s in candidates)
                raise ValueError(
                    f"{dbc}: {spec.key}: signal {spec.channel!r} is in several messages: "
                    f"write one of {names}"
                )
            if not candidates:
                raise ValueError(
                    f"{dbc}: {spec.key}: no signal {spec.channel!r} in the DBC"
                    f"{_close_names(spec.channel, [*full, *by_signal])}"
                )
            found = candidates[0]
        wanted[spec.key] = found
    return wanted


# -- resampling ----------------------------------------------------------------------------


def convert_channel(
    path: Path, spec: SignalSpec, channel: Channel
) -> tuple[np.ndarray, np.ndarray]:
    """Times and values in the sample field's unit, finite, in time order."""
    t = np.asarray(channel.t, dtype=float)
    v = np.asarray(channel.v, dtype=float) * spec.scale + spec.offset
    factor, offset, unit = spec.conversion(channel.unit)
    if unit is None and spec.quantity != "flag":
        assumed = SAMPLE_UNITS[spec.quantity]
        own = f"unit {channel.unit!r}" if channel.unit else "no unit"
        finite = v[np.isfinite(v)]
        if spec.quantity == "soc" and finite.size and finite.max() > SOC_PERCENT_ABOVE:
            factor, assumed = 0.01, f"% (largest value {finite.max():g} > {SOC_PERCENT_ABOVE})"
        logger.info(
            "%s: %s: channel %r has %s: read as %s (unit: in the map sets it)",
            path.name, spec.key, spec.channel, own, assumed,
        )  # fmt: skip
    v = v * factor + offset
    if spec.invert:
        v = -v
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    order = np.argsort(t, kind="stable")
    return t[order], v[order] + 0.0  # (no -0.0)


class _Series:
    """A converted signal: interval means of its linear interpolant (zero across gaps longer
    than ``max_gap_s``) and the latest value at a time."""

    def __init__(self, t: np.ndarray, v: np.ndarray, max_gap_s: float) -> None:
        self.t, self.v = t, v
        dt = np.diff(t)
        self.gap = dt > max_gap_s
        area = np.where(self.gap, 0.0, 0.5 * (v[:-1] + v[1:]) * dt)
        self.cumulative = np.concatenate(([0.0], np.cumsum(area)))
        median = float(np.median(dt)) if dt.size else 0.0
        self.default_stale_s = max(STALE_S, STALE_INTERVALS * median)

    def integral(self, x: np.ndarray) -> np.ndarray:
        """The integral from the first value to ``x`` (clipped to the logged span)."""
        t, v = self.t, self.v
        x = np.clip(x, t[0], t[-1])
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, t.size - 2)
        h = x - t[i]
        width = t[i + 1] - t[i]
        slope = np.divide(v[i + 1] - v[i], width, out=np.zeros_like(h), where=width > 0)
        partial = np.where(self.gap[i], 0.0, h * (v[i] + 0.5 * slope * h))
        return self.cumulative[i] + partial

    def means(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Mean over each ``(a, b]``, or over its part within the logged span (a signal that
        starts or ends inside it); NaN where they do not overlap."""
        if self.t.size < 2:
            return np.full(a.shape, np.nan)
        lo, hi = np.maximum(a, self.t[0]), np.minimum(b, self.t[-1])
        width = hi - lo
        overlap = width > _SPAN_EPS_S
        mean = (self.integral(hi) - self.integral(lo)) / np.where(overlap, width, 1.0)
        return np.where(overlap, mean, np.nan)

    def idle(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """True where ``(a, b]`` lies inside one gap."""
        if self.t.size < 2:
            return np.zeros(a.shape, dtype=bool)
        i = np.clip(np.searchsorted(self.t, a, side="right") - 1, 0, self.t.size - 2)
        return self.gap[i] & (a >= self.t[i]) & (b <= self.t[i + 1])

    def gaps(self) -> list[tuple[float, float]]:
        return [(float(self.t[i]), float(self.t[i + 1])) for i in np.flatnonzero(self.gap)]

    def latest(self, x: np.ndarray, stale_s: float | None) -> np.ndarray:
        """The latest value at or before each ``x``; NaN before the first and when stale."""
        if not self.t.size:
            return np.full(x.shape, np.nan)
        limit = self.default_stale_s if stale_s is None else stale_s
        i = np.searchsorted(self.t, x + _AT_EPS_S, side="right") - 1
        held = self.v[np.maximum(i, 0)]
        fresh = (i >= 0) & (x - self.t[np.maximum(i, 0)] <= limit)
        return np.where(fresh, held, np.nan)


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _value(array: np.ndarray | None, k: int) -> float | None:
    if array is None:
        return None
    value = float(array[k])
    return None if math.isnan(value) else value


def vehicle_log_samples(
    path: Path,
    signal_map: SignalMap,
    *,
    dbc: Path | None = None,
    max_gap_s: float | None = None,
) -> list[Sample]:
    """Samples of an MDF4 or CAN log (see the module docstring); ``dbc`` overrides the map's."""
    path = Path(path)
    specs = list(signal_map.specs())
    suffix = path.suffix.lower()
    if suffix in MDF_SUFFIXES:
        channels = read_mdf(path, specs)
    elif suffix in CAN_SUFFIXES:
        channels = read_can(path, specs, dbc or signal_map.dbc)
    else:
        raise ValueError(f"{path}: not a vehicle log ({', '.join(SUFFIXES)})")
    gap_limit_s = DEFAULT_LOG_MAX_GAP_S if max_gap_s is None else max_gap_s
    by_key = {spec.key: spec for spec in specs}
    series: dict[str, _Series] = {}
    for spec in specs:
        t, v = convert_channel(path, spec, channels[spec.key])
        if t.size == 0:
            logger.warning("%s: %s: channel %r has no values", path.name, spec.key, spec.channel)
        series[spec.key] = _Series(t, v, gap_limit_s)
    motor_keys = [(torque.key, speed.key) for torque, speed in signal_map.motors]
    if signal_map.input == "motors":
        drive = [key for pair in motor_keys for key in pair]
    else:
        drive = ["signals.pack_current" if signal_map.input == "current" else "signals.power"]
    for key in drive:
        if series[key].t.size < 2:
            raise ValueError(
                f"{path}: {key}: channel {by_key[key].channel!r} has "
                f"{series[key].t.size} values: nothing to replay (an empty log?)"
            )

    start = max(float(series[key].t[0]) for key in drive)
    end = min(float(series[key].t[-1]) for key in drive)
    if not end - start > _SPAN_EPS_S:
        raise ValueError(f"{path}: the drive input's channels have no common time span")
    count = math.floor((end - start) * signal_map.rate_hz + 1e-6)
    grid = start + np.arange(count + 1) / signal_map.rate_hz
    if end - grid[-1] > _SPAN_EPS_S:
        grid = np.append(grid, end)  # the rest, as a shorter last sample
    a, b = grid[:-1], grid[1:]
    idle = np.zeros(a.shape, dtype=bool)
    for key in drive:
        idle |= series[key].idle(a, b)
    gaps = [g for key in drive for g in series[key].gaps() if g[1] > start and g[0] < end]
    if gaps:
        logger.warning(
            "%s: %d gaps longer than %g s in the drive input integrated idle (--max-gap-s)",
            path.name, len(_merged(gaps)), gap_limit_s,
        )  # fmt: skip

    extras_of = {"signals.pack_current": "log_pack_current_a", "signals.power": "log_power_kw"}
    for i, (torque, speed) in enumerate(motor_keys):
        extras_of[torque] = f"log_motor{i}_torque_nm"
        extras_of[speed] = f"log_motor{i}_speed_rad_s"
    averaged = {*drive, *extras_of, "signals.wheel_speed"}
    means = {key: s.means(a, b) for key, s in series.items() if key in averaged}
    held = {
        name: series[f"signals.{name}"].latest(b, by_key[f"signals.{name}"].stale_s)
        for name in ("pack_voltage", "pack_temperature", "soc", "ambient", "charging")
        if f"signals.{name}" in series
    }
    wheel = means.get("signals.wheel_speed")
    extra_means = {
        name: means[key] for key, name in extras_of.items() if key in means and key not in drive
    }

    samples: list[Sample] = []
    k = 0
    while k < a.size:
        last = k
        if idle[k]:
            while last + 1 < a.size and idle[last + 1]:
                last += 1
        dt_s = float(b[last] - a[k])
        extras: dict[str, Any] = {"log_time_s": float(b[last])}
        if idle[k]:
            extras["log_idle_s"] = dt_s
            drive_input = _idle_input(signal_map)
            wheel_speed = 0.0 if wheel is not None else None
        else:
            drive_input = _drive_input(signal_map, means, motor_keys, k)
            wheel_speed = _value(wheel, k)
            for name, array in extra_means.items():
                value = _value(array, k)
                if value is not None:
                    extras[name] = value
        charging = _value(held.get("charging"), last)
        samples.append(
            Sample(
                dt_s=dt_s,
                **drive_input,
                wheel_speed_m_s=wheel_speed,
                ambient_c=_value(held.get("ambient"), last),
                charging=None if charging is None else charging != 0.0,
                measured_voltage_v=_value(held.get("pack_voltage"), last),
                measured_temperature_c=_value(held.get("pack_temperature"), last),
                measured_soc=_value(held.get("soc"), last),
                extras=extras,
            )
        )
        k = last + 1
    logger.info(
        "%s: %d samples at %g Hz over %.3f s (input %s)",
        path.name, len(samples), signal_map.rate_hz, end - start, signal_map.input,
    )  # fmt: skip
    return samples


def _idle_input(signal_map: SignalMap) -> dict[str, Any]:
    if signal_map.input == "motors":
        return {"motors": [Motor(0.0, 0.0) for _ in signal_map.motors]}
    return {"current_a" if signal_map.input == "current" else "power_kw": 0.0}


def _drive_input(
    signal_map: SignalMap,
    means: dict[str, np.ndarray],
    motor_keys: list[tuple[str, str]],
    k: int,
) -> dict[str, Any]:
    if signal_map.input == "motors":
        return {
            "motors": [
                Motor(float(means[torque][k]), float(means[speed][k]))
                for torque, speed in motor_keys
            ]
        }
    if signal_map.input == "current":
        return {"current_a": float(means["signals.pack_current"][k])}
    return {"power_kw": float(means["signals.power"][k])}
