"""Signal maps: which channel of a vehicle log (ASAM MDF4, CAN) feeds which sample field.

A map is a YAML file (``bridge/signal_maps/example.yaml`` shows every key)::

    input: current            # the drive input: current | motors | power
    rate_hz: 10               # the samples' grid
    dbc: vehicle.dbc          # CAN logs: relative to the map file (--dbc overrides)
    signals:
      pack_current: {channel: BMS_PackCurrent, unit: A, sign: charge_positive}
      pack_voltage: {channel: BMS_PackVoltage, unit: V}
      soc: BMS_SOC            # just the channel: its unit comes from the log
      motors:
        - {torque: {channel: EM_F_Torque, unit: N*m}, speed: {channel: EM_F_Speed, unit: rpm}}

A signal's logged value becomes ``(raw * scale + offset)`` in its ``unit``, then the sample
field's unit (:data:`UNITS`), then is negated with ``invert: true`` or, for the pack current
and power, ``sign: charge_positive`` (the twin's current and power are discharge-positive).
Without ``unit`` the channel's own unit (MDF4 channel, DBC signal) is used when the table
knows it (also in other letter case, ``RPM``); otherwise the sample field's unit is assumed
and the log says so. ``input`` defaults to ``current`` when the pack current is mapped, else
``motors``, else ``power``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: Each quantity's known units → (factor, offset) to the sample field's unit
#: (``value * factor + offset``).
UNITS: dict[str, dict[str, tuple[float, float]]] = {
    "current": {"A": (1.0, 0.0), "mA": (1e-3, 0.0), "kA": (1e3, 0.0)},
    "voltage": {"V": (1.0, 0.0), "mV": (1e-3, 0.0), "kV": (1e3, 0.0)},
    "temperature": {
        "degC": (1.0, 0.0), "°C": (1.0, 0.0), "C": (1.0, 0.0), "K": (1.0, -273.15),
        "degF": (5.0 / 9.0, -32.0 * 5.0 / 9.0), "°F": (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    },
    "soc": {"1": (1.0, 0.0), "fraction": (1.0, 0.0), "%": (0.01, 0.0)},
    "torque": {
        "N*m": (1.0, 0.0), "Nm": (1.0, 0.0), "N·m": (1.0, 0.0), "N.m": (1.0, 0.0),
        "kN*m": (1e3, 0.0), "kNm": (1e3, 0.0), "kN·m": (1e3, 0.0),
    },
    "angular_speed": {
        "rad/s": (1.0, 0.0), "rpm": (math.pi / 30.0, 0.0), "1/min": (math.pi / 30.0, 0.0),
        "rev/min": (math.pi / 30.0, 0.0), "Hz": (2.0 * math.pi, 0.0),
        "rev/s": (2.0 * math.pi, 0.0),
    },
    "speed": {"m/s": (1.0, 0.0), "km/h": (1.0 / 3.6, 0.0), "kph": (1.0 / 3.6, 0.0),
              "mph": (0.44704, 0.0)},
    "power": {"W": (1e-3, 0.0), "kW": (1.0, 0.0)},
    "flag": {},
}  # fmt: skip
#: The sample field's unit of each quantity (what an unknown unit is read as).
SAMPLE_UNITS = {"current": "A", "voltage": "V", "temperature": "degC", "soc": "1",
                "torque": "N*m", "angular_speed": "rad/s", "speed": "m/s", "power": "kW",
                "flag": ""}  # fmt: skip
#: Map keys under ``signals:`` (besides ``motors``) → their quantity.
SIGNALS = {
    "pack_current": "current",
    "pack_voltage": "voltage",
    "pack_temperature": "temperature",
    "soc": "soc",
    "ambient": "temperature",
    "wheel_speed": "speed",
    "power": "power",
    "charging": "flag",
}
INPUTS = {"current": "pack_current", "motors": "motors", "power": "power"}
DEFAULT_RATE_HZ = 10.0
MAX_RATE_HZ = 1000.0
SIGNS = ("discharge_positive", "charge_positive")
_TOP_KEYS = ("input", "rate_hz", "dbc", "signals")
_SIGNAL_KEYS = ("channel", "unit", "scale", "offset", "invert", "group", "stale_s")
_SIGNED = ("pack_current", "power")


class SignalMapError(ValueError):
    """A map that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One mapped channel: ``key`` is where it sits in the map (``motors[0].speed``)."""

    key: str
    quantity: str
    channel: str
    unit: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    invert: bool = False
    #: MDF4 only: the channel group, when the name is in several.
    group: int | None = None
    #: Held values older than this are left out (None: the reader's default).
    stale_s: float | None = None

    def conversion(self, channel_unit: str | None) -> tuple[float, float, str | None]:
        """``(factor, offset, unit used)`` from the logged value to the sample field's unit,
        applied after scale and offset; the unit is None when it is assumed (not known)."""
        if self.unit is not None:
            return (*UNITS[self.quantity][self.unit], self.unit)
        unit = known_unit(self.quantity, channel_unit)
        if unit is None:
            return 1.0, 0.0, None
        return (*UNITS[self.quantity][unit], unit)


@dataclass(frozen=True, slots=True)
class SignalMap:
    """A loaded map (see the module docstring)."""

    input: str
    rate_hz: float
    signals: Mapping[str, SignalSpec]
    motors: tuple[tuple[SignalSpec, SignalSpec], ...] = ()
    dbc: Path | None = None
    path: Path | None = None

    def specs(self) -> Iterator[SignalSpec]:
        """Every mapped channel: the signals, then each motor's torque and speed."""
        yield from self.signals.values()
        for torque, speed in self.motors:
            yield torque
            yield speed


def known_unit(quantity: str, unit: str | None) -> str | None:
    """The table's spelling of a channel's own unit (exact, else in other letter case)."""
    if unit is None or quantity == "flag":
        return None
    unit = unit.strip()
    table = UNITS[quantity]
    if unit in table:
        return unit
    folded = [u for u in table if u.lower() == unit.lower()]
    return folded[0] if len(folded) == 1 else None


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


class _Reader:
    """Validates the parsed YAML; every error names the file and the key."""

    def __init__(self, path: Path | None) -> None:
        self.where = f"signal map {path}" if path else "signal map"

    def fail(self, key: str, message: str) -> SignalMapError:
        return SignalMapError(f"{self.where}: {key + ': ' if key else ''}{message}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping, got {value!r}")
        for name in value:
            if name not in allowed:
                known = ", ".join(allowed)
                raise self.fail(
                    f"{key}.{name}" if key else str(name),
                    f"unknown key{_did_you_mean(str(name), allowed)} (known: {known})",
                )
        return value

    def number(self, value: Any, key: str, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {value!r}")
        number = float(value)
        if math.isnan(number) or (positive and not number > 0):
            raise self.fail(key, f"must be a number > 0, got {value!r}")
        if not positive and not math.isfinite(number):
            raise self.fail(key, f"must be a finite number, got {value!r}")
        return number

    def signal(self, value: Any, key: str, quantity: str, *, signed: bool) -> SignalSpec:
        if isinstance(value, str):
            value = {"channel": value}
        allowed = (*_SIGNAL_KEYS, "sign") if signed else _SIGNAL_KEYS
        raw = self.mapping(value, key, allowed)
        channel = raw.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            raise self.fail(key, "needs a channel (the name in the log)")
        unit = raw.get("unit")
        if isinstance(unit, int | float) and not isinstance(unit, bool):
            unit = format(unit, "g")  # YAML reads `unit: 1` as a number
        if unit is not None and not isinstance(unit, str):
            raise self.fail(f"{key}.unit", f"must be a string, got {unit!r}")
        unit = unit.strip() if unit else None
        if unit is not None and unit not in UNITS[quantity]:
            known = ", ".join(UNITS[quantity]) or "none: leave unit out"
            what = "a flag" if quantity == "flag" else f"a {quantity.replace('_', ' ')}"
            raise self.fail(f"{key}.unit", f"unknown unit {unit!r} for {what} (known: {known})")
        invert = raw.get("invert", False)
        if not isinstance(invert, bool):
            raise self.fail(f"{key}.invert", f"must be true or false, got {invert!r}")
        sign = raw.get("sign", SIGNS[0])
        if sign not in SIGNS:
            raise self.fail(f"{key}.sign", f"must be one of {', '.join(SIGNS)}, got {sign!r}")
        if "sign" in raw and invert:
            raise self.fail(key, "sign and invert: use one of them")
        group = raw.get("group")
        if group is not None and (isinstance(group, bool) or not isinstance(group, int)):
            raise self.fail(f"{key}.group", f"must be a channel group number, got {group!r}")
        if group is not None and group < 0:
            raise self.fail(f"{key}.group", f"must be ≥ 0, got {group}")
        stale = raw.get("stale_s")
        return SignalSpec(
            key=key,
            quantity=quantity,
            channel=channel.strip(),
            unit=unit,
            scale=self.number(raw.get("scale", 1.0), f"{key}.scale"),
            offset=self.number(raw.get("offset", 0.0), f"{key}.offset"),
            invert=invert or sign == "charge_positive",
            group=group,
            stale_s=None if stale is None else self.number(stale, f"{key}.stale_s", positive=True),
        )

    def motors(self, value: Any) -> tuple[tuple[SignalSpec, SignalSpec], ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("signals.motors", "must be a list of {torque: ..., speed: ...}")
        motors = []
        for i, entry in enumerate(value):
            key = f"signals.motors[{i}]"
            raw = self.mapping(entry, key, ("torque", "speed"))
            for part in ("torque", "speed"):
                if part not in raw:
                    raise self.fail(key, f"needs a {part}")
            torque = self.signal(raw["torque"], f"{key}.torque", "torque", signed=False)
            speed = self.signal(raw["speed"], f"{key}.speed", "angular_speed", signed=False)
            motors.append((torque, speed))
        return tuple(motors)


def parse_signal_map(data: Any, path: Path | None = None) -> SignalMap:
    """A map from parsed YAML (``path``: the file, for messages and a relative ``dbc``)."""
    reader = _Reader(path)
    top = reader.mapping(data, "", _TOP_KEYS)
    if top.get("signals") is None:
        raise reader.fail("signals", "missing: map at least the drive input (pack_current, ...)")
    signals_raw = reader.mapping(top.get("signals"), "signals", (*SIGNALS, "motors"))
    signals = {
        name: reader.signal(value, f"signals.{name}", SIGNALS[name], signed=name in _SIGNED)
        for name, value in signals_raw.items()
        if name != "motors" and value is not None
    }
    motors_raw = signals_raw.get("motors")
    motors = reader.motors(motors_raw) if motors_raw is not None else ()
    mapped = {*signals, *(["motors"] if motors else [])}
    choice = top.get("input")
    if choice is None:
        choice = next((name for name, key in INPUTS.items() if key in mapped), None)
        if choice is None:
            raise reader.fail(
                "signals", "no drive input: map pack_current, motors or power (and input:)"
            )
    elif choice not in INPUTS:
        raise reader.fail("input", f"must be one of {', '.join(INPUTS)}, got {choice!r}")
    elif INPUTS[choice] not in mapped:
        raise reader.fail("input", f"{choice} needs signals.{INPUTS[choice]}")
    rate_hz = reader.number(top.get("rate_hz", DEFAULT_RATE_HZ), "rate_hz", positive=True)
    if not rate_hz <= MAX_RATE_HZ:
        raise reader.fail("rate_hz", f"must be at most {MAX_RATE_HZ:g}, got {rate_hz:g}")
    dbc = top.get("dbc")
    if dbc is not None and not isinstance(dbc, str):
        raise reader.fail("dbc", f"must be a file name, got {dbc!r}")
    dbc_path = None
    if dbc:
        dbc_path = Path(dbc).expanduser()
        if path is not None and not dbc_path.is_absolute():
            dbc_path = path.parent / dbc_path
    return SignalMap(choice, rate_hz, signals, motors, dbc_path, path)


def load_signal_map(path: Path) -> SignalMap:
    """The map in a YAML file; :class:`SignalMapError` (a ValueError) names the bad key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SignalMapError(f"signal map {path}: not YAML: {exc}") from None
    return parse_signal_map(data, path)
