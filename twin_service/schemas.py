"""The wire contract: request and response models of the HTTP API in one place.

POST /step validates its samples column-wise (see twin_service/step/samples.py) for speed;
`Sample` documents the same rules for OpenAPI and clients.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from twin_service.models import estimator
from twin_service.models.aging import LAYOUT, MODEL_NAMES, MODELS
from twin_service.models.aging.base import OUT_OF_RANGE_STRESSORS
from twin_service.models.state import (
    DERIVED,
    MAX_REV,
    PACK,
    STATE_SCHEMA_VERSION,
    StateBlock,
    StateField,
)
from twin_service.presets import ID_RE, VehicleRef

AgingModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]
OutOfRangeStressor = Literal[OUT_OF_RANGE_STRESSORS]  # type: ignore[valid-type]
# 1..64 of [A-Za-z0-9._-], not only dots (presets.ID_PATTERN). Compiled: pydantic then uses
# Python's re, which has the look-ahead, and every check of a vehicle id (pydantic, FastAPI
# path and query parameters, re.compile in the fast paths) shares this one pattern object.
VEHICLE_ID_PATTERN = ID_RE
VehicleId = Annotated[str, Field(pattern=VEHICLE_ID_PATTERN, examples=["ev-1"])]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Motor(_Wire):
    torque_nm: float = Field(ge=-1e5, le=1e5, description="shaft torque, motoring > 0")
    speed_rad_s: float = Field(ge=-1e5, le=1e5, description="shaft speed")


class Sample(_Wire):
    """One input sample, held constant over `dt_s`. Exactly one of motors / power_kw /
    current_a."""

    dt_s: float = Field(
        ge=1e-6, le=86400, description="s; at least 1 us (shorter steps underflow the laws)"
    )
    motors: list[Motor] | None = Field(None, max_length=16)
    power_kw: float | None = Field(
        None, ge=-10000, le=10000, description="terminal power, discharge > 0"
    )
    current_a: float | None = Field(
        None, ge=-1e5, le=1e5, description="pack current, discharge > 0"
    )
    wheel_speed_m_s: float | None = Field(None, ge=-150, le=150)
    throttle: float | None = Field(None, ge=0, le=1)
    brake: float | None = Field(None, ge=0, le=1)
    ambient_c: float | None = Field(None, ge=-60, le=80)
    aux_kw: float | None = Field(
        None, ge=0, le=100, description="auxiliary load, not with current_a"
    )
    charging: bool | None = Field(
        None, description="plugged in: a negative power_kw is the charger's supply"
    )
    precondition: bool | None = Field(
        None, description="thermal management heats the pack for a fast charge"
    )
    measured_voltage_v: float | None = Field(
        None, ge=0, le=10000, description="measured pack terminal voltage (V)"
    )
    measured_temperature_c: float | None = Field(
        None, ge=-60, le=150, description="measured pack temperature (degC)"
    )
    measured_soc: float | None = Field(
        None, ge=0, le=1, description="the battery management's SOC (0..1)"
    )


def _columns_of(model: type[BaseModel], name: str, doc: str, **extra: Any) -> type[BaseModel]:
    """A model with one array per field of `model`, each item the field's type (bounds kept)
    or null."""
    fields: dict[str, Any] = {}
    for key, f in model.model_fields.items():
        if key in extra:
            continue
        item = f.annotation
        if f.metadata:
            item = Annotated[(item, *f.metadata)]  # type: ignore[assignment]
        description = "one per sample" + (f" ({f.description})" if f.description else "")
        if f.is_required():
            fields[key] = (list[item], Field(min_length=1, description=description))  # type: ignore[valid-type]
        else:
            fields[key] = (list[item | None] | None, Field(None, description=description))  # type: ignore[valid-type]
    fields.update(extra)
    base = model.__base__ if issubclass(model, _Wire) else BaseModel
    return create_model(name, __base__=base, __doc__=doc, **fields)


MotorColumns = _columns_of(Motor, "MotorColumns", "One motor's torque and speed per sample.")
SampleColumns = _columns_of(
    Sample,
    "SampleColumns",
    "The samples as columns: arrays of equal length, null where a sample has no value; the "
    "same rules as the rows (`Sample`).",
    motors=(
        list[MotorColumns] | None,  # type: ignore[valid-type]
        Field(None, min_length=1, max_length=16, description="every motor, one array each"),
    ),
)


class SensorOverrides(_Wire):
    """Sensor errors (1 sigma) that replace the vehicle's `sensors` for one request."""

    voltage_std_v: float | None = Field(None, gt=0, le=100)
    voltage_bias_v: float | None = Field(None, ge=0, le=100)
    current_std_a: float | None = Field(None, ge=0, le=1000)
    current_bias_a: float | None = Field(None, ge=0, le=1000)
    temperature_std_c: float | None = Field(None, gt=0, le=50)
    soc_std: float | None = Field(None, gt=0, le=1)


class EstimatorOptions(_Wire):
    """The filter's prior uncertainty when it starts (first measurement, or `reset`), and the
    innovation gate."""

    initial_soc_std: float = Field(0.25, gt=0, le=1, description="the twin's SOC, 1 sigma")
    initial_soh_std: float = Field(0.1, gt=0, le=1, description="its capacity fraction")
    initial_resistance_factor_std: float = Field(0.3, gt=0, le=10)
    gate_sigma: float = Field(
        5.0, ge=1, le=100, description="measurements beyond this many sigma are rejected"
    )
    reset: bool = Field(False, description="restart the filter from the twin's state")


class StepOptions(_Wire):
    demo_mode: bool = False
    time_multiplier: float | None = Field(
        None, ge=1, le=1e6, description="aging time per simulated second; 10000 in demo mode"
    )
    aging_model: AgingModelName | None = Field(
        None, description="default: the preset's pack.aging_model; seed in demo mode"
    )
    trace: bool = False
    trace_format: Literal["rows", "columns"] = Field(
        "rows", description="columns: the trace as one array per field (TraceColumns)"
    )
    store: bool = Field(
        True, description="false: compute only (a what-if run); nothing stored or published"
    )
    replace: bool = Field(
        False,
        description="restart this vehicle's twin from the given state even when the store "
        "holds a newer one (no rev check)",
    )
    estimate: bool = Field(
        True,
        description="correct the twin with the samples' measurements (state estimator); "
        "false ignores them and carries state.estimator unchanged",
    )
    assimilate: bool = Field(
        False,
        description="re-anchor the aging model to the estimated capacity and resistance once "
        "their uncertainty is small (SOH std < 1 %-point, resistance factor std < 0.05)",
    )
    sensors: SensorOverrides | None = Field(
        None, description="sensor errors for this request (default: the vehicle's sensors)"
    )
    estimator: EstimatorOptions | None = Field(
        None, description="the filter's start (when it starts or is reset) and its gate"
    )


def _exact_int(v: Any) -> Any:
    """An integer literal takes an integer only: not 1.0 and not true (which equal 1)."""
    if type(v) is not int:
        raise ValueError("Input should be an integer")
    return v


Direction = Annotated[Literal[-1, 0, 1], BeforeValidator(_exact_int)]
SchemaVersion = Annotated[
    Literal[STATE_SCHEMA_VERSION],  # type: ignore[valid-type]
    BeforeValidator(_exact_int),
]


def _state_field(f: StateField) -> tuple[Any, Any]:
    """A state field on the wire: numbers only (strict: no booleans or strings)."""
    desc = f"{f.description} [{f.unit}]"
    if f.direction:
        return Direction, Field(description=desc)
    high = f.high if f.high < 1e308 else None
    return float, Field(description=desc, ge=f.low, le=high, strict=True)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _block_model(block: StateBlock) -> type[BaseModel]:
    """The wire model of one aging model's state fields (a field's group nests it)."""
    plain: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for f in block.fields:
        target = plain if f.group is None else groups.setdefault(f.group, {})
        target[f.name] = _state_field(f)
    for group, members in groups.items():
        sub = create_model(f"{_camel(block.owner)}{_camel(group)}", __base__=_Wire, **members)
        plain[group] = (sub, ...)
    return create_model(f"{_camel(block.owner)}State", __base__=_Wire, **plain)


AgingState: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "AgingState",
    __base__=_Wire,
    __doc__="Each aging model's internal states; a model missing here starts fresh.",
    **{
        b.owner: (_block_model(b) | None, Field(None, description=MODELS[b.owner].title))
        for b, _ in LAYOUT.aging_blocks()
    },
)


class EstimatorComponentWire(_Wire):
    """One Gaussian of the estimator's mixture over SOC (present while SOC is not yet known
    well enough for one Gaussian)."""

    log_weight: float = Field(ge=-1e6, le=0, strict=True, description="0: the most likely")
    mean: list[float] = Field(
        min_length=estimator.NX,
        max_length=estimator.NX,
        description=f"over ({', '.join(estimator.COVARIANCE_ORDER)})",
    )
    covariance: list[float] = Field(
        min_length=estimator.N_COV,
        max_length=estimator.N_COV,
        description="upper triangle, row by row, in the order of mean",
    )


class EstimatorStateWire(_Wire):
    """The state estimator: its parameters, covariance and counters (written by the service;
    absent until a step carries measurements)."""

    soh: float = Field(ge=0.05, le=1.5, strict=True, description="estimated capacity fraction")
    resistance_factor: float = Field(ge=0.2, le=20, strict=True)
    current_bias_a: float = Field(
        ge=-1e5, le=1e5, strict=True, description="estimated current-sensor offset"
    )
    covariance: list[float] = Field(
        min_length=estimator.N_COV,
        max_length=estimator.N_COV,
        description=f"upper triangle, row by row, over ({', '.join(estimator.COVARIANCE_ORDER)})",
    )
    residual_ms_v2: float = Field(
        ge=0, le=1e8, strict=True, description="mean square voltage residual (5-minute window)"
    )
    accepted: int = Field(ge=0, le=MAX_REV, strict=True)
    rejected: int = Field(ge=0, le=MAX_REV, strict=True)
    rejected_run: int = Field(ge=0, le=MAX_REV, strict=True)
    components: list[EstimatorComponentWire] | None = Field(
        None,
        min_length=2,
        max_length=estimator.M_MAX,
        description="the Gaussian mixture over SOC while there is one (soh, covariance and the "
        "twin's soc are then its moments)",
    )


PackStateWire: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "PackStateWire",
    __base__=_Wire,
    __doc__="Everything needed to continue. soh, resistance_factor and cycle_count are "
    "derived; older schema versions are migrated on read.",
    schema_version=(SchemaVersion, Field(description="exactly the integer the service writes")),
    rev=(
        int | None,
        Field(
            None,
            ge=0,
            le=MAX_REV,
            strict=True,
            description="the rev it was stored at (absent: not stored)",
        ),
    ),
    **{f.name: _state_field(f) for f in PACK.fields},
    **{
        name: (float, Field(ge=low, le=high if high < 1e308 else None, description=d, strict=True))
        for name, (low, high, d) in DERIVED.items()
    },
    aging=(AgingState, ...),
    estimator=(EstimatorStateWire | None, Field(None, description="the state estimator")),
)


class PackSeed(_Wire):
    """A new pack; omitted fields take defaults (soc 0.85, temperature = ambient, soh 1)."""

    soc: float = Field(0.85, ge=0, le=1, strict=True)
    temperature_c: float | None = Field(None, ge=-60, le=150, strict=True)
    soh: float = Field(1.0, gt=0, le=1, strict=True)
    resistance_factor: float = Field(1.0, ge=1, le=10, strict=True)


class StepRequest(_Wire):
    vehicle_id: VehicleId = Field(
        "default",
        description="the twin this step belongs to; give each vehicle its own (a step without "
        "one goes to the twin named `default`)",
    )
    vehicle: VehicleRef | None = Field(
        None,
        description="a preset id from GET /vehicles/presets (default: the service's "
        "default_vehicle), a full vehicle of that shape, or {base, ...overrides}",
    )
    state: PackStateWire | PackSeed | None = None
    samples: Annotated[list[Sample], Field(min_length=1)] | SampleColumns = Field(  # type: ignore[valid-type]
        description="rows (a list of samples) or columns (an object of equal-length arrays)"
    )
    options: StepOptions = Field(default_factory=StepOptions)


class StepEnvelope(_Wire):
    """StepRequest without the samples (validated column-wise)."""

    vehicle_id: VehicleId = "default"
    vehicle: VehicleRef | None = None
    state: dict[str, Any] | None = None
    samples: Any = None
    options: StepOptions = Field(default_factory=StepOptions)


class Telemetry(BaseModel):
    """The seed's live_data.json record plus vehicle_id, rev, resistance and power limits."""

    model_config = ConfigDict(extra="allow")

    timestamp: str
    elapsed_seconds: float
    simulated_days: float
    simulated_years: float
    soc: float = Field(description="%")
    soh: float = Field(description="%")
    temperature: float = Field(description="degC")
    voltage: float = Field(description="V")
    current: float = Field(description="A, discharge > 0")
    power_kw: float = Field(description="terminal power, discharge > 0")
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
    power_limited: bool = Field(description="a limit cut the last sample's demand")
    tms_kw: float = Field(description="thermal management's electrical power (last sample)")
    tms_energy_kwh: float = Field(description="thermal management's energy so far")
    aging_out_of_range: bool = Field(
        description="a step ran outside the aging model's fitted range (GET /models)"
    )
    aging_out_of_range_stressors: list[OutOfRangeStressor] = Field(
        description="which stressors left the range"
    )
    soc_std: float | None = Field(
        None, description="%-points, the estimator's SOC uncertainty (null: no estimator)"
    )
    measured_voltage: float | None = Field(None, description="V, last sample's measurement")
    voltage_residual: float | None = Field(None, description="V, measured - modelled")
    soh_estimated: float | None = Field(None, description="%, the estimator's SOH")
    soh_estimated_std: float | None = Field(None, description="%-points")
    resistance_factor_estimated: float | None = None
    measurements_rejected: int | None = Field(
        None, description="measurements the gate rejected in this step"
    )


class HistoryBucket(BaseModel):
    """GET /vehicles/{id}/history?every=: the records of one bucket. Null: no value in it."""

    vehicle_id: str
    timestamp: str = Field(description="the bucket's start (UTC)")
    count: int = Field(description="records in the bucket")
    rev: int = Field(description="the last rev in the bucket")
    soc: float | None = Field(description="%, mean")
    soc_min: float | None
    soc_max: float | None
    soh: float | None = Field(description="%, mean")
    temperature: float | None = Field(description="degC, mean")
    temperature_min: float | None
    temperature_max: float | None
    voltage: float | None = Field(description="V, mean")
    current: float | None = Field(description="A, mean")
    power_kw: float | None = Field(description="mean, discharge > 0")
    power_kw_min: float | None
    power_kw_max: float | None
    ambient_c: float | None = Field(description="degC, mean")
    resistance_factor: float | None = Field(description="mean")
    total_distance_km: float | None = Field(description="the highest in the bucket")
    energy_throughput_kwh: float | None = Field(description="the highest in the bucket")
    cycle_count: float | None = Field(description="the highest in the bucket")
    simulated_days: float | None = Field(description="the highest in the bucket")
    tms_energy_kwh: float | None = Field(description="the highest in the bucket")


class TraceRow(BaseModel):
    t_s: float
    soc: float
    voltage: float
    current: float
    power_kw: float
    temperature: float
    soh: float
    tms_kw: float
    power_limited: bool
    soc_std: float | None = Field(None, description="with an estimator")
    measured_voltage: float | None = None
    voltage_residual: float | None = None
    soh_estimated: float | None = None
    resistance_factor_estimated: float | None = None
    rejected: bool | None = None


TraceColumns = _columns_of(
    TraceRow, "TraceColumns", "The trace as columns (options.trace_format: columns)."
)


class Estimate(BaseModel):
    """The state estimator after the step (fractions for soc and soh)."""

    soc: float
    soc_std: float
    soh: float
    soh_std: float
    resistance_factor: float
    resistance_factor_std: float
    voltage_rms_residual_v: float | None = Field(
        description="over the last ~5 minutes of voltage measurements"
    )
    temperature_c: float
    temperature_std_c: float
    current_bias_a: float = Field(description="estimated current-sensor offset")
    current_bias_std_a: float
    model_soh: float = Field(description="the aging model's SOH, for comparison")
    model_resistance_factor: float
    accepted: int = Field(description="measurements used in this step")
    rejected: int = Field(description="measurements the gate rejected in this step")
    assimilated: bool = Field(description="the aging model now follows the estimate")


class StepResponse(BaseModel):
    vehicle_id: str
    rev: int
    state: PackStateWire
    telemetry: Telemetry
    trace: list[TraceRow] | TraceColumns | None = None  # type: ignore[valid-type]
    estimate: Estimate | None = Field(None, description="null without measurements")


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    current_rev: int | None = Field(None, description="with rev_conflict: the stored rev")


class ErrorResponse(BaseModel):
    detail: list[ErrorItem]


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class UsageProfile(_Wire):
    """Daily usage. Omitted fields come from the vehicle's observed history (with
    `vehicle_id`) or from defaults."""

    daily_km: float | None = Field(None, ge=0, le=2000)
    wh_per_km: float | None = Field(None, gt=0, le=2000, description="at the pack terminals")
    soc_min: float | None = Field(None, ge=0, le=1)
    soc_max: float | None = Field(None, ge=0, le=1)
    ambient_c: float | None = Field(None, ge=-40, le=60)
    charge_c_rate: float | None = Field(None, gt=0, le=5)
    dc_fast_share: float | None = Field(None, ge=0, le=1)


class ResolvedUsage(BaseModel):
    """The usage the forecast assumed; `source` says where each figure came from. Figures
    from history are in the twin's simulated time (never aging-accelerated): daily_km after a
    whole simulated day, charging habits from the charging records."""

    daily_km: float
    wh_per_km: float
    soc_min: float
    soc_max: float
    ambient_c: float
    charge_c_rate: float
    dc_fast_share: float
    source: dict[str, Literal["request", "history", "default", "policy"]]


class ForecastItem(_Wire):
    vehicle_id: VehicleId | None = Field(None, description="start from its latest state")
    state: dict[str, Any] | None = Field(
        None, description="a /step state (or seed); wins over vehicle_id's state"
    )
    vehicle: VehicleRef | None = None
    usage: UsageProfile = Field(default_factory=UsageProfile)


class ForecastRequest(ForecastItem):
    years: float = Field(10.0, gt=0, le=50)
    aging_model: AgingModelName | None = Field(
        None,
        description="default: the model the vehicle was last stepped with, else the preset's",
    )
    compare_models: bool = Field(
        False, description="also forecast with every physical aging model (`by_model`)"
    )


MAX_POLICIES = 8


class Policy(_Wire):
    """A charging or software policy applied to the vehicle's usage. Omitted fields keep the
    usage as it is; a policy with only a name is the usage as shown."""

    name: str = Field(min_length=1, max_length=64)
    charge_limit: float | None = Field(
        None, ge=0.5, le=1.0, description="highest SOC any charge goes to (caps soc_max)"
    )
    dc_fast_share: float | None = Field(
        None, ge=0, le=1, description="share of the charged energy from DC fast charging"
    )
    max_discharge_kw: float | None = Field(
        None, ge=1, le=10_000, description="battery power cap while driving (an OTA derate)"
    )
    preconditioning: bool | None = Field(
        None,
        description="bring the pack to its preconditioning target before a DC fast "
        "charge (default true)",
    )


def _unique_names(policies: list[Policy] | None) -> list[Policy] | None:
    names = [p.name for p in policies or []]
    if len(set(names)) != len(names):
        raise ValueError("policy names must be unique")
    return policies


class Warranty(_Wire):
    years: float = Field(8.0, gt=0, le=50, description="warranty age")
    soh: float = Field(0.7, gt=0, lt=1, description="SOH the warranty guarantees at that age")


class ForecastPoint(BaseModel):
    years: float
    soh: float
    resistance_factor: float


class ModelForecast(BaseModel):
    aging_model: str
    points: list[ForecastPoint]
    soh_in_2_years: float
    years_to_80: float | None = Field(description="null when SOH stays above 80 % for 50 years")
    fade_pct_per_year: float = Field(description="mean SOH loss over the horizon, %-points/year")


class ModelBand(BaseModel):
    """[lowest, highest] over the physical models (null: beyond the 50-year horizon)."""

    soh_in_2_years: list[float]
    years_to_80: list[float | None]
    fade_pct_per_year: list[float]


class ForecastResponse(ModelForecast):
    vehicle_id: str | None
    usage: ResolvedUsage
    by_model: list[ModelForecast] | None = Field(
        None, description="with compare_models: the same usage under each physical model"
    )
    band: ModelBand | None = Field(
        None, description="with compare_models: the spread of by_model, the model uncertainty"
    )


class ForecastCompareRequest(ForecastItem):
    years: float = Field(10.0, gt=0, le=50)
    aging_model: AgingModelName | None = Field(
        None,
        description="default: the model the vehicle was last stepped with, else the preset's",
    )
    policies: Annotated[list[Policy], AfterValidator(_unique_names)] = Field(
        min_length=1, max_length=MAX_POLICIES
    )
    warranty: Warranty = Field(default_factory=Warranty)


class Duty(BaseModel):
    """The pack's day under a policy (models/duty.py): C-rates, and hours per day and mean
    pack temperature of each operating period; the rest of the day the pack is at ambient."""

    drive_c_rate: float = Field(description="1/h, mean while driving")
    ac_c_rate: float = Field(description="1/h, of AC charging (at most what the pack accepts)")
    dc_c_rate: float = Field(description="1/h, mean of DC fast charging (derated)")
    hours_per_day: dict[str, float]
    temperature_c: dict[str, float]


class PolicyBand(ModelBand):
    soh_at_warranty: list[float]


class PolicyForecast(ModelForecast):
    name: str
    policy: Policy
    usage: ResolvedUsage = Field(description="the usage with the policy applied")
    duty: Duty
    soh_at_warranty: float
    below_warranty: bool = Field(description="SOH at the warranty age below its threshold")
    by_model: list[ModelForecast] = Field(description="the same policy under each physical model")
    band: PolicyBand = Field(description="the spread of by_model, the model uncertainty")


class ForecastCompareResponse(BaseModel):
    vehicle_id: str | None
    years: float
    warranty: Warranty
    usage: ResolvedUsage = Field(description="the usage the vehicle has shown (or was given)")
    policies: list[PolicyForecast]


class FleetForecastRequest(_Wire):
    items: list[ForecastItem] = Field(
        min_length=1,
        max_length=100_000,
        description="at most max_forecast_items (setting, default 10,000); vehicles x weekly "
        "steps at most max_forecast_work, points returned at most max_forecast_points",
    )
    years: float = Field(10.0, gt=0, le=50)
    aging_model: AgingModelName | None = Field(
        None, description="default: each vehicle's last model, else its preset's"
    )
    include_points: bool = False
    policies: Annotated[list[Policy] | None, AfterValidator(_unique_names)] = Field(
        None,
        max_length=MAX_POLICIES,
        description="also forecast every vehicle under each policy (`policies` in the response)",
    )
    warranty: Warranty = Field(default_factory=Warranty)


class FleetForecastResult(BaseModel):
    vehicle_id: str | None
    aging_model: str
    soh_in_2_years: float
    years_to_80: float | None = Field(description="null when not reached within the horizon")
    fade_pct_per_year: float
    soh_at_warranty: float
    points: list[ForecastPoint] | None = None


class WarrantyShare(Warranty):
    vehicles: int
    vehicles_below: int = Field(description="projected below `soh` at `years`")
    share_below: float


class FleetPolicyResult(BaseModel):
    name: str
    policy: Policy
    results: list[FleetForecastResult]
    warranty: WarrantyShare
    mean_fade_pct_per_year: float
    mean_soh_at_warranty: float


class FleetForecastResponse(BaseModel):
    years: float
    results: list[FleetForecastResult]
    warranty: WarrantyShare = Field(description="the fleet as it is used (no policy)")
    policies: list[FleetPolicyResult] | None = None


class AgingValidity(BaseModel):
    cycling_temperature_c: list[float] = Field(description="[min, max] degC while cycling")
    dod: list[float] = Field(description="[min, max] depth of a cycle the model was fitted on")
    max_charge_c_rate: float
    max_discharge_c_rate: float
    note: str


class AgingStateField(BaseModel):
    name: str
    unit: str
    description: str


class AgingModelInfo(BaseModel):
    name: AgingModelName
    title: str
    cell: str
    sources: list[str]
    validity: AgingValidity | None = Field(description="null for the demo model")
    outputs: list[Literal["capacity", "resistance"]]
    state: list[AgingStateField] = Field(description="the model's fields under state.aging")
