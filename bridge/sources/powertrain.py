"""BeamNG PowertrainSensor and Electrics data → samples (shared by replay and live BeamNG).

A PowertrainSensor poll is a mapping ``{index: reading}``: integer keys from a live
``poll()``, string keys ("0.0", "1.0", ...) once saved with ``json.dump``, or ``[]`` when
nothing was buffered. A reading holds ``time`` (simulation seconds) and one entry per
powertrain device with ``outputTorque1`` (N·m) and ``outputAV1`` (rad/s).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from bridge.samples import Motor, Sample

logger = logging.getLogger(__name__)

Reading = Mapping[str, Any]

#: A gap between readings longer than this is not integrated as driving (sim stalled or
#: readings lost); it is sent as motors at zero torque so the pack clock stays right.
DEFAULT_MAX_GAP_S = 1.0
#: Electrics fields that tell about the battery, copied to the local sample log.
ELECTRICS_LOG_FIELDS = {
    "fuel": "beamng_fuel",  # BeamNG's own state of charge, 0..1
    "fuel_volume": "beamng_energy_kwh",
    "fuel_capacity": "beamng_capacity_kwh",
    "regenThrottle": "beamng_regen_throttle",
}


def normalize_poll(poll: Any) -> list[Reading]:
    """Readings of one poll in time order, whatever the key shape (int, str, list, empty)."""
    if poll is None:
        return []
    if isinstance(poll, Mapping):
        if not poll:
            return []
        if "time" in poll and not any(
            isinstance(v, Mapping) and "time" in v for v in poll.values()
        ):
            return [poll]  # a single reading, not keyed by index
        keyed: list[tuple[float, Reading]] = []
        for key, reading in poll.items():
            if not isinstance(reading, Mapping) or "time" not in reading:
                logger.debug("skipping powertrain entry %r without time", key)
                continue
            try:
                index = float(key)
            except (TypeError, ValueError):
                index = math.inf
            keyed.append((index, reading))
        keyed.sort(key=lambda item: item[0])
        readings = [reading for _, reading in keyed]
    elif isinstance(poll, Sequence) and not isinstance(poll, str | bytes):
        readings = [r for r in poll if isinstance(r, Mapping) and "time" in r]
    else:
        raise ValueError(f"not a PowertrainSensor poll: {type(poll).__name__}")
    # Stable sort: readings with equal times keep their index order.
    return sorted(readings, key=lambda r: float(r["time"]))


def is_powertrain_poll(data: Any) -> bool:
    """True for the shapes :func:`normalize_poll` understands (including the empty poll)."""
    if isinstance(data, list):
        return all(isinstance(r, Mapping) and "time" in r for r in data)
    if isinstance(data, Mapping):
        if not data:
            return False
        values = list(data.values())
        return all(isinstance(v, Mapping) and "time" in v for v in values)
    return False


def is_electrics(data: Any) -> bool:
    """True for one Electrics poll (a flat mapping with BeamNG's vehicle signals)."""
    return isinstance(data, Mapping) and any(k in data for k in ("wheelspeed", "fuel", "throttle"))


def _devices(reading: Reading) -> dict[str, Mapping[str, Any]]:
    return {k: v for k, v in reading.items() if isinstance(v, Mapping)}


def motor_names(reading: Reading, override: Sequence[str] | None = None) -> list[str]:
    """The motors of a powertrain: the given names, else devices without ``parentName`` that
    are connected and named like a motor.

    Spindles of undriven wheels also lack a parent but are ``disconnected`` (Model3_2024);
    they and any other non-motor root are excluded.
    """
    devices = _devices(reading)
    if override:
        missing = [name for name in override if name not in devices]
        if missing:
            raise ValueError(
                f"motor(s) {', '.join(missing)} not in the powertrain; "
                f"devices: {', '.join(sorted(devices))}"
            )
        return list(override)
    roots = [
        name
        for name, dev in devices.items()
        if not dev.get("parentName") and dev.get("mode") != "disconnected"
    ]
    motors = [name for name in roots if "motor" in name.lower()]
    if not motors:
        raise ValueError(
            "no motor found (devices without parentName: "
            f"{', '.join(sorted(roots)) or 'none'}); name them with --motors"
        )
    return sorted(motors)


def motors_of(reading: Reading, names: Sequence[str]) -> list[Motor]:
    """Torque and speed of the named motors (a device missing from this reading counts 0)."""
    motors = []
    for name in names:
        device = reading.get(name)
        if not isinstance(device, Mapping):
            motors.append(Motor(0.0, 0.0))
            continue
        torque = float(device.get("outputTorque1") or 0.0)
        speed = float(device.get("outputAV1") or 0.0)
        motors.append(Motor(torque, speed))
    return motors


class ReadingIntegrator:
    """Turns a stream of powertrain readings into samples, each reading covering the time
    since the previous one (its own ``time``); Electrics values are held between polls."""

    def __init__(
        self,
        *,
        motors: Sequence[str] | None = None,
        ambient_c: float | None = None,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
    ) -> None:
        self.motor_override = list(motors) if motors else None
        self.motor_names: list[str] | None = None
        self.ambient_c = ambient_c
        self.max_gap_s = max_gap_s
        self.electrics: dict[str, Any] = {}
        self.last_time_s: float | None = None
        self.elapsed_s = 0.0
        self.readings = 0
        self.gaps = 0
        self.resets = 0

    def update_electrics(self, electrics: Mapping[str, Any] | None) -> None:
        if electrics:
            self.electrics = dict(electrics)

    def feed(self, readings: Iterable[Reading]) -> Iterator[Sample]:
        for reading in readings:
            sample = self._one(reading)
            if sample is not None:
                yield sample

    def _one(self, reading: Reading) -> Sample | None:
        self.readings += 1
        time_s = float(reading["time"])
        if self.motor_names is None:
            self.motor_names = motor_names(reading, self.motor_override)
            logger.info("motors: %s", ", ".join(self.motor_names))
        previous, self.last_time_s = self.last_time_s, time_s
        if previous is None:
            return None  # the first reading only sets the time base
        dt_s = time_s - previous
        if dt_s < 0:
            self.resets += 1
            logger.warning("simulation time went back %.3f s (reset?); restarting", -dt_s)
            return None
        if dt_s == 0:
            return None
        motors = motors_of(reading, self.motor_names)
        if dt_s > self.max_gap_s:
            self.gaps += 1
            logger.warning("gap of %.2f s in the readings; integrated with the motors idle", dt_s)
            motors = [Motor(0.0, m.speed_rad_s) for m in motors]
        self.elapsed_s += dt_s
        return self._sample(dt_s, motors, time_s)

    def _sample(self, dt_s: float, motors: list[Motor], time_s: float) -> Sample:
        electrics = self.electrics
        extras: dict[str, Any] = {"beamng_time_s": time_s}
        for key, name in ELECTRICS_LOG_FIELDS.items():
            if electrics.get(key) is not None:
                extras[name] = electrics[key]
        return Sample(
            dt_s=dt_s,
            motors=motors,
            wheel_speed_m_s=_maybe_abs(electrics.get("wheelspeed")),
            throttle=_unit(electrics.get("throttle")),
            brake=_unit(electrics.get("brake")),
            ambient_c=self.ambient_c,
            extras=extras,
        )


def _maybe_abs(value: Any) -> float | None:
    return abs(float(value)) if isinstance(value, int | float) else None


def _unit(value: Any) -> float | None:
    return min(1.0, max(0.0, float(value))) if isinstance(value, int | float) else None
