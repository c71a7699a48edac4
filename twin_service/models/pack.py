"""A pack advanced over a batch of samples, state in, state out (the public face of the core).

The laws are in laws.py and the aging models' modules, the loop in kernel.py, the state's
fields in state.py and the models' own; this module holds the parameter and state objects
and runs the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np

from twin_service.models import estimator, kernel
from twin_service.models.aging import (
    CAPACITY_TERMS,
    DEFAULT_MODEL,
    LAYOUT,
    MODEL_IDS,
    MODELS,
    OFFSETS,
    RESISTANCE_TERMS,
)
from twin_service.models.aging import resistance_factor as _resistance_factor
from twin_service.models.aging import state_of_health as _state_of_health
from twin_service.models.state import PACK

MAX_SUBSTEPS_PER_REQUEST = 5_000_000


@dataclass(frozen=True)
class CircuitParams:
    """Pack-level circuit parameters; resistances are in PackTables."""

    r0_fraction: float  # share of the resistance that is ohmic (R0); the rest is the RC branch
    tau1_s: float
    activation_energy_j_mol: float  # Arrhenius beyond the resistance map's temperatures
    v_min: float
    v_max: float
    max_discharge_a: float
    max_charge_a: float
    max_discharge_w: float
    max_regen_w: float
    soc_min: float = 0.0  # usable SOC window the limits keep to
    soc_max: float = 1.0
    hysteresis_v: float = 0.0  # OCV hysteresis half-gap per cell
    hysteresis_rate: float = 0.0  # its rate per unit of capacity moved


@dataclass(frozen=True)
class ThermalParams:
    """Lumped pack: C dT/dt = Q_gen - G (T - T_amb) + Q_tms, G = h*A (+ any passive cooling)."""

    heat_capacity_j_k: float
    conductance_w_k: float


@dataclass(frozen=True)
class ThermalManagementParams:
    """An active loop that heats below and cools above set temperatures (laws.tms_power)."""

    heat_below_c: float
    cool_above_c: float
    precondition_c: float  # heating target while plugged in or preconditioning
    gain_w_k: float
    max_heating_w: float
    max_cooling_w: float
    max_electric_w: float
    heat_pump: bool
    carnot_fraction: float
    max_cop: float


@dataclass(frozen=True)
class PackTables:
    """Pack-level tables: cell OCV over SOC; the fresh pack's resistance (ohm) over SOC and
    temperature, one row per temperature, for discharge and charge; the accepted charge current
    (A) over SOC and its derating factor over temperature."""

    ocv_soc: tuple[float, ...]
    ocv_v: tuple[float, ...]
    resistance_soc: tuple[float, ...]
    resistance_temperature_c: tuple[float, ...]
    discharge_ohm: tuple[tuple[float, ...], ...]
    charge_ohm: tuple[tuple[float, ...], ...]
    taper_soc: tuple[float, ...] = (0.0, 1.0)
    taper_a: tuple[float, ...] = (math.inf, math.inf)
    derate_temperature_c: tuple[float, ...] = (25.0,)
    derate_factor: tuple[float, ...] = (1.0,)

    @classmethod
    def uniform(
        cls, resistance_ohm: float, ocv_soc: tuple[float, ...], ocv_v: tuple[float, ...]
    ) -> PackTables:
        """One resistance at every SOC, at 25 degC (Arrhenius elsewhere), no charge taper."""
        row = (resistance_ohm, resistance_ohm)
        return cls(ocv_soc, ocv_v, (0.0, 1.0), (25.0,), (row,), (row,))


@dataclass(frozen=True)
class PackParams:
    cells_series: int
    capacity_ah: float
    circuit: CircuitParams
    thermal: ThermalParams
    tables: PackTables
    tms: ThermalManagementParams | None = None

    @cached_property
    def kernel_vector(self) -> np.ndarray:
        """The parameters in kernel.P_* order, built once per parameter set."""
        c = self.circuit
        vec = np.zeros(kernel.N_PARAMS)
        vec[kernel.P_SERIES] = self.cells_series
        vec[kernel.P_CAP_AH] = self.capacity_ah
        vec[kernel.P_R0_FRAC] = c.r0_fraction
        vec[kernel.P_TAU] = c.tau1_s
        vec[kernel.P_EA] = c.activation_energy_j_mol
        vec[kernel.P_VMIN] = c.v_min
        vec[kernel.P_VMAX] = c.v_max
        vec[kernel.P_IDIS] = c.max_discharge_a
        vec[kernel.P_ICHG] = c.max_charge_a
        vec[kernel.P_PDIS] = c.max_discharge_w
        vec[kernel.P_PREG] = c.max_regen_w
        vec[kernel.P_HEATCAP] = self.thermal.heat_capacity_j_k
        vec[kernel.P_COND] = self.thermal.conductance_w_k
        vec[kernel.P_SOC_MIN] = c.soc_min
        vec[kernel.P_SOC_MAX] = c.soc_max
        vec[kernel.P_HYST_V] = c.hysteresis_v
        vec[kernel.P_HYST_RATE] = c.hysteresis_rate
        t = self.tms
        if t is not None:
            vec[kernel.P_TMS] = 1.0
            vec[kernel.P_HEAT_BELOW] = t.heat_below_c
            vec[kernel.P_COOL_ABOVE] = t.cool_above_c
            vec[kernel.P_PRECOND] = t.precondition_c
            vec[kernel.P_GAIN] = t.gain_w_k
            vec[kernel.P_QHEAT] = t.max_heating_w
            vec[kernel.P_QCOOL] = t.max_cooling_w
            vec[kernel.P_PELEC] = t.max_electric_w
            vec[kernel.P_HEAT_PUMP] = 1.0 if t.heat_pump else 0.0
            vec[kernel.P_CARNOT] = t.carnot_fraction
            vec[kernel.P_COP_MAX] = t.max_cop
        return vec

    @cached_property
    def kernel_tables(self) -> tuple[np.ndarray, ...]:
        """The tables in kernel.T_* order."""
        t = self.tables
        arrays = (
            t.ocv_soc, t.ocv_v, t.resistance_soc, t.resistance_temperature_c,
            [r for row in t.discharge_ohm for r in row], [r for row in t.charge_ohm for r in row],
            t.taper_soc, t.taper_a, t.derate_temperature_c, t.derate_factor,
        )  # fmt: skip
        return tuple(np.ascontiguousarray(a, dtype=np.float64) for a in arrays)


class PackState:
    """The state vector (layout in models.aging.LAYOUT) with named access: the pack's own
    fields as attributes, an aging model's block by name, soh and resistance_factor derived."""

    __slots__ = ("vector", "estimator")

    def __init__(self, vector: np.ndarray, estimator: np.ndarray | None = None) -> None:
        self.vector = vector
        self.estimator = estimator  # models.estimator E_* vector, None: never estimated

    def __getattr__(self, name: str) -> float:
        try:
            return float(self.vector[PACK.index(name)])
        except KeyError:
            raise AttributeError(name) from None

    @property
    def soh(self) -> float:
        return float(_state_of_health(self.vector, CAPACITY_TERMS))

    @property
    def resistance_factor(self) -> float:
        return float(_resistance_factor(self.vector, RESISTANCE_TERMS))

    def block(self, model: str) -> np.ndarray:
        off = LAYOUT.offset(model)
        return self.vector[off : off + len(LAYOUT.block(model))]

    def field(self, model: str, name: str) -> float:
        return float(self.vector[LAYOUT.position(model, name)])

    def __repr__(self) -> str:
        return f"PackState(soc={self.soc:.6g}, soh={self.soh:.6g}, T={self.temperature_c:.4g})"


def new_pack_state(
    soc: float = 0.85,
    temperature_c: float = 25.0,
    soh: float = 1.0,
    resistance_factor: float = 1.0,
    ambient_c: float | None = None,
    aging_model: str = DEFAULT_MODEL,
) -> PackState:
    """A fresh or seeded pack. A seeded capacity or resistance loss is booked in `aging_model`'s
    own fields where it has them (else in the default model's calendar fields), so the model
    continues from it on virtual time."""
    vec = LAYOUT.defaults()
    vec[PACK.index("soc")] = soc
    vec[PACK.index("temperature_c")] = temperature_c
    vec[PACK.index("ambient_c")] = temperature_c if ambient_c is None else ambient_c
    for block, _ in LAYOUT.aging_blocks():
        LAYOUT.fresh_block(block.owner, vec)
    model = MODELS[aging_model]
    default = MODELS[DEFAULT_MODEL]
    for loss, own_field, default_field in (
        (1.0 - soh, model.seed_capacity_field, default.seed_capacity_field),
        (resistance_factor - 1.0, model.seed_resistance_field, default.seed_resistance_field),
    ):
        owner = model.name if own_field is not None else default.name
        name = own_field if own_field is not None else default_field
        assert name is not None
        vec[LAYOUT.position(owner, name)] = loss
    return PackState(vec)


@dataclass(frozen=True)
class AgingSettings:
    model: str = DEFAULT_MODEL
    time_multiplier: float = 1.0


@dataclass
class DriveInput:
    """Columnar inputs, one entry per sample. Exactly one of power_w / current_a is not NaN."""

    dt_s: np.ndarray
    power_w: np.ndarray  # terminal power demand, discharge > 0; NaN where current is given
    current_a: np.ndarray  # terminal current demand, discharge > 0; NaN where power is given
    ambient_c: np.ndarray
    distance_m: np.ndarray
    mode: np.ndarray | None = None  # int64 kernel.MODE_* bits (plugged in, preconditioning)

    def __len__(self) -> int:
        return int(self.dt_s.shape[0])


@dataclass
class Estimation:
    """The state estimator's inputs: measurements per sample (NaN: not measured) and its
    settings (models.estimator S_*). The filter itself travels in PackState.estimator."""

    settings: np.ndarray
    measured_voltage_v: np.ndarray
    measured_temperature_c: np.ndarray
    measured_soc: np.ndarray


@dataclass
class StepResult:
    state: PackState
    # per sample
    t_s: np.ndarray
    soc: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    power_w: np.ndarray
    temperature_c: np.ndarray
    soh: np.ndarray
    resistance_factor: np.ndarray
    limited: np.ndarray
    out_of_range: np.ndarray  # aging.base OUT_OF_RANGE_* flags
    tms_w: np.ndarray  # thermal management's electrical power
    # at the final state
    max_discharge_w: float
    max_regen_w: float
    # with an estimator: per sample (models.estimator EO_* columns)
    estimate: np.ndarray | None = None


def _own_terms(model: str) -> tuple[np.ndarray, np.ndarray]:
    """Vector positions of one model's capacity and resistance terms."""
    m = MODELS[model]
    return (
        np.array(LAYOUT.positions(model, m.capacity_terms), dtype=np.int64),
        np.array(LAYOUT.positions(model, m.resistance_terms), dtype=np.int64),
    )


class IntegrationTooLong(ValueError):
    """The batch needs more internal sub-steps than one request may take."""


def _f64(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == np.float64 and a.flags.c_contiguous else np.ascontiguousarray(a, float)


def simulate(
    params: PackParams,
    state: PackState,
    drive: DriveInput,
    aging: AgingSettings,
    estimation: Estimation | None = None,
) -> StepResult:
    """Integrate the pack over all samples of `drive`, starting from `state`. With
    `estimation` (and a filter in state.estimator) the measurements correct the state after
    each sample (models.estimator)."""
    dt_s, power_w, current_a = _f64(drive.dt_s), _f64(drive.power_w), _f64(drive.current_a)
    # Modes only change anything where thermal management can act.
    if drive.mode is None or params.tms is None:
        mode = np.zeros(dt_s.shape[0], dtype=np.int64)
    else:
        mode = np.ascontiguousarray(drive.mode, dtype=np.int64)
    total = kernel.total_substeps(dt_s, power_w, current_a, mode)
    if total > MAX_SUBSTEPS_PER_REQUEST:
        raise IntegrationTooLong(
            f"the samples need {total} internal steps; at most {MAX_SUBSTEPS_PER_REQUEST} fit "
            "one request, send fewer or shorter samples"
        )
    p = params.kernel_vector
    tab = params.kernel_tables
    s = state.vector.copy()
    out = np.empty((dt_s.shape[0], kernel.N_OUT))
    model_id = MODEL_IDS[aging.model]
    est = None
    eout = None
    args = (dt_s, power_w, current_a, _f64(drive.ambient_c), _f64(drive.distance_m), mode, p,
            tab, s, model_id, int(OFFSETS[model_id]), CAPACITY_TERMS, RESISTANCE_TERMS,
            float(aging.time_multiplier), out)  # fmt: skip
    if estimation is None or state.estimator is None:
        kernel.run(*args)
    else:
        est = state.estimator.copy()
        eout = np.empty((dt_s.shape[0], estimator.N_EO))
        own_capacity, own_resistance = _own_terms(aging.model)
        estimator.run_estimating(
            *args, _f64(estimation.measured_voltage_v), _f64(estimation.measured_temperature_c),
            _f64(estimation.measured_soc), est, _f64(estimation.settings), own_capacity,
            own_resistance, eout,
        )  # fmt: skip
    max_dis, max_reg = kernel.pulse_limits(p, tab, s, CAPACITY_TERMS, RESISTANCE_TERMS)
    elapsed = s[kernel.ELAPSED]
    if dt_s.shape[0] == 1:  # the cumulative sum of one sample is the sample
        t_s = elapsed - (dt_s - dt_s)
    else:
        t_s = elapsed - (np.cumsum(dt_s[::-1])[::-1] - dt_s)
    return StepResult(
        state=PackState(s, est if est is not None else state.estimator),
        t_s=t_s,
        soc=out[:, kernel.O_SOC],
        voltage_v=out[:, kernel.O_V],
        current_a=out[:, kernel.O_I],
        power_w=out[:, kernel.O_P],
        temperature_c=out[:, kernel.O_T],
        soh=out[:, kernel.O_SOH],
        resistance_factor=out[:, kernel.O_RF],
        limited=out[:, kernel.O_LIMITED] > 0.5,
        out_of_range=out[:, kernel.O_FLAGS].astype(np.int64),
        tms_w=out[:, kernel.O_TMS],
        max_discharge_w=float(max_dis),
        max_regen_w=float(max_reg),
        estimate=eout,
    )


def warm_up() -> None:
    """Compile (or load from the cache) the step loop and the forecasts so the first request
    is not slow."""
    from twin_service.models.aging import REGISTRY
    from twin_service.models.aging.base import ForecastStart
    from twin_service.models.forecast import Usage

    drive = DriveInput(np.array([1.0, 1.0]), np.array([1000.0, np.nan]), np.array([np.nan, 1.0]),
                       np.array([25.0, 25.0]), np.zeros(2))  # fmt: skip
    from twin_service.presets import PRESETS, pack_params

    params = pack_params(PRESETS["Model3_2024"])
    one = np.ones(1)
    usage = Usage(one * 40, one * 160, one * 0.2, one * 0.9, one * 20, one * 0.15, one * 0.0)
    drive.mode = np.array([1, 0], dtype=np.int64)
    measured = np.array([340.0, np.nan])
    settings = estimator.settings_vector(0.5, 0.0, 0.5, 0.5, 0.03, 5.0, True)
    estimation = Estimation(settings, measured, measured - 315.0, np.array([np.nan, 0.5]))
    from twin_service.models.duty import pack_duty

    columns = {f.name: getattr(usage, f.name) for f in fields(usage)}
    pack_duty(params, 54.0, columns, one, one * 1e5, np.ones(1, dtype=bool))
    for model in REGISTRY:
        simulate(params, new_pack_state(), drive, AgingSettings(model.name))
        state = new_pack_state()
        state.estimator = estimator.new_estimator(1.0, 1.0, 0.2, 0.1, 0.3, 0.5, 1.0, 0.01, 2.0)
        simulate(params, state, drive, AgingSettings(model.name), estimation)
        start = ForecastStart(np.zeros((1, len(model.state))), np.zeros(1), np.zeros(1))
        model.forecast(start, usage, one * 60.0, 1.0)
