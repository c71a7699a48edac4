"""Section 13: the state estimator (twin_service/models/estimator.py) against known truths.

(a) The twin's own model as the truth: a `Model3_2024` pack with less capacity and more
    resistance than the preset, at another SOC than the filter believes, driven and charged for
    days; the filter sees it only through noisy voltage, temperature and biased current.
(b) PyBaMM's DFN (Prada2013, scaled to the pack) as the truth: the same drive, so the filter
    meets a model that is not its own (validation/peers_estimation.py, in the peers' venv).

Unlike the other sections this one calls the engine in-process (`twin_service.models.pack
.simulate` with an `Estimation`, what `POST /step` runs when samples carry measurements): days
of 1 Hz samples and the filter's priors set exactly, with the truth's arrays beside it. Every
input is seeded, so the section's numbers repeat exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin_service.models import estimator as E
from twin_service.models.pack import (
    AgingSettings,
    DriveInput,
    Estimation,
    PackParams,
    new_pack_state,
    simulate,
)
from twin_service.presets import PRESETS, pack_params
from validation import common
from validation.common import Figure, Section, md_table, signed

VEHICLE = "Model3_2024"
TRUE_SOC0, START_SOC = 0.55, 0.85
TRUE_SOH, TRUE_RF = 0.88, 1.4  # capacity -12 %, resistance +40 %
AMBIENT_C = 25.0
DAYS = 4
FIRST_DRIVE_S, DRIVE_S = 7200, 3600  # 1 Hz
REST_AFTER_DRIVE_S = 1800
REST_DT_S = 60.0
CHARGE_C, CHARGE_TO = 0.3, 0.95  # constant current of the nominal capacity, stopped at SOC
MAX_CHARGE_S = 6 * 3600
DRIVE_SEED, NOISE_SEED, DFN_NOISE_SEED = 1, 7, 11  # day d drives profile DRIVE_SEED + d
# Sensors (1 sigma) and the current sensor's offset; the filter is told the same numbers.
V_STD, I_STD, T_STD, I_BIAS = 0.5, 0.5, 0.5, 1.0
# Filter start: nominal parameters, priors (new_estimator's order after soh, rf).
PRIORS = {"soc_std": 0.25, "soh_std": 0.1, "resistance_factor_std": 0.3,
          "current_bias_std_a": 1.0, "v_rc_std_v": 1.0, "hysteresis_std_v": 0.01,
          "temperature_std_c": 2.0}  # fmt: skip
GATE_SIGMA = 5.0
BMS_SOC_STD = 0.03  # unused: no BMS SOC is fed
CHECKPOINTS = ((300.0, "5 min"), (900.0, "15 min"), (1800.0, "30 min"), (3600.0, "60 min"),
               (86400.0, "1 d"), (None, "end"))  # fmt: skip
CONVERGED = 0.02  # SOC error bound (fraction) for "converged"
# (b): the DFN runs the first drive and the rest after it; the filter's voltage noise is the
# sensor's and a model-mismatch term per cell, over these values (mV per cell).
DFN_MISMATCH_MV = (0.0, 5.0, 10.0, 20.0, 30.0)
OPEN_LOOP_RF = tuple(np.round(np.arange(0.5, 1.2001, 0.05), 2))  # resistance factors tried


def drive_profile(n: int, seed: int) -> np.ndarray:
    """A mixed drive as pack current (A, discharge > 0) at 1 Hz: segments of 5-59 s of
    acceleration (10-200 A), regeneration (5-80 A), standstill or cruise (20-60 A)."""
    rng = np.random.default_rng(seed)
    cur = np.zeros(n)
    k = 0
    while k < n:
        length = int(rng.integers(5, 60))
        options = (rng.uniform(10, 200), rng.uniform(-80, -5), 0.0, rng.uniform(20, 60))
        cur[k : k + length] = options[int(rng.integers(0, 4))]
        k += length
    return cur


def _drive(dt_s: np.ndarray, current_a: np.ndarray) -> DriveInput:
    n = dt_s.shape[0]
    return DriveInput(dt_s, np.full(n, np.nan), current_a, np.full(n, AMBIENT_C), np.zeros(n))


@dataclass
class Truth:
    """The truth's samples: the phase of each ("drive", "charge", "rest"), the applied
    current and what the pack did."""

    phase: list[str]
    bounds: list[int]  # sample index where each phase starts, then the total
    dt_s: np.ndarray
    current_a: np.ndarray
    voltage_v: np.ndarray
    temperature_c: np.ndarray
    soc: np.ndarray
    soh: np.ndarray
    resistance_factor: np.ndarray

    @property
    def t_s(self) -> np.ndarray:
        return np.cumsum(self.dt_s)

    @property
    def resting(self) -> np.ndarray:
        """Samples of the parked phases (contactors open)."""
        out = np.zeros(self.dt_s.shape[0], dtype=bool)
        for kind, a, b in zip(self.phase, self.bounds, self.bounds[1:], strict=False):
            out[a:b] = kind == "rest"
        return out


def twin_truth(
    params: PackParams,
    days: int = DAYS,
    first_drive_s: int = FIRST_DRIVE_S,
    drive_s: int = DRIVE_S,
    day_s: float = 86400.0,
) -> Truth:
    """The twin as the real pack: seeded with TRUE_SOH and TRUE_RF at TRUE_SOC0, then each day
    a drive (the first `first_drive_s`, later `drive_s`), a rest, a CHARGE_C charge to
    CHARGE_TO and a rest to the end of the day (60 s samples while parked)."""
    state = new_pack_state(soc=TRUE_SOC0, soh=TRUE_SOH, resistance_factor=TRUE_RF,
                           temperature_c=AMBIENT_C)  # fmt: skip
    settings = AgingSettings()
    phases: list[str] = []
    runs: list[tuple[np.ndarray, Any]] = []
    elapsed = 0.0

    def run(kind: str, dt: np.ndarray, cur: np.ndarray) -> None:
        nonlocal state, elapsed
        res = simulate(params, state, _drive(dt, cur), settings)
        state = res.state
        elapsed += float(dt.sum())
        phases.append(kind)
        runs.append((dt, res))

    charge_a = -CHARGE_C * params.capacity_ah
    for day in range(days):
        n = first_drive_s if day == 0 else drive_s
        run("drive", np.ones(n), drive_profile(n, DRIVE_SEED + day))
        m = int(REST_AFTER_DRIVE_S / REST_DT_S)
        run("rest", np.full(m, REST_DT_S), np.zeros(m))
        trial = simulate(params, state, _drive(np.ones(MAX_CHARGE_S), np.full(MAX_CHARGE_S,
                         charge_a)), settings)  # fmt: skip
        reached = np.flatnonzero(trial.soc >= CHARGE_TO)
        k = int(reached[0]) + 1 if reached.size else MAX_CHARGE_S
        run("charge", np.ones(k), np.full(k, charge_a))
        m = int(round(((day + 1) * day_s - elapsed) / REST_DT_S))
        if m > 0:
            run("rest", np.full(m, REST_DT_S), np.zeros(m))
    bounds = list(np.cumsum([0] + [dt.shape[0] for dt, _ in runs]))

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name) for _, r in runs])

    return Truth(phases, [int(b) for b in bounds], np.concatenate([dt for dt, _ in runs]),
                 cat("current_a"), cat("voltage_v"), cat("temperature_c"), cat("soc"),
                 cat("soh"), cat("resistance_factor"))  # fmt: skip


@dataclass
class Measured:
    current_a: np.ndarray
    voltage_v: np.ndarray
    temperature_c: np.ndarray


def measure(
    truth_current: np.ndarray,
    truth_voltage: np.ndarray,
    truth_temperature: np.ndarray,
    resting: np.ndarray,
    seed: int,
) -> Measured:
    """What the BMS reports: Gaussian noise on all three, the current offset I_BIAS while the
    contactors are closed; parked, the current reads exactly 0 (the filter then applies no
    offset, models.estimator)."""
    rng = np.random.default_rng(seed)
    n = truth_current.shape[0]
    cur = truth_current + I_BIAS + rng.normal(0.0, I_STD, n)
    volt = truth_voltage + rng.normal(0.0, V_STD, n)
    temp = truth_temperature + rng.normal(0.0, T_STD, n)
    return Measured(np.where(resting, 0.0, cur), volt, temp)


@dataclass
class Estimate:
    soc: np.ndarray
    soc_std: np.ndarray
    soh: np.ndarray
    soh_std: np.ndarray
    resistance_factor: np.ndarray
    residual_v: np.ndarray
    final: np.ndarray  # the estimator vector after the last sample (E_*)
    voltage_std_v: float  # what the filter was told

    def final_std(self, i: int) -> float:
        return E.std(self.final, i)


def run_filter(
    params: PackParams,
    dt_s: np.ndarray,
    measured: Measured,
    bounds: list[int],
    voltage_std_v: float = V_STD,
) -> Estimate:
    """The filter from START_SOC with the preset's nominal capacity and resistance, fed in
    batches (one per phase, each starting from the state the previous one returned)."""
    state = new_pack_state(soc=START_SOC, temperature_c=AMBIENT_C)
    state.estimator = E.new_estimator(1.0, 1.0, *PRIORS.values())
    settings = E.settings_vector(voltage_std_v, 0.0, I_STD, T_STD, BMS_SOC_STD, GATE_SIGMA, False)
    soc, eo = [], []
    for a, b in zip(bounds, bounds[1:], strict=False):
        nan = np.full(b - a, np.nan)
        res = simulate(params, state, _drive(dt_s[a:b], measured.current_a[a:b]),
                       AgingSettings(), Estimation(settings, measured.voltage_v[a:b],
                                                   measured.temperature_c[a:b], nan))  # fmt: skip
        assert res.estimate is not None and res.state.estimator is not None
        state = res.state
        soc.append(res.soc)
        eo.append(res.estimate)
    out = np.concatenate(eo)
    assert state.estimator is not None
    return Estimate(np.concatenate(soc), out[:, E.EO_SOC_STD], out[:, E.EO_SOH],
                    out[:, E.EO_SOH_STD], out[:, E.EO_RF], out[:, E.EO_RESIDUAL],
                    state.estimator.copy(), voltage_std_v)  # fmt: skip


def coulomb_count(
    dt_s: np.ndarray, current_a: np.ndarray, start: float, capacity_ah: float
) -> np.ndarray:
    """SOC after each sample by plain Coulomb counting of `current_a` over `capacity_ah`."""
    return start - np.cumsum(current_a * dt_s) / (3600.0 * capacity_ah)


@dataclass
class Scores:
    """SOC error figures of one run (fractions; times in s from the start)."""

    checkpoints: list[tuple[str, int]]  # (label, sample index)
    converged_s: float | None  # from then on within CONVERGED; None: not by the end
    coverage: float  # share of samples with |error| <= 2 sigma
    coverage_time: float  # the same, weighted by sample duration


def checkpoint_index(t_s: np.ndarray, at_s: float | None) -> int | None:
    """The first sample ending at or after `at_s` (None: the last); None if the run is
    shorter."""
    if at_s is None:
        return t_s.shape[0] - 1
    k = int(np.searchsorted(t_s, at_s - 1e-9))
    return k if k < t_s.shape[0] else None


def converged_after(t_s: np.ndarray, error: np.ndarray, bound: float = CONVERGED) -> float | None:
    """The time after which |error| stays within `bound` to the end: the end of the last
    sample outside it (0 if none is); None if the last sample is outside."""
    out = np.flatnonzero(np.abs(error) > bound)
    if out.size == 0:
        return 0.0
    if out[-1] == error.shape[0] - 1:
        return None
    return float(t_s[out[-1]])


def score(
    t_s: np.ndarray,
    dt_s: np.ndarray,
    error: np.ndarray,
    sigma: np.ndarray,
    checkpoints: tuple[tuple[float | None, str], ...] = CHECKPOINTS,
) -> Scores:
    inside = np.abs(error) <= 2.0 * sigma
    marks = []
    for at, label in checkpoints:
        k = checkpoint_index(t_s, at)
        if k is not None:
            marks.append((label, k))
    return Scores(marks, converged_after(t_s, error), float(inside.mean()),
                  float(np.sum(dt_s * inside) / np.sum(dt_s)))  # fmt: skip


@dataclass
class TwinCase:
    truth: Truth
    estimate: Estimate
    coulomb: np.ndarray
    scores: Scores
    capacity_ah: float


def compute_twin(params: PackParams | None = None, days: int = DAYS, **schedule: Any) -> TwinCase:
    """(a): the twin's truth, its measurements, the filter and Coulomb counting."""
    params = params or pack_params(PRESETS[VEHICLE])
    truth = twin_truth(params, days, **schedule)
    meas = measure(truth.current_a, truth.voltage_v, truth.temperature_c, truth.resting,
                   NOISE_SEED)  # fmt: skip
    est = run_filter(params, truth.dt_s, meas, truth.bounds)
    cc = coulomb_count(truth.dt_s, meas.current_a, START_SOC, params.capacity_ah)
    scores = score(truth.t_s, truth.dt_s, est.soc - truth.soc, est.soc_std)
    return TwinCase(truth, est, cc, scores, params.capacity_ah)


# ------------------------------------------------------------------------------- (b) DFN
def run_peer(worker: str, job: dict[str, Any]) -> dict[str, Any]:
    """One worker of validation.peers_estimation in the peers' venv, or {"skipped": reason}."""
    return common.run_peer("validation.peers_estimation", worker, job)


@dataclass
class DfnCase:
    peer: dict[str, Any]  # the worker's answer, or {"skipped": ...}
    dt_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    soc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    open_loop_mv: np.ndarray = field(default_factory=lambda: np.zeros(0))  # twin - DFN, /cell
    coulomb: np.ndarray = field(default_factory=lambda: np.zeros(0))
    runs: dict[float, tuple[Estimate, Scores]] = field(default_factory=dict)  # by mV per cell
    cells_series: int = 0
    best_fit: tuple[float, float] = (1.0, 0.0)  # (resistance factor, open-loop RMS mV/cell)

    @property
    def t_s(self) -> np.ndarray:
        return np.cumsum(self.dt_s)

    @property
    def correlation_s(self) -> float:
        """Lag (s) at which the open-loop mismatch's autocorrelation over the 1 Hz drive
        first falls below 1/e: how long one sample's model error persists."""
        x = self.open_loop_mv[self.dt_s == 1.0]
        x = x - x.mean()
        var = float(np.dot(x, x))
        for lag in range(1, x.shape[0] // 2):
            if float(np.dot(x[:-lag], x[lag:])) < var / np.e:
                return float(lag)
        return float(x.shape[0] // 2)

    @property
    def chosen_mv(self) -> float:
        """The row whose mismatch m is nearest the measured open-loop RMS."""
        rms = float(np.sqrt(np.mean(self.open_loop_mv**2)))
        return min(self.runs, key=lambda mv: abs(mv - rms))


def dfn_schedule(drive_s: int = FIRST_DRIVE_S) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(dt, current, phase bounds) of (a)'s first drive and the rest after it."""
    m = int(REST_AFTER_DRIVE_S / REST_DT_S)
    dt = np.concatenate([np.ones(drive_s), np.full(m, REST_DT_S)])
    cur = np.concatenate([drive_profile(drive_s, DRIVE_SEED), np.zeros(m)])
    return dt, cur, [0, drive_s, drive_s + m]


def compute_dfn(
    params: PackParams | None = None,
    drive_s: int = FIRST_DRIVE_S,
    mismatch_mv: tuple[float, ...] = DFN_MISMATCH_MV,
) -> DfnCase:
    """(b): the DFN pack's voltage and SOC under the drive; the twin open-loop on the DFN's
    current from the true start (the model mismatch); the filter at each voltage noise."""
    params = params or pack_params(PRESETS[VEHICLE])
    dt, cur, bounds = dfn_schedule(drive_s)
    job = {"current_a": cur.tolist(), "dt_s": dt.tolist(), "capacity_ah": params.capacity_ah,
           "cells_series": params.cells_series, "soc0": TRUE_SOC0,
           "temperature_c": AMBIENT_C}  # fmt: skip
    peer = run_peer("dfn_drive", job)
    if "skipped" in peer:
        return DfnCase(peer)
    volt = np.asarray(peer["voltage_v"])
    applied = np.asarray(peer["current_a"])
    soc = np.asarray(peer["soc"])
    series = params.cells_series

    def open_loop(rf: float) -> np.ndarray:
        st = new_pack_state(soc=TRUE_SOC0, temperature_c=AMBIENT_C, resistance_factor=rf)
        res = simulate(params, st, _drive(dt, applied), AgingSettings())
        return (res.voltage_v - volt) / series * 1000.0

    fits = [(rf, float(np.sqrt(np.mean(open_loop(rf) ** 2)))) for rf in OPEN_LOOP_RF]
    resting = np.zeros(dt.shape[0], dtype=bool)
    resting[bounds[1] :] = True
    # The DFN is isothermal at the ambient: that is the temperature the sensor reads.
    meas = measure(applied, volt, np.full(dt.shape[0], AMBIENT_C), resting, DFN_NOISE_SEED)
    t = np.cumsum(dt)
    runs = {}
    for mv in mismatch_mv:
        v_std = float(np.hypot(V_STD, mv * 1e-3 * series))
        est = run_filter(params, dt, meas, bounds, v_std)
        runs[mv] = (est, score(t, dt, est.soc - soc, est.soc_std))
    return DfnCase(peer, dt, soc, open_loop(1.0),
                   coulomb_count(dt, meas.current_a, START_SOC, params.capacity_ah), runs,
                   series, min(fits, key=lambda f: f[1]))  # fmt: skip


@dataclass
class EstimationData:
    twin: TwinCase
    dfn: DfnCase


def compute() -> EstimationData:
    params = pack_params(PRESETS[VEHICLE])
    return EstimationData(compute_twin(params), compute_dfn(params))


# ---------------------------------------------------------------------------------- report
def _pp(x: float) -> str:
    return signed(x * 100.0, 2)


def _minutes(s: float | None) -> str:
    if s is None:
        return "not by the end"
    return f"{s / 60.0:.1f} min"


def soc_table(
    t_s: np.ndarray, truth: np.ndarray, est: Estimate, coulomb: np.ndarray, scores: Scores
) -> str:
    rows = []
    for label, k in scores.checkpoints:
        rows.append([f"{label} ({t_s[k] / 3600.0:.2f} h)", f"{truth[k]:.4f}", f"{est.soc[k]:.4f}",
                     _pp(est.soc[k] - truth[k]), f"{2 * est.soc_std[k] * 100:.2f}",
                     _pp(coulomb[k] - truth[k])])  # fmt: skip
    return md_table(["time", "true SOC", "estimate", "error pp", "2σ pp",
                     "Coulomb counting error pp"], rows)  # fmt: skip


def render_twin(case: TwinCase) -> tuple[str, list[str]]:
    tr, est, sc = case.truth, case.estimate, case.scores
    fin = est.final
    soh_true, rf_true = float(tr.soh[-1]), float(tr.resistance_factor[-1])
    soh_err = fin[E.E_SOH] - soh_true
    rf_err = fin[E.E_RF] - rf_true
    days = tr.t_s[-1] / 86400.0
    charges = [b - a for k, a, b in zip(tr.phase, tr.bounds, tr.bounds[1:], strict=False)
               if k == "charge"]  # fmt: skip
    err = est.soc - tr.soc
    after = err[tr.t_s > (sc.converged_s or tr.t_s[-1])]
    worst_after = float(np.abs(after).max()) if after.size else float("nan")
    cc_end = case.coulomb[-1] - tr.soc[-1]
    intro = (
        "Unlike the sections above, this one calls the engine in-process: "
        "`twin_service.models.pack.simulate` with an `Estimation` (what `POST /step` runs when "
        "samples carry measurements), so that days of 1 Hz samples, the filter's priors and "
        "the truth sit side by side; every input is seeded.\n\n"
        f"**(a) The twin as the truth.** A `{VEHICLE}` pack ({case.capacity_ah:g} Ah nominal) "
        f"seeded with capacity {signed((TRUE_SOH - 1) * 100, 0)} % and resistance "
        f"{signed((TRUE_RF - 1) * 100, 0)} % (`new_pack_state(soc={TRUE_SOC0}, "
        f"soh={TRUE_SOH}, resistance_factor={TRUE_RF})`), {AMBIENT_C:g} °C ambient, runs "
        f"{days:.0f} days: day 1 a {FIRST_DRIVE_S / 3600:g} h mixed drive, later days "
        f"{DRIVE_S / 3600:g} h (`drive_profile`, 1 Hz, segments of 5–59 s at 10–200 A "
        "discharge, 5–80 A regeneration, standstill or 20–60 A cruise, seed "
        f"{DRIVE_SEED} + day), then {REST_AFTER_DRIVE_S / 60:g} min parked, a "
        f"{CHARGE_C:g} C ({CHARGE_C * case.capacity_ah:.1f} A) constant-current charge to SOC "
        f"{CHARGE_TO:g} ({min(charges) / 60:.0f}–{max(charges) / 60:.0f} min, 1 Hz; the "
        "preset's charge taper trims the last minutes), and parked to the end of the day "
        f"({REST_DT_S:g} s samples); {tr.dt_s.shape[0]} samples. The BMS's measurements "
        f"(seed {NOISE_SEED}): voltage ± {V_STD:g} V, current ± {I_STD:g} A with a "
        f"{signed(I_BIAS, 1)} A offset while the contactors are closed (parked it reads 0), "
        f"temperature ± {T_STD:g} °C (1σ, Gaussian). The filter starts at SOC {START_SOC} with "
        "the preset's nominal capacity and resistance and priors σ "
        f"SOC {PRIORS['soc_std']:g}, capacity {PRIORS['soh_std']:g}, resistance factor "
        f"{PRIORS['resistance_factor_std']:g}, current offset "
        f"{PRIORS['current_bias_std_a']:g} A (`estimator.new_estimator(1.0, 1.0, "
        f"{', '.join(f'{v:g}' for v in PRIORS.values())})`); it is told the sensors' σ above, "
        f"gate {GATE_SIGMA:g}σ, no assimilation into the aging model; each phase is one "
        "batch, chained through the returned state. Coulomb counting (the baseline) integrates "
        "the same measured current from the same wrong start over the nominal capacity."
    )
    table = soc_table(tr.t_s, tr.soc, est, case.coulomb, sc)
    bias = fin[E.E_BIAS]
    summary = (
        (
            f"SOC within {CONVERGED * 100:g} pp from {_minutes(sc.converged_s)} on, and "
            f"stays (largest error after that {worst_after * 100:.2f} pp)"
            if sc.converged_s is not None
            else f"SOC still more than {CONVERGED * 100:g} pp off at the end"
        )
        + "; the error is within 2σ in "
        f"{sc.coverage * 100:.1f} % of the samples ({sc.coverage_time * 100:.1f} % of the "
        f"time). At the end: capacity (SOH) {fin[E.E_SOH]:.4f} ± "
        f"{est.final_std(E.X_SOH):.4f} against {soh_true:.4f} (error {signed(soh_err, 4)}, "
        f"{abs(soh_err) / est.final_std(E.X_SOH):.1f}σ); resistance factor {fin[E.E_RF]:.3f} "
        f"± {est.final_std(E.X_RF):.3f} against {rf_true:.3f} (error {signed(rf_err, 3)}, "
        f"{abs(rf_err) / est.final_std(E.X_RF):.1f}σ); current offset {bias:.2f} ± "
        f"{est.final_std(E.X_BIAS):.2f} A against {I_BIAS:g} A. Coulomb counting ends "
        f"{_pp(cc_end)} pp off: it keeps the start's error, the offset and the capacity "
        f"error. Rejected measurements: {int(fin[E.E_REJECTED])} of "
        f"{int(fin[E.E_REJECTED] + fin[E.E_ACCEPTED])}. The truth is the filter's own model "
        "here, so this is the best case: it checks the filter's algebra and its σ, not the "
        "model."
    )
    head = (
        f"State estimator on the twin's truth (capacity {signed((TRUE_SOH - 1) * 100, 0)} %, "
        f"resistance {signed((TRUE_RF - 1) * 100, 0)} %, SOC "
        f"{TRUE_SOC0} vs start {START_SOC}, +{I_BIAS:g} A current offset, {days:.0f} days): SOC "
        + (
            f"within 2 pp after {_minutes(sc.converged_s)}"
            if sc.converged_s is not None
            else "not within 2 pp at the end"
        )
        + f", end error {_pp(err[-1])} pp "
        f"(Coulomb counting {_pp(cc_end)} pp); SOH error {signed(soh_err, 3)} ± "
        f"{est.final_std(E.X_SOH):.3f}, resistance factor {signed(rf_err, 3)} ± "
        f"{est.final_std(E.X_RF):.3f}; 2σ coverage {sc.coverage * 100:.0f} %"
    )
    return f"{intro}\n\n{table}\n\n{summary}", [head]


def render_dfn(case: DfnCase) -> tuple[str, list[str]]:
    drive_h = FIRST_DRIVE_S / 3600.0
    intro = (
        "**(b) PyBaMM's DFN as the truth (model mismatch).** PyBaMM's DFN with the "
        "`Prada2013` parameter set (A123-type LFP cell, isothermal at "
        f"{AMBIENT_C:g} °C) scaled to the pack: cells in series as the preset "
        "(pack voltage = cell voltage × series), parallel cells as many as make the preset's "
        "Ah from the cell's capacity between its cut-offs (a fractional count: current per "
        "cell = pack current / parallel). It runs the first "
        f"{drive_h:g} h drive of (a) and the {REST_AFTER_DRIVE_S / 60:g} min parked after it "
        f"from SOC {TRUE_SOC0} (validation/peers_estimation.py, in the peers' venv); its SOC "
        "is PyBaMM's own (linear in the negative electrode's stoichiometry between the set's "
        "limits). The filter starts from the nominal preset at SOC "
        f"{START_SOC} and sees the DFN's voltage, its applied current and the ambient "
        f"temperature with the sensors of (a) (seed {DFN_NOISE_SEED}). The twin's OCV is "
        "Prada2013's own; its resistance map and single RC branch are another cell's, and it "
        "has hysteresis the DFN lacks."
    )
    if "skipped" in case.peer:
        return f"{intro}\n\nPyBaMM {case.peer['skipped']}.", []
    ol = case.open_loop_mv
    ol_rms = float(np.sqrt(np.mean(ol**2)))
    peer = case.peer
    mismatch = (
        f"{peer['version']}; the cell's capacity {peer['cell_capacity_ah']:.4f} Ah, "
        f"{peer['cells_parallel']:.2f} in parallel, {case.cells_series} in series. The model "
        "mismatch, the twin run open-loop on the DFN's current from the true SOC with the "
        f"nominal preset: RMS {ol_rms:.1f} mV per cell ({ol_rms * case.cells_series / 1000:.2f} "
        f"V for the pack), mean {signed(float(ol.mean()), 1)} mV, 95th percentile of |Δ| "
        f"{np.percentile(np.abs(ol), 95):.0f} mV, {signed(float(ol[-1]), 1)} mV at the end of "
        "the rest. That is several times the sensor's noise "
        f"({V_STD / case.cells_series * 1000:.1f} mV per cell) and it is not white: it "
        "follows the current (largest after each step, decaying over the step; its "
        f"autocorrelation falls to 1/e after {case.correlation_s:.0f} s). The filter models "
        "only white voltage noise, so its voltage σ is set to "
        f"√({V_STD:g}² + (m × {case.cells_series})²) V for a mismatch m per cell; each row "
        "below is one m (the same measurements)."
    )
    t = case.t_s
    rows = []
    for mv, (est, sc) in case.runs.items():
        fin = est.final
        err = est.soc - case.soc
        marks = {label: k for label, k in sc.checkpoints}
        resid = est.residual_v[~np.isnan(est.residual_v)]
        rms = float(np.sqrt(np.mean(resid**2))) / case.cells_series * 1000.0
        rows.append(
            [f"{mv:g} ({est.voltage_std_v:.2f} V)"]
            + [_pp(float(err[marks[x]])) if x in marks else "–"
               for x in ("5 min", "15 min", "30 min", "60 min", "end")]
            + [f"{2 * est.soc_std[-1] * 100:.1f}", _minutes(sc.converged_s),
               f"{sc.coverage * 100:.0f} %", f"{rms:.1f}",
               f"{fin[E.E_SOH]:.3f} ± {est.final_std(E.X_SOH):.3f}",
               f"{fin[E.E_RF]:.3f} ± {est.final_std(E.X_RF):.3f}",
               f"{fin[E.E_BIAS]:.1f} ± {est.final_std(E.X_BIAS):.1f}",
               str(int(fin[E.E_REJECTED]))]
        )  # fmt: skip
    cc_marks = next(iter(case.runs.values()))[1].checkpoints
    cc = {label: _pp(float(case.coulomb[k] - case.soc[k])) for label, k in cc_marks}
    rows.append(["Coulomb counting"] + [cc.get(x, "–") for x in
                ("5 min", "15 min", "30 min", "60 min", "end")] + ["–"] * 8)  # fmt: skip
    table = md_table(
        ["m mV/cell (voltage σ)", "5 min", "15 min", "30 min", "60 min", "end", "2σ end pp",
         "within 2 pp", "2σ coverage", "RMS residual mV/cell", "SOH (true 1)",
         "resistance factor", "offset A (true 1)", "rejected"],
        rows,
    )  # fmt: skip
    chosen_mv = case.chosen_mv
    est_c, sc_c = case.runs[chosen_mv]
    small = [(est, sc) for mv, (est, sc) in case.runs.items() if mv <= 5.0]
    soh = [est.final[E.E_SOH] for est, _ in case.runs.values()]
    bias = [est.final[E.E_BIAS] for est, _ in case.runs.values()]
    end_err = [abs(est.soc[-1] - case.soc[-1]) for est, _ in case.runs.values()]
    if sc_c.coverage >= 0.9:
        honest = f"its 2σ covers the error in {sc_c.coverage * 100:.0f} % of the samples"
    else:
        honest = (
            f"its 2σ still covers the error in only {sc_c.coverage * 100:.0f} % of the "
            f"samples: one sample's mismatch persists for about {case.correlation_s:.0f} s, "
            "and the filter averages it as if every sample's were independent"
        )
    note = (
        f"SOC errors in pp against PyBaMM's SOC at {t[-1] / 3600:.1f} h; the RMS residual is "
        "the measured minus the filter's voltage over all samples, per cell. The DFN pack "
        "has exactly the preset's capacity (true SOH 1); its resistance has no one true "
        f"factor: open-loop, the mismatch is smallest at {case.best_fit[0]:.2f} times the "
        f"preset's map, and still {case.best_fit[1]:.1f} mV per cell RMS (factors "
        f"{OPEN_LOOP_RF[0]:g}-{OPEN_LOOP_RF[-1]:g} tried). Across the rows the SOC ends "
        f"within {max(end_err) * 100:.1f} pp of the DFN's, against "
        f"{abs(case.coulomb[-1] - case.soc[-1]) * 100:.0f} pp for Coulomb counting, but the "
        "mismatch goes into the parameters: SOH ends between "
        f"{min(soh):.2f} and {max(soh):.2f} and the current offset between {min(bias):.1f} "
        f"and {max(bias):.1f} A (true 1 and 1 A). With m of at most 5 mV per cell the 2σ "
        "covers the error in "
        + " and ".join(f"{sc.coverage * 100:.0f} %" for _, sc in small)
        + f" of the samples. With m = {chosen_mv:g} mV per cell, the nearest to the measured "
        f"mismatch, {honest}."
    )
    if sc_c.coverage < 0.9 or abs(est_c.final[E.E_SOH] - 1.0) > 2 * est_c.final_std(E.X_SOH):
        note += (
            " So a filter on a real pack needs its model within the noise it assumes (the "
            "resistance map and RC fitted to the pack, see `POST /calibrate`), or a "
            "coloured-noise (time-correlated) term for the mismatch; with this twin against "
            "this DFN, its σ and its capacity estimate are not to be trusted."
        )
    body = f"{intro}\n\n{mismatch}\n\n{table}\n\n{note}"
    head = (
        f"State estimator on PyBaMM's DFN (Prada2013 pack, {t[-1] / 3600:.1f} h, model "
        f"mismatch {ol_rms:.0f} mV/cell RMS): with the voltage σ for {chosen_mv:g} mV/cell, "
        f"SOC error at the end {_pp(float(est_c.soc[-1] - case.soc[-1]))} pp (Coulomb "
        f"counting {_pp(float(case.coulomb[-1] - case.soc[-1]))} pp), 2σ coverage "
        f"{sc_c.coverage * 100:.0f} %, SOH {est_c.final[E.E_SOH]:.2f} ± "
        f"{est_c.final_std(E.X_SOH):.2f} (true 1)"
    )
    return body, [head]


def render(data: EstimationData) -> Section:
    body_a, head_a = render_twin(data.twin)
    body_b, head_b = render_dfn(data.dfn)
    figures = [
        Figure(
            "validation_estimation.png",
            "SOC: truth, estimate ±2σ and Coulomb counting; SOH estimate ±2σ vs truth",
            lambda plt: _figure_twin(plt, data.twin),
        )
    ]
    if data.dfn.runs:
        figures.append(
            Figure(
                "validation_estimation_dfn.png",
                "SOC against PyBaMM's DFN: estimates ±2σ at two voltage σ, Coulomb counting; "
                "the twin's open-loop voltage mismatch",
                lambda plt: _figure_dfn(plt, data.dfn),
            )
        )
    return Section("estimation", "13. State estimation", f"{body_a}\n\n{body_b}", figures,
                   head_a + head_b)  # fmt: skip


def _figure_twin(plt: Any, case: TwinCase) -> Any:
    tr, est = case.truth, case.estimate
    h = tr.t_s / 3600.0
    fig, axes = plt.subplots(3, 1, figsize=(8.5, 9.0))
    first = h <= (FIRST_DRIVE_S + REST_AFTER_DRIVE_S) / 3600.0
    for ax, sel, title in ((axes[0], first, "first drive"), (axes[1], slice(None), "all days")):
        lo = est.soc[sel] - 2 * est.soc_std[sel]
        hi = est.soc[sel] + 2 * est.soc_std[sel]
        ax.fill_between(h[sel], lo, hi, color="C0", alpha=0.25, lw=0, label="estimate ±2σ")
        ax.plot(h[sel], tr.soc[sel], color="k", lw=1.2, label="truth")
        ax.plot(h[sel], est.soc[sel], color="C0", lw=1.0, label="estimate")
        ax.plot(h[sel], case.coulomb[sel], color="C3", lw=1.0, ls="--",
                label="Coulomb counting")  # fmt: skip
        ax.set(ylabel="SOC", title=f"SOC, {title}")
        ax.set_ylim(0.0, 1.05)
    axes[0].legend(fontsize=8, loc="upper right", ncol=2)
    ax = axes[2]
    ax.fill_between(h, est.soh - 2 * est.soh_std, est.soh + 2 * est.soh_std, color="C2",
                    alpha=0.25, lw=0, label="estimate ±2σ")  # fmt: skip
    ax.plot(h, est.soh, color="C2", lw=1.0, label="estimate")
    ax.plot(h, tr.soh, color="k", lw=1.2, label="truth")
    ax.set(xlabel="time (h)", ylabel="SOH (capacity fraction)", title="Capacity")
    ax.set_ylim(0.8, 1.05)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def _figure_dfn(plt: Any, case: DfnCase) -> Any:
    h = case.t_s / 3600.0
    fig, axes = plt.subplots(2, 1, figsize=(8.5, 6.5), sharex=True)
    ax = axes[0]
    ax.plot(h, case.soc, color="k", lw=1.2, label="DFN (PyBaMM SOC)")
    for color, mv in (("C1", 5.0), ("C0", case.chosen_mv)):
        if mv not in case.runs:
            continue
        est = case.runs[mv][0]
        ax.fill_between(h, est.soc - 2 * est.soc_std, est.soc + 2 * est.soc_std, color=color,
                        alpha=0.2, lw=0)  # fmt: skip
        ax.plot(h, est.soc, color=color, lw=1.0, label=f"estimate ±2σ, m = {mv:g} mV/cell")
    ax.plot(h, case.coulomb, color="C3", lw=1.0, ls="--", label="Coulomb counting")
    ax.set(ylabel="SOC", title="SOC against PyBaMM's DFN (Prada2013 pack)")
    ax.set_ylim(0.0, 1.05)
    ax.legend(fontsize=8, loc="upper right")
    ax = axes[1]
    ax.plot(h, case.open_loop_mv, color="C4", lw=0.6)
    ax.set(xlabel="time (h)", ylabel="mV per cell",
           title="Twin open-loop − DFN voltage (true start, nominal preset)")  # fmt: skip
    fig.tight_layout()
    return fig
