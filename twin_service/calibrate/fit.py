"""Pack parameters fitted to a log's measured terminal voltage (numpy/scipy only, no web code).

The model is the twin's own (`pack.simulate`) with six parameters changed:

- capacity: a factor on `capacity_ah`;
- R0 and R1: factors k0, k1 on the two parts of the resistance maps (which hold R0 + R1, R0
  being the share `r0_fraction` = f), so the maps scale by k0 f + k1 (1 - f) and the share
  becomes k0 f / (k0 f + k1 (1 - f));
- tau1 of the RC branch;
- an offset on the cell OCV table (V per cell; the pack EMF is cells_series x (OCV + hysteresis));
- the SOC at the start of the log, a nuisance parameter: fitted by default even from a full
  state (a twin's SOC drifts, and a wrong start SOC would bias capacity and OCV offset);
  callers who trust the state's SOC leave it out of the parameters to fit.

Where the log has measured temperatures the model's pack temperature follows them (the
resistance depends strongly on it); elsewhere the twin's thermal model runs as in /step.

`scipy.optimize.least_squares` (trust region reflective, bounds) minimises the voltage
residuals of the samples that carry a measurement. The factors and tau1 are fitted as
logarithms, so their standard errors are relative ones. Standard errors come from the
Jacobian at the solution, s^2 (J^T J)^-1 (Gauss-Newton; white residuals assumed, so they are
optimistic where the model's own error dominates).

Identifiability: a parameter whose standard error exceeds its tolerance (TOLERANCE), or that
lies on a near-singular direction of J^T J (variance inflation above MAX_VIF: the log cannot
tell it apart from another parameter), is not identified. The worst one is held at its
nominal value and the rest refitted, until every free parameter passes; capacity is held from
the start when the log moves the SOC by less than MIN_SOC_SWING. Judging estimability by
sensitivities scaled with each parameter's tolerance and by their collinearity follows Yao et
al. (2003), "Modeling ethylene/butene copolymerization with multi-site catalysts: parameter
estimability and experimental design", Polymer Reaction Engineering 11(3); here it is done by
backward elimination.

The work is bounded: every model run is counted against MAX_RUNS and MAX_WORK_SUBSTEPS, and a
log too long for even MIN_RUNS runs is refused before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import least_squares

from twin_service.models import kernel
from twin_service.models.laws import cell_resistance
from twin_service.models.pack import (
    MAX_SUBSTEPS_PER_REQUEST,
    AgingSettings,
    DriveInput,
    PackParams,
    PackState,
    simulate,
)

PARAMETERS = ("capacity_ah", "r0_ohm", "r1_ohm", "tau1_s", "ocv_offset_v", "initial_soc")
UNITS = {"capacity_ah": "Ah", "r0_ohm": "ohm", "r1_ohm": "ohm", "tau1_s": "s",
         "ocv_offset_v": "V", "initial_soc": "1"}  # fmt: skip
CAP, R0, R1, TAU, OCV, SOC = range(6)
_LOG = (True, True, True, True, False, False)  # fitted as log(value)
# Standard error (in the fitted coordinate: relative for the log ones, V per cell, SOC) above
# which a parameter counts as not identified.
TOLERANCE = np.array([0.10, 0.10, 0.10, 0.25, 0.01, 0.05])
# Variance inflation (J^T J in correlation form, inverted, diagonal) above which a parameter
# is confounded with others: its standard error is 100 times what it would be alone (the
# parameters' correlation is beyond 1 - 5e-5). A well-posed fit of a drive log stays below 100.
MAX_VIF = 1e4
MIN_SOC_SWING = 0.05  # capacity needs the log to move the SOC at least this much
# Default bounds in the fitted parameters' natural units: capacity, R0 and R1 as factors on
# the nominal, tau1 (s), OCV offset (V per cell), initial SOC.
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "capacity_ah": (0.3, 2.0),
    "r0_ohm": (0.1, 10.0),
    "r1_ohm": (0.05, 20.0),
    "tau1_s": (0.5, 3600.0),
    "ocv_offset_v": (-0.2, 0.2),
    "initial_soc": (0.0, 1.0),
}
MAX_RUNS = 250  # model runs per calibration, Jacobians included (a good fit takes 60-100)
MIN_RUNS = 60  # a fit of six parameters needs about this many
# Model sub-steps over all runs: 0.8-2.5 us each (power demands cost the most), so at most
# ~3-7 s of model time; a 2-hour 1 Hz log (7,200 sub-steps per run) gets all MAX_RUNS, and
# the longest log taken (MAX_WORK_SUBSTEPS / MIN_RUNS sub-steps) is ~14 hours at 1 Hz.
MAX_WORK_SUBSTEPS = 3_000_000
RESERVED_RUNS = len(PARAMETERS) + 2
MIN_MEASURED = 20  # samples with a measured voltage
MAX_TRIES = len(PARAMETERS) + 1  # fits: the first and one after each parameter held
# Temperature followed from the log: a conductance to the (measured) "ambient" this many times
# the heat capacity per second pins the pack to it within milliseconds.
FOLLOW_RATE_PER_S = 1000.0
DIFF_STEP = 1e-6  # relative finite-difference step of the Jacobian
CUT_TOLERANCE, CUT_TOLERANCE_A = 0.01, 0.1  # a logged current cut by more is reported
BAD_RESIDUAL_V = 1e3  # stands in for a non-finite model voltage


class CalibrationInputError(ValueError):
    """The log cannot be calibrated as sent; `kind` is the error type for the API."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _OutOfRuns(Exception):
    pass


@dataclass(frozen=True)
class Log:
    """What the fit replays: the drive from the start state, and the measured columns (NaN
    where a sample has no measurement)."""

    drive: DriveInput
    state: PackState
    aging: AgingSettings
    voltage_v: np.ndarray
    temperature_c: np.ndarray


@dataclass(frozen=True)
class Estimate:
    value: float
    std: float | None  # None where not fitted
    unit: str
    nominal: float
    identified: bool


@dataclass
class Fit:
    """The outcome. `theta` holds the fitted coordinates (log factors, log tau1, OCV offset,
    initial SOC); `estimates` the reported values: capacity (pack Ah) and R0/R1 (pack ohm at
    25 degC and 50 % SOC of the discharge map) as the log shows them, i.e. including the start
    state's SOH and resistance factor."""

    theta: np.ndarray
    estimates: dict[str, Estimate]
    rms_before_v: float
    rms_after_v: float
    samples: int
    warnings: list[str] = field(default_factory=list)
    runs: int = 0

    @property
    def capacity_factor(self) -> float:
        return math.exp(self.theta[CAP])

    @property
    def r0_factor(self) -> float:
        return math.exp(self.theta[R0])

    @property
    def r1_factor(self) -> float:
        return math.exp(self.theta[R1])

    @property
    def tau1_s(self) -> float:
        return math.exp(self.theta[TAU])

    @property
    def ocv_offset_v(self) -> float:
        return float(self.theta[OCV])

    @property
    def initial_soc(self) -> float:
        return float(self.theta[SOC])


def scaled_resistance(r0_fraction: float, k0: float, k1: float) -> tuple[float, float]:
    """The factor on a map of R0 + R1 (R0's share `r0_fraction`) that scales R0 by k0 and R1
    by k1, and R0's new share."""
    g = k0 * r0_fraction + k1 * (1.0 - r0_fraction)
    return g, k0 * r0_fraction / g


class _Problem:
    """The model as a function of the six fitted coordinates, with its runs counted."""

    def __init__(self, params: PackParams, log: Log, max_runs: int) -> None:
        self.params = params
        self.log = log
        self.max_runs = max_runs
        self.runs = 0
        self.measured = np.flatnonzero(~np.isnan(log.voltage_v))
        self.target = log.voltage_v[self.measured]
        self.best: tuple[float, np.ndarray] | None = None
        drive, state = log.drive, log.state
        thermal = params.thermal
        temps = log.temperature_c
        if (~np.isnan(temps)).any():
            # The pack follows the measured temperature: the "ambient" is the measurement
            # (held between measurements) and the conductance to it very stiff, as
            # presets.on_cycler(isothermal=True) does. Thermal management's heat pump then sees
            # no lift (its COP is capped); it only matters for power demands.
            followed = _held(temps)
            drive = replace(drive, ambient_c=followed)
            conductance = FOLLOW_RATE_PER_S * thermal.heat_capacity_j_k
            thermal = replace(thermal, conductance_w_k=conductance)
            vec = state.vector.copy()
            vec[kernel.TEMP] = followed[0]
            state = PackState(vec)
        self.drive, self.state, self.thermal = drive, state, thermal

    def params_at(self, theta: np.ndarray) -> PackParams:
        p = self.params
        k0, k1 = math.exp(theta[R0]), math.exp(theta[R1])
        g, fraction = scaled_resistance(p.circuit.r0_fraction, k0, k1)
        t = p.tables
        k_cap = math.exp(theta[CAP])
        tables = replace(
            t,
            ocv_v=tuple(v + float(theta[OCV]) for v in t.ocv_v),
            taper_a=tuple(a * k_cap for a in t.taper_a),  # C-rates of the capacity
            discharge_ohm=tuple(tuple(r * g for r in row) for row in t.discharge_ohm),
            charge_ohm=tuple(tuple(r * g for r in row) for row in t.charge_ohm),
        )
        circuit = replace(p.circuit, r0_fraction=fraction, tau1_s=math.exp(theta[TAU]))
        return replace(
            p,
            capacity_ah=p.capacity_ah * k_cap,
            circuit=circuit,
            thermal=self.thermal,
            tables=tables,
        )

    def run(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Model voltage, current, SOC and limited flags per sample at `theta`."""
        if self.runs >= self.max_runs:
            raise _OutOfRuns
        self.runs += 1
        vec = self.state.vector.copy()
        vec[kernel.SOC] = theta[SOC]
        result = simulate(self.params_at(theta), PackState(vec), self.drive, self.log.aging)
        return result.voltage_v, result.current_a, result.soc, result.limited

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        v = self.run(theta)[0][self.measured]
        r = v - self.target
        r[~np.isfinite(r)] = BAD_RESIDUAL_V
        cost = float(r @ r)
        if self.best is None or cost < self.best[0]:
            self.best = (cost, theta.copy())
        return r


def _held(values: np.ndarray) -> np.ndarray:
    """NaN gaps filled with the previous measurement (the first one before it)."""
    given = np.flatnonzero(~np.isnan(values))
    idx = np.searchsorted(given, np.arange(values.shape[0]), side="right") - 1
    return values[given[np.maximum(idx, 0)]]


def _rms(r: np.ndarray) -> float:
    return float(np.sqrt(np.mean(r * r)))


@dataclass
class _Stats:
    std: np.ndarray  # in the fitted coordinates, per free parameter
    vif: np.ndarray
    corr: np.ndarray
    felt: np.ndarray  # bool: the modelled voltage depends on it at all


def _statistics(jac: np.ndarray, r: np.ndarray, scale: np.ndarray, floor_v: float) -> _Stats:
    """Standard errors s^2 (J^T J)^-1, variance inflation and correlations of the free
    parameters. A tiny ridge keeps an exactly singular J^T J finite: a direction the log does
    not see then gets a huge variance, shared by the parameters that span it in proportion to
    their share (the one with the smaller scaled sensitivity gets the larger)."""
    m, n = jac.shape
    s2 = max(float(r @ r) / max(m - n, 1), floor_v * floor_v)
    jz = jac * scale  # sensitivities per tolerance
    a = jz.T @ jz
    ridge = 1e-12 * max(float(np.trace(a)), 1e-300)
    cov = s2 * np.linalg.inv(a + ridge * np.eye(n))
    std_z = np.sqrt(np.maximum(np.diag(cov), 0.0))
    d = np.sqrt(np.maximum(np.diag(a), 1e-300))
    c = a / np.outer(d, d)
    vif = np.diag(np.linalg.inv(c + 1e-12 * np.eye(n)))
    corr = cov / np.outer(np.maximum(std_z, 1e-300), np.maximum(std_z, 1e-300))
    norms = np.sqrt(np.diag(a))
    felt = norms > 1e-9 * max(float(norms.max()), 1e-300)
    return _Stats(std_z * scale, vif, corr, felt)


def _nominal_theta(params: PackParams, soc: float) -> np.ndarray:
    return np.array([0.0, 0.0, 0.0, math.log(params.circuit.tau1_s), 0.0, soc])


def _bounds(nominal: np.ndarray, bounds: dict[str, tuple[float, float]]) -> np.ndarray:
    """(6, 2) bounds in the fitted coordinates: the defaults narrowed by `bounds`, widened to
    take in the nominal values (a preset's tau1 may lie beyond the defaults)."""
    out = np.empty((6, 2))
    for i, name in enumerate(PARAMETERS):
        lo, hi = DEFAULT_BOUNDS[name]
        if name in bounds:
            lo, hi = max(lo, bounds[name][0]), min(hi, bounds[name][1])
        if _LOG[i]:
            lo, hi = math.log(lo), math.log(hi)
        out[i] = (min(lo, nominal[i]), max(hi, nominal[i]))
    return out


def _reason(free: list[int], stats: _Stats, k: int) -> str:
    """Why free parameter number k is not identified."""
    i = free[k]
    if not stats.felt[k]:
        return "the modelled voltage does not depend on it in this log"
    if stats.vif[k] > MAX_VIF and len(free) > 1:
        row = np.abs(stats.corr[k]).copy()
        row[k] = -1.0
        partner = PARAMETERS[free[int(np.argmax(row))]]
        return f"the log cannot tell it apart from {partner}"
    std = stats.std[k]
    if _LOG[i]:
        return f"the log determines it only to ±{std:.0%} (more than ±{TOLERANCE[i]:.0%})"
    unit = "V per cell" if i == OCV else ""
    return f"the log determines it only to ±{std:.3g} {unit}".rstrip() + (
        f" (more than ±{TOLERANCE[i]:g})"
    )


def _held_warning(name: str, why: str, nominal: float) -> str:
    return f"{name} not identified: {why}; held at its nominal value {nominal:.6g} {UNITS[name]}"


def check_work(drive: DriveInput) -> int:
    """The model's sub-steps per run; raises CalibrationInputError when the log is too long
    for a calibration (or for one run)."""
    mode = (
        np.zeros(len(drive), dtype=np.int64)
        if drive.mode is None
        else np.ascontiguousarray(drive.mode, dtype=np.int64)
    )
    substeps = int(kernel.total_substeps(drive.dt_s, drive.power_w, drive.current_a, mode))
    limit = min(MAX_WORK_SUBSTEPS // MIN_RUNS, MAX_SUBSTEPS_PER_REQUEST)
    if substeps > limit:
        raise CalibrationInputError(
            "too_long",
            f"the samples need {substeps} internal model steps per run and a calibration runs "
            f"the model about {MIN_RUNS} times or more; at most {limit} steps per run fit one "
            "calibration: send a shorter log",
        )
    return substeps


def calibrate(
    params: PackParams,
    log: Log,
    fit: tuple[str, ...] = PARAMETERS,
    bounds: dict[str, tuple[float, float]] | None = None,
) -> Fit:
    """Fit the parameters named in `fit` (the others stay nominal) to the log's measured
    voltages; see the module docstring for the rules."""
    measured = int((~np.isnan(log.voltage_v)).sum())
    if measured == 0:
        raise CalibrationInputError(
            "no_measurements", "no sample has a measured_voltage_v: nothing to calibrate against"
        )
    if measured < MIN_MEASURED:
        raise CalibrationInputError(
            "too_few_measurements",
            f"{measured} samples have a measured_voltage_v; a calibration needs at least "
            f"{MIN_MEASURED}",
        )
    substeps = check_work(log.drive)
    max_runs = min(MAX_RUNS, MAX_WORK_SUBSTEPS // max(substeps, 1))
    # Runs kept back for a Jacobian at the best point and the final check, if the fit stops.
    problem = _Problem(params, log, max_runs - RESERVED_RUNS)
    soc_nominal = float(log.state.soc)
    nominal = _nominal_theta(params, soc_nominal)
    box = _bounds(nominal, bounds or {})
    warnings: list[str] = []

    v0, i0, _, _ = problem.run(nominal)
    r_before = v0[problem.measured] - problem.target
    cap_as = params.capacity_ah * 3600.0 * max(log.state.soh, 0.05)
    charge = np.concatenate(([0.0], np.cumsum(i0 * log.drive.dt_s))) / cap_as
    swing = float(np.ptp(charge))
    reports = _report_nominals(params, log.state, soc_nominal)

    free = [i for i, name in enumerate(PARAMETERS) if name in fit and box[i, 1] > box[i, 0]]
    if CAP in free and swing < MIN_SOC_SWING:
        free.remove(CAP)
        why = f"the log moves the SOC by only {swing:.1%} (at least {MIN_SOC_SWING:.0%} needed)"
        warnings.append(_held_warning("capacity_ah", why, reports["capacity_ah"]))

    floor_v = 1e-4 * params.cells_series * 3.2  # a voltmeter's resolution, ~0.01 % of the pack
    theta = nominal.copy()
    stats: _Stats | None = None
    r_after = r_before
    stopped = False
    for _ in range(MAX_TRIES):
        if not free:
            problem.max_runs = max_runs
            stats, r_after = None, problem.residuals(theta)
            break
        try:
            problem.best = None
            theta, jac, r_after = _solve(problem, theta, free, box)
        except _OutOfRuns:
            stopped = True
            if problem.best is not None:  # the best point of this fit
                theta = problem.best[1]
            problem.max_runs = max_runs
            jac, r_after = _jacobian(problem, theta, free)
        stats = _statistics(jac, r_after, TOLERANCE[free], floor_v)
        badness = np.maximum(stats.std / TOLERANCE[free], stats.vif / MAX_VIF)
        k = int(np.argmax(badness))
        if badness[k] <= 1.0 or stopped:
            break
        why = _reason(free, stats, k)
        i = free.pop(k)
        warnings.append(_held_warning(PARAMETERS[i], why, reports[PARAMETERS[i]]))
        theta[i] = nominal[i]
    if stopped:
        warnings.append(
            f"the fit stopped after {problem.runs} model runs (the limit for a log this long) "
            "before it converged; its values may still move with more runs"
        )
    for i in free:
        if i == SOC:
            continue  # a log may well start full or empty
        lo, hi = box[i]
        if min(theta[i] - lo, hi - theta[i]) <= 1e-6 * (hi - lo):
            name = PARAMETERS[i]
            warnings.append(
                f"{name} ended at a bound of its range: the model cannot explain the log "
                "with values inside it (check the vehicle, the current's sign and the units)"
            )
    problem.max_runs = max_runs
    cut = _cut_samples(problem, theta)
    if cut:
        warnings.append(
            f"the fitted model cut the logged demand in {cut} samples (its voltage, SOC or "
            "current limits): the replay there is not the logged one"
        )
    estimates = _estimates(params, log.state, theta, free, stats, reports)
    return Fit(
        theta=theta,
        estimates=estimates,
        rms_before_v=_rms(r_before),
        rms_after_v=_rms(r_after),
        samples=measured,
        warnings=warnings,
        runs=problem.runs,
    )


def _cut_samples(problem: _Problem, theta: np.ndarray) -> int:
    """Samples whose demand the model's limits cut at `theta`: a logged current by more than
    CUT_TOLERANCE (the log may sit right at a limit the pack also applied), any power."""
    _, current, _, limited = problem.run(theta)
    logged = problem.drive.current_a
    given = ~np.isnan(logged)
    off = np.abs(current - logged) > CUT_TOLERANCE * np.abs(logged) + CUT_TOLERANCE_A
    return int((limited & np.where(given, off, True)).sum())


def _solve(
    problem: _Problem, theta: np.ndarray, free: list[int], box: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = box[free, 0], box[free, 1]
    margin = 1e-9 * (hi - lo)
    x0 = np.clip(theta[free], lo + margin, hi - margin)
    full = theta.copy()

    def fun(x: np.ndarray) -> np.ndarray:
        full[free] = x
        return problem.residuals(full)

    res = least_squares(
        fun, x0, jac="2-point", bounds=(lo, hi), method="trf", x_scale=TOLERANCE[free],
        diff_step=DIFF_STEP, ftol=1e-8, xtol=1e-8, gtol=1e-8,
    )  # fmt: skip
    out = theta.copy()
    out[free] = res.x
    return out, res.jac, res.fun


def _jacobian(
    problem: _Problem, theta: np.ndarray, free: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Forward-difference Jacobian of the residuals at `theta` and the residuals there."""
    r = problem.residuals(theta)
    jac = np.empty((r.shape[0], len(free)))
    for k, i in enumerate(free):
        h = DIFF_STEP * max(1.0, abs(theta[i]))
        step = theta.copy()
        step[i] += h
        jac[:, k] = (problem.residuals(step) - r) / h
    return jac, r


def _map_resistance(params: PackParams) -> float:
    """The fresh pack's total resistance at 25 degC and 50 % SOC (discharge map)."""
    p, tab = params.kernel_vector, params.kernel_tables
    return float(
        cell_resistance(0.5, 25.0, tab[kernel.T_R_SOC], tab[kernel.T_R_TEMP],
                        tab[kernel.T_R_DIS], p[kernel.P_EA])
    )  # fmt: skip


def _report_nominals(params: PackParams, state: PackState, soc: float) -> dict[str, float]:
    r = _map_resistance(params) * state.resistance_factor
    f = params.circuit.r0_fraction
    return {
        "capacity_ah": params.capacity_ah * state.soh,
        "r0_ohm": r * f,
        "r1_ohm": r * (1.0 - f),
        "tau1_s": params.circuit.tau1_s,
        "ocv_offset_v": 0.0,
        "initial_soc": soc,
    }


def _estimates(
    params: PackParams,
    state: PackState,
    theta: np.ndarray,
    free: list[int],
    stats: _Stats | None,
    nominals: dict[str, float],
) -> dict[str, Estimate]:
    out: dict[str, Estimate] = {}
    for i, name in enumerate(PARAMETERS):
        nominal = nominals[name]
        if i not in free:
            value = nominal  # held (exactly, not through exp(log(x)))
        elif i in (CAP, R0, R1):
            value = nominal * math.exp(theta[i])
        else:
            value = math.exp(theta[i]) if _LOG[i] else float(theta[i])
        std: float | None = None
        if stats is not None and i in free:
            s = float(stats.std[free.index(i)])
            std = abs(value) * s if _LOG[i] else s
        out[name] = Estimate(value, std, UNITS[name], nominal, i in free)
    return out
