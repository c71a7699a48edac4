"""Road-load vehicle model: speed trace → wheel force → motor torque and speed.

Per interval of a speed trace (linear speed between points, i.e. constant acceleration):

    P_wheel = ½·m·f_rot·(v1² − v0²)/dt                    inertia, rotating parts included
            + ½·ρ·Cd·A·mean(v³)                           aerodynamic drag
            + (Crr·m·g·cos θ + m·g·sin θ)·v̄               rolling resistance and grade

with v̄ = (v0 + v1)/2, so distance = v̄·dt is the trapezoid integral of the trace. The wheel
power goes to the motors through the preset's final drive and wheel radius (the service
applies motor and transmission efficiency, auxiliary load and pack limits). Traction power is
capped at the motors' peak power; braking power is shared between regeneration and the
friction brake as FASTSim's regen controller does (a speed-dependent fraction, below a maximum
regeneration power when the preset gives one), the rest going to the friction brake.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.samples import Motor, Sample

logger = logging.getLogger(__name__)

GRAVITY_M_S2 = 9.80665  # standard gravity
AIR_DENSITY_KG_M3 = 1.2  # FASTSim RustPhysicalProperties default air density
MPH_PER_M_S = 1.0 / 0.44704  # 1 mph = 0.44704 m/s exactly
# FASTSim regen controller defaults (fastsim-2 vehicle defaults max_regen 0.98, regen_a 500,
# regen_b 0.99): fraction of braking power recoverable = max_regen / (1 + a·exp(−b·(mph + 1))).
FASTSIM_MAX_REGEN = 0.98
FASTSIM_REGEN_A = 500.0
FASTSIM_REGEN_B = 0.99
# Brake pedal convention: 1.0 = total braking demand of 1 g.
BRAKE_FULL_SCALE_DECEL_M_S2 = GRAVITY_M_S2


@dataclass(frozen=True)
class RoadLoadParams:
    """Vehicle data the road-load model needs (from a preset's ``roadload``/``drivetrain``)."""

    mass_kg: float
    cd: float
    frontal_area_m2: float
    crr: float
    wheel_radius_m: float
    final_drive_ratio: float
    rotating_mass_factor: float = 1.0
    #: Share of the wheel torque carried by each motor (sums to 1); one entry per motor.
    torque_split: tuple[float, ...] = (1.0,)
    #: Total traction power limit of all motors, W (None: unlimited).
    motor_peak_w: float | None = None
    #: Regeneration limit at the motor shafts, W (None: only the speed-dependent fraction).
    max_regen_w: float | None = None
    max_regen_fraction: float = FASTSIM_MAX_REGEN
    regen_a: float = FASTSIM_REGEN_A
    regen_b: float = FASTSIM_REGEN_B
    air_density_kg_m3: float = AIR_DENSITY_KG_M3
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        positive = ("mass_kg", "frontal_area_m2", "wheel_radius_m", "final_drive_ratio")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"road-load {name} must be > 0")
        if self.cd < 0 or self.crr < 0 or self.rotating_mass_factor < 1.0:
            raise ValueError("road-load cd, crr must be ≥ 0 and rotating_mass_factor ≥ 1")
        if not self.torque_split or abs(sum(self.torque_split) - 1.0) > 1e-6:
            raise ValueError("torque_split must have one share per motor summing to 1")

    @classmethod
    def from_preset(cls, preset: Mapping[str, Any]) -> RoadLoadParams:
        """Read a preset object as served by ``GET /vehicles/presets`` (or its model_dump)."""
        roadload = _section(preset, "roadload", "road_load")
        drivetrain = _section(preset, "drivetrain")
        if not roadload:
            raise ValueError(f"preset {preset.get('id')!r} has no roadload data")
        merged = {**drivetrain, **roadload}

        def pick(*names: str, default: Any = None) -> Any:
            for name in names:
                if merged.get(name) is not None:
                    return merged[name]
            return default

        mass = float(pick("mass_kg", "test_mass_kg", "vehicle_mass_kg"))
        wheel_radius = float(pick("wheel_radius_m"))
        rotating = pick("rotating_mass_factor")
        if rotating is None:
            # Rotating parts as equivalent mass: n·J/r² (FASTSim's wheel inertia term).
            inertia = pick("wheel_inertia_kg_m2", default=0.0)
            wheels = pick("num_wheels", "wheel_count", default=4)
            rotating = 1.0 + float(wheels) * float(inertia) / wheel_radius**2 / mass
        motors = pick("motors", "motor_count", "num_motors", default=1)
        motor_count = len(motors) if isinstance(motors, list | tuple) else int(motors)
        split = pick("torque_split")
        split = tuple(float(x) for x in split) if split else (1.0 / motor_count,) * motor_count
        peak_w = _power_w(merged, "motor_peak")
        if peak_w is not None and "motor_peak_total_w" not in merged:
            peak_w *= len(split)  # the drivetrain model's motor_peak is per motor
        return cls(
            mass_kg=mass,
            cd=float(pick("cd", "drag_coefficient", "drag_coef")),
            frontal_area_m2=float(pick("frontal_area_m2")),
            crr=float(pick("crr", "rolling_resistance_coefficient")),
            wheel_radius_m=wheel_radius,
            final_drive_ratio=float(pick("final_drive_ratio", "final_drive")),
            rotating_mass_factor=float(rotating),
            torque_split=split,
            motor_peak_w=peak_w,
            max_regen_w=_power_w(merged, "max_regen"),
            max_regen_fraction=float(pick("max_regen_fraction", default=FASTSIM_MAX_REGEN)),
            regen_a=float(pick("regen_a", default=FASTSIM_REGEN_A)),
            regen_b=float(pick("regen_b", default=FASTSIM_REGEN_B)),
            air_density_kg_m3=float(pick("air_density_kg_m3", default=AIR_DENSITY_KG_M3)),
            source=str(preset.get("id") or preset.get("name") or ""),
        )

    @property
    def motor_count(self) -> int:
        return len(self.torque_split)


def _section(preset: Mapping[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        value = preset.get(name)
        if isinstance(value, Mapping):
            return dict(value)
    return {}


def _power_w(data: Mapping[str, Any], stem: str) -> float | None:
    """Read ``<stem>_w`` or ``<stem>_kw`` (e.g. motor_peak_kw) as watts."""
    if data.get(f"{stem}_w") is not None:
        return float(data[f"{stem}_w"])
    if data.get(f"{stem}_kw") is not None:
        return float(data[f"{stem}_kw"]) * 1000.0
    return None


@dataclass(frozen=True)
class RoadLoadResult:
    """Per-interval arrays of the road-load model (all of equal length)."""

    dt_s: np.ndarray
    speed_m_s: np.ndarray  # interval mean speed
    wheel_power_w: np.ndarray  # demanded at the wheels (negative: braking)
    motor_power_w: np.ndarray  # all motors together at their shafts (negative: regen)
    friction_brake_w: np.ndarray  # ≤ 0
    motor_speed_rad_s: np.ndarray
    throttle: np.ndarray
    brake: np.ndarray
    traction_limited: int  # intervals where the motors could not meet the trace

    @property
    def distance_m(self) -> float:
        return float(np.sum(self.speed_m_s * self.dt_s))


def regen_fraction(speed_m_s: np.ndarray, params: RoadLoadParams) -> np.ndarray:
    """FASTSim's share of braking power that regeneration may take at a given speed."""
    mph = speed_m_s * MPH_PER_M_S
    return params.max_regen_fraction / (1.0 + params.regen_a * np.exp(-params.regen_b * (mph + 1)))


def resample(
    time_s: np.ndarray, values: np.ndarray, sample_hz: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of a trace onto a uniform grid of ``sample_hz`` (None: unchanged).

    The last point of the trace is always kept so the duration is preserved exactly.
    """
    if not sample_hz:
        return time_s, values
    step_s = 1.0 / sample_hz
    grid = np.arange(time_s[0], time_s[-1], step_s)
    if grid[-1] < time_s[-1] - 1e-9 * step_s:
        grid = np.append(grid, time_s[-1])
    else:
        grid[-1] = time_s[-1]
    return grid, np.interp(grid, time_s, values)


def road_load(
    time_s: np.ndarray,
    speed_m_s: np.ndarray,
    params: RoadLoadParams,
    grade: np.ndarray | None = None,
) -> RoadLoadResult:
    """Wheel and motor power for each interval between consecutive trace points."""
    time_s = np.asarray(time_s, dtype=float)
    speed = np.asarray(speed_m_s, dtype=float)
    dt = np.diff(time_s)
    if np.any(dt <= 0):
        raise ValueError("time must be strictly increasing")
    v0, v1 = speed[:-1], speed[1:]
    v_mean = 0.5 * (v0 + v1)
    theta = np.arctan(np.asarray(grade, dtype=float)[:-1]) if grade is not None else 0.0
    m = params.mass_kg

    inertia_w = 0.5 * m * params.rotating_mass_factor * (v1**2 - v0**2) / dt
    # Exact mean of v³ over an interval of constant acceleration.
    mean_v3 = (v0**3 + v0**2 * v1 + v0 * v1**2 + v1**3) / 4.0
    aero_w = 0.5 * params.air_density_kg_m3 * params.cd * params.frontal_area_m2 * mean_v3
    moving = v_mean > 0
    rolling_w = np.where(moving, params.crr * m * GRAVITY_M_S2 * np.cos(theta) * v_mean, 0.0)
    grade_w = m * GRAVITY_M_S2 * np.sin(theta) * v_mean
    wheel_w = inertia_w + aero_w + rolling_w + grade_w

    traction_w = np.maximum(wheel_w, 0.0)
    if params.motor_peak_w is not None:
        limited = int(np.count_nonzero(traction_w > params.motor_peak_w * (1 + 1e-9)))
        traction_w = np.minimum(traction_w, params.motor_peak_w)
    else:
        limited = 0
    braking_w = np.minimum(wheel_w, 0.0)
    regen_w = braking_w * regen_fraction(v_mean, params)
    if params.max_regen_w is not None:
        regen_w = np.maximum(regen_w, -params.max_regen_w)
    motor_w = np.where(wheel_w >= 0, traction_w, regen_w)
    friction_w = braking_w - np.where(wheel_w < 0, regen_w, 0.0)

    motor_speed = v_mean / params.wheel_radius_m * params.final_drive_ratio
    throttle = (
        np.clip(traction_w / params.motor_peak_w, 0.0, 1.0)
        if params.motor_peak_w
        else np.where(wheel_w > 0, 1.0, 0.0)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        brake_force_n = np.where(moving, -braking_w / v_mean, 0.0)
    brake = np.clip(brake_force_n / (m * BRAKE_FULL_SCALE_DECEL_M_S2), 0.0, 1.0)
    return RoadLoadResult(
        dt_s=dt,
        speed_m_s=v_mean,
        wheel_power_w=wheel_w,
        motor_power_w=motor_w,
        friction_brake_w=friction_w,
        motor_speed_rad_s=motor_speed,
        throttle=throttle,
        brake=brake,
        traction_limited=limited,
    )


def samples_from_trace(
    time_s: np.ndarray,
    speed_m_s: np.ndarray,
    params: RoadLoadParams,
    *,
    grade: np.ndarray | None = None,
    sample_hz: float | None = None,
    ambient_c: float | None = None,
) -> Iterator[Sample]:
    """``/step`` samples (motor torque and speed per motor) for a speed trace."""
    t, v = resample(np.asarray(time_s, float), np.asarray(speed_m_s, float), sample_hz)
    g = (
        resample(np.asarray(time_s, float), np.asarray(grade, float), sample_hz)[1]
        if (grade is not None)
        else None
    )
    result = road_load(t, v, params, g)
    if result.traction_limited:
        logger.warning(
            "%s: motors at peak power in %d intervals; trace not met there",
            params.source or "vehicle",
            result.traction_limited,
        )
    for i in range(len(result.dt_s)):
        omega = float(result.motor_speed_rad_s[i])
        power_w = float(result.motor_power_w[i])
        total_torque = power_w / omega if omega > 0 else 0.0
        motors = [Motor(total_torque * share, omega) for share in params.torque_split]
        yield Sample(
            dt_s=float(result.dt_s[i]),
            motors=motors,
            wheel_speed_m_s=float(result.speed_m_s[i]),
            throttle=round(float(result.throttle[i]), 4),
            brake=round(float(result.brake[i]), 4) + 0.0,  # no -0.0
            ambient_c=ambient_c,
        )
