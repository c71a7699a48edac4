"""The sample every source yields: one ``/step`` sample plus local-only extras."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Sample fields the service accepts (SPEC §3), in wire order.
WIRE_FIELDS = (
    "dt_s",
    "motors",
    "power_kw",
    "current_a",
    "wheel_speed_m_s",
    "throttle",
    "brake",
    "ambient_c",
    "aux_kw",
    "charging",
    "precondition",
    "measured_voltage_v",
    "measured_temperature_c",
    "measured_soc",
)
_FLOAT_FIELDS = tuple(f for f in WIRE_FIELDS if f not in ("motors", "charging", "precondition"))


@dataclass(slots=True)
class Motor:
    """Mechanical operating point of one motor shaft; torque·speed > 0 is motoring."""

    torque_nm: float
    speed_rad_s: float

    @property
    def power_w(self) -> float:
        return self.torque_nm * self.speed_rad_s


@dataclass(slots=True)
class Sample:
    """One ``/step`` sample. Exactly one drive input (``motors``, ``power_kw`` or ``current_a``).

    ``extras`` never goes to the service; it is written to the local sample log (for
    example BeamNG's own SOC, ``beamng_fuel``, for comparison with the twin). ``position``
    never goes to the service either: it is the source's cursor *after* this sample (JSON),
    saved in the state file so that a restarted source continues right behind it; None for
    live sources, which cannot be resumed. ``speedup`` never goes to the service either: the
    real-time factor this sample is paced at (None: the run's ``--speedup``), e.g. a parked
    car's hours pass faster than its drive.
    """

    dt_s: float
    motors: list[Motor] | None = None
    power_kw: float | None = None
    current_a: float | None = None
    wheel_speed_m_s: float | None = None
    throttle: float | None = None
    brake: float | None = None
    ambient_c: float | None = None
    aux_kw: float | None = None
    charging: bool | None = None
    precondition: bool | None = None
    measured_voltage_v: float | None = None
    measured_temperature_c: float | None = None
    measured_soc: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    position: dict[str, Any] | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        inputs = sum(x is not None for x in (self.motors, self.power_kw, self.current_a))
        if inputs != 1:
            raise ValueError("a sample needs exactly one of motors, power_kw, current_a")
        if not self.dt_s > 0:
            raise ValueError(f"dt_s must be > 0, got {self.dt_s}")

    @classmethod
    def plugged_in(
        cls,
        dt_s: float,
        charger_kw: float,
        ambient_c: float | None,
        position: dict[str, Any] | None = None,
    ) -> Sample:
        """A standing car on a charger that offers `charger_kw`; the pack takes what its taper
        accepts."""
        return cls(
            dt_s=dt_s,
            power_kw=-charger_kw,
            charging=True,
            wheel_speed_m_s=0.0,
            ambient_c=ambient_c,
            extras={"phase": "charge"},
            position=position,
        )

    @property
    def distance_m(self) -> float:
        """Distance covered during the sample (0 when the wheel speed is unknown)."""
        return abs(self.wheel_speed_m_s or 0.0) * self.dt_s

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent in ``samples``; unset optional fields are left out."""
        wire: dict[str, Any] = {"dt_s": float(self.dt_s)}
        if self.motors is not None:
            wire["motors"] = [
                {"torque_nm": float(m.torque_nm), "speed_rad_s": float(m.speed_rad_s)}
                for m in self.motors
            ]
        for name in _FLOAT_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None:
                wire[name] = float(value)
        if self.charging is not None:
            wire["charging"] = bool(self.charging)
        if self.precondition is not None:
            wire["precondition"] = bool(self.precondition)
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any], **extras: Any) -> Sample:
        """Build a sample from a ``/step``-shaped mapping; unknown keys go to ``extras``."""
        values = {k: data[k] for k in WIRE_FIELDS if k in data and data[k] is not None}
        motors = values.pop("motors", None)
        if motors is not None:
            values["motors"] = [
                Motor(float(m["torque_nm"]), float(m["speed_rad_s"])) for m in motors
            ]
        for key in _FLOAT_FIELDS:
            if key in values:
                values[key] = float(values[key])
        for key in ("charging", "precondition"):
            if key in values:
                values[key] = _as_bool(values[key])
        other = {k: v for k, v in data.items() if k not in WIRE_FIELDS}
        return cls(**values, extras={**other, **extras})


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "t")
    return bool(value)
