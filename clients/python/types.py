"""Wire shapes of the twin service (SPEC §3) as TypedDicts: typing only, no validation.

All are ``total=False`` so a client keeps working when the service adds fields.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class MotorInput(TypedDict):
    torque_nm: float
    speed_rad_s: float


class StepSample(TypedDict, total=False):
    dt_s: float
    motors: list[MotorInput]
    power_kw: float
    current_a: float
    wheel_speed_m_s: float
    throttle: float
    brake: float
    ambient_c: float
    aux_kw: float
    charging: bool
    # Measurements (not drive inputs): pack terminal V, pack temperature, BMS SOC (0..1).
    measured_voltage_v: float
    measured_temperature_c: float
    measured_soc: float


class StepOptions(TypedDict, total=False):
    demo_mode: bool
    time_multiplier: float
    aging_model: str
    trace: bool
    store: bool  # False: a what-if run, nothing stored or published
    replace: bool  # restart the vehicle's twin from this state (no rev check)


class BatteryState(TypedDict, total=False):
    schema_version: int
    rev: int  # the rev the state was stored at
    soc: float
    soh: float
    resistance_factor: float
    temperature_c: float
    elapsed_s: float
    aged_s: float
    total_distance_km: float
    energy_discharged_kwh: float
    energy_charged_kwh: float
    throughput_ah: float
    cycle_count: float
    ambient_c: float
    v_rc_v: float
    aging: dict[str, dict[str, Any]]  # each aging model's own states, by model name


class Telemetry(TypedDict, total=False):
    """The seed's ``live_data.json`` record plus the service's additions."""

    timestamp: str
    elapsed_seconds: float
    simulated_days: float
    simulated_years: float
    soc: float  # %
    soh: float  # %
    temperature: float  # °C
    voltage: float  # V
    current: float  # A
    power_kw: float
    total_distance_km: float
    cycle_count: float
    energy_throughput_kwh: float
    is_charging: bool
    is_regen: bool
    demo_mode: bool
    time_multiplier: float
    vehicle_model: str
    simulation_running: bool
    vehicle_id: str
    rev: int
    resistance_factor: float
    max_discharge_kw: float
    max_regen_kw: float
    ambient_c: float
    aging_model: str
    power_limited: bool
    aging_out_of_range: bool
    aging_out_of_range_stressors: list[str]


class TraceRow(TypedDict, total=False):
    t_s: float
    soc: float
    voltage: float
    current: float
    power_kw: float
    temperature: float
    soh: float


class StepResponse(TypedDict, total=False):
    """Response of ``POST /step`` and of ``GET /vehicles/{id}``."""

    vehicle_id: str
    rev: int
    state: BatteryState
    telemetry: Telemetry
    trace: list[TraceRow]


class ForecastUsage(TypedDict, total=False):
    daily_km: float
    wh_per_km: float
    soc_min: float
    soc_max: float
    ambient_c: float
    charge_c_rate: float
    dc_fast_share: float


class ForecastPoint(TypedDict, total=False):
    years: float
    soh: float
    resistance_factor: float


class ForecastResponse(TypedDict, total=False):
    points: list[ForecastPoint]
    soh_in_2_years: float
    years_to_80: float | None
    fade_pct_per_year: float


class CalibrationParameter(TypedDict, total=False):
    """One fitted parameter of ``POST /calibrate``."""

    value: float
    std: float | None
    unit: str
    nominal: float | None
    identified: bool


class CalibrationFit(TypedDict, total=False):
    rms_before_v: float
    rms_after_v: float
    samples: int
    #: by name: capacity_ah, r0_ohm, r1_ohm, tau1_s, ocv_offset_v (per cell), initial_soc
    parameters: dict[str, CalibrationParameter]
    warnings: list[str]


class CalibrateResponse(TypedDict, total=False):
    """Response of ``POST /calibrate``: ``vehicle`` (``{"base", "pack"}``) and ``state``
    (``{"soc"}``) are accepted by ``/step`` as they are."""

    vehicle: dict[str, Any]
    state: dict[str, Any]
    fit: CalibrationFit


class LiveMessage(TypedDict, total=False):
    """One WebSocket message: a snapshot first, then one ``state`` per accepted step."""

    type: Literal["snapshot", "state"]
    rev: int
    telemetry: Telemetry


Preset = dict[str, Any]
