"""The step kernel: integrates a pack over a batch of samples, state in, state out.

Each sample holds its input constant over `dt_s`. Samples longer than the internal step are
split into equal sub-steps (inputs only decide the split, so a batch and the same samples sent
one by one are split alike). Within a sub-step the RC branch, the temperature and the charge are
integrated exactly for the step's constant current.

A batch is solved by waveform relaxation: currents for all sub-steps are guessed, trajectories
of SOC, RC voltage, temperature and aging follow from them in closed form (cumulative sums and
linear recurrences), currents are recomputed from those trajectories, and so on until nothing
changes. The system is causal, so the fixed point is the step-by-step solution.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from twin_service.models.aging import naumann, seed
from twin_service.models.aging.half_cycles import HalfCycle, track_half_cycles
from twin_service.models.ecm import (
    GAS_CONSTANT,
    KELVIN,
    T_REF_K,
    CircuitParams,
    arrhenius_factor,
    current_from_power,
    current_limits,
    power_limits,
    rc_average_factor,
)
from twin_service.models.ocv import OCV_SOC, OCV_V, pack_ocv
from twin_service.models.recurrence import linear_recurrence
from twin_service.models.thermal import ThermalParams, thermal_decay

MAX_ACTIVE_SUBSTEP_S = 10.0  # sub-step length while current flows (OCV and R change)
MAX_REST_SUBSTEP_S = 3600.0  # sub-step length at rest (temperature relaxes, aging continues)
MAX_SUBSTEPS_PER_REQUEST = 5_000_000
CHUNK_SUBSTEPS = 16384
PULSE_S = 10.0  # reported power limits are 10 s pulse limits (HPPC convention)
SOH_FLOOR = 0.05  # capacity never used below this fraction, to keep SOC finite
ACTIVE_C_RATE = 1e-3  # below C/1000 a step counts as rest for the mean C-rate
def _default_kernel() -> str:
    from twin_service.models import kernel_jit

    wanted = os.environ.get("TWIN_KERNEL", "").lower()
    if wanted in ("jit", "numpy"):
        return wanted
    return "jit" if kernel_jit.AVAILABLE else "numpy"


_MAX_SWEEPS = 40
_MAX_SWEEPS_SINGLE_SAMPLE = 2000
_REL_TOL = 1e-13


@dataclass(frozen=True)
class PackParams:
    cells_series: int
    capacity_ah: float
    circuit: CircuitParams
    thermal: ThermalParams

    @cached_property
    def kernel_vector(self) -> np.ndarray:
        """The parameters in kernel_jit's P_* order, built once per parameter set (the kernel
        only reads it)."""
        c = self.circuit
        return np.array([
            self.cells_series, self.capacity_ah, c.r0_ohm, c.r1_ohm, c.tau1_s,
            c.activation_energy_j_mol, c.v_min, c.v_max, c.max_discharge_a, c.max_charge_a,
            c.max_discharge_w, c.max_regen_w, self.thermal.heat_capacity_j_k,
            self.thermal.conductance_w_k, SOH_FLOOR, ACTIVE_C_RATE,
        ])


@dataclass(frozen=True)
class PackState:
    soc: float = 0.85
    temperature_c: float = 25.0
    v_rc: float = 0.0
    elapsed_s: float = 0.0
    aged_s: float = 0.0
    total_distance_km: float = 0.0
    energy_discharged_kwh: float = 0.0
    energy_charged_kwh: float = 0.0
    throughput_ah: float = 0.0
    cal_capacity_loss: float = 0.0
    cal_resistance_increase: float = 0.0
    cyc_capacity_loss: float = 0.0
    cyc_resistance_increase: float = 0.0
    seed_capacity_loss: float = 0.0
    half_cycle: HalfCycle = field(default_factory=HalfCycle)

    @property
    def soh(self) -> float:
        loss = self.cal_capacity_loss + self.cyc_capacity_loss + self.seed_capacity_loss
        return min(1.0, max(0.0, 1.0 - loss))

    @property
    def resistance_factor(self) -> float:
        return 1.0 + self.cal_resistance_increase + self.cyc_resistance_increase


def new_pack_state(
    soc: float = 0.85, temperature_c: float = 25.0, soh: float = 1.0, resistance_factor: float = 1.0
) -> PackState:
    """A fresh or seeded pack. A seeded capacity or resistance loss is booked as calendar aging,
    so the aging models continue from it on virtual time."""
    return PackState(
        soc=soc,
        temperature_c=temperature_c,
        cal_capacity_loss=1.0 - soh,
        cal_resistance_increase=resistance_factor - 1.0,
        half_cycle=HalfCycle(start_soc=soc, extreme_soc=soc),
    )


@dataclass(frozen=True)
class AgingSettings:
    model: str = "naumann"  # "naumann" | "seed"
    time_multiplier: float = 1.0


@dataclass
class DriveInput:
    """Columnar inputs, one entry per sample. Exactly one of power_w / current_a is finite."""

    dt_s: np.ndarray
    power_w: np.ndarray  # terminal power demand, discharge > 0; NaN where current is given
    current_a: np.ndarray  # terminal current demand, discharge > 0; NaN where power is given
    ambient_c: np.ndarray
    distance_m: np.ndarray

    def __len__(self) -> int:
        return int(self.dt_s.shape[0])


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
    # at the final state
    max_discharge_w: float
    max_regen_w: float


DEFAULT_KERNEL = _default_kernel()


class _NotConverged(Exception):
    pass


class IntegrationTooLong(ValueError):
    """The batch needs more internal sub-steps than one request may take."""


def substep_counts(drive: DriveInput) -> np.ndarray:
    """Sub-steps per sample, decided from the inputs alone."""
    active = np.where(np.isnan(drive.power_w), drive.current_a != 0.0, drive.power_w != 0.0)
    max_dt = np.where(active, MAX_ACTIVE_SUBSTEP_S, MAX_REST_SUBSTEP_S)
    return np.maximum(np.ceil(drive.dt_s / max_dt), 1).astype(np.int64)


_SMALL = 16


def _substep_counts_small(drive: DriveInput) -> np.ndarray:
    """substep_counts for a few samples, in plain Python (same counts)."""
    counts = []
    for dt, p, i in zip(drive.dt_s.tolist(), drive.power_w.tolist(), drive.current_a.tolist(),
                        strict=True):
        if not math.isfinite(dt):
            return substep_counts(drive)
        active = (i != 0.0) if p != p else (p != 0.0)
        counts.append(max(math.ceil(dt / (MAX_ACTIVE_SUBSTEP_S if active else MAX_REST_SUBSTEP_S)),
                          1))
    return np.array(counts, dtype=np.int64)


def simulate(
    params: PackParams,
    state: PackState,
    drive: DriveInput,
    aging: AgingSettings,
    kernel: str | None = None,
) -> StepResult:
    """Integrate the pack over all samples of `drive`, starting from `state`.

    `kernel` is "jit" (compiled sequential loop, the default when numba is installed) or
    "numpy" (waveform relaxation); both integrate the same discrete equations.
    """
    counts = substep_counts(drive) if len(drive) > _SMALL else _substep_counts_small(drive)
    total = int(np.add.reduce(counts))  # counts.sum() without its Python-level wrapper
    if total > MAX_SUBSTEPS_PER_REQUEST:
        raise IntegrationTooLong(
            f"the samples need {total} internal steps; at most {MAX_SUBSTEPS_PER_REQUEST} fit "
            "one request, send fewer or shorter samples"
        )
    kernel = kernel or DEFAULT_KERNEL
    if kernel == "jit":
        return _simulate_jit(params, state, drive, aging, counts)
    if kernel != "numpy":
        raise ValueError(f"unknown kernel {kernel!r}")
    return _simulate_relaxation(params, state, drive, aging, counts)


_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)


def _contiguous(a: np.ndarray, dtype: np.dtype) -> bool:
    """Already what np.ascontiguousarray(a, dtype) would make (native dtypes are singletons)."""
    return type(a) is np.ndarray and a.dtype is dtype and a.flags.c_contiguous


def _f64(a: np.ndarray) -> np.ndarray:
    return a if _contiguous(a, _F64) else np.ascontiguousarray(a, dtype=float)


def _simulate_jit(
    params: PackParams,
    state: PackState,
    drive: DriveInput,
    aging: AgingSettings,
    counts: np.ndarray,
) -> StepResult:
    from twin_service.models import kernel_jit as kj

    p = params.kernel_vector
    hc = state.half_cycle
    s = np.array([
        state.soc, state.temperature_c, state.v_rc, state.elapsed_s, state.aged_s,
        state.energy_discharged_kwh, state.energy_charged_kwh, state.throughput_ah,
        state.cal_capacity_loss, state.cal_resistance_increase, state.cyc_capacity_loss,
        state.cyc_resistance_increase, state.seed_capacity_loss, float(hc.direction),
        hc.start_soc, hc.extreme_soc, hc.ah, hc.active_s, hc.loss_sq_start, hc.resistance_start,
    ])
    out = np.empty((len(drive), kj.N_OUT))
    kj.run(_f64(drive.dt_s), _f64(drive.power_w), _f64(drive.current_a), _f64(drive.ambient_c),
           counts if _contiguous(counts, _I64) else np.ascontiguousarray(counts, np.int64),
           p, s, aging.model == "seed", float(aging.time_multiplier), out)
    v = s.tolist()  # Python floats, as float() of each element
    d = drive.distance_m
    distance_m = float(d[0]) if d.shape[0] == 1 else float(d.sum())  # a sum of one is itself
    new_state = PackState(
        soc=v[kj.S_SOC],
        temperature_c=v[kj.S_T],
        v_rc=v[kj.S_VRC],
        elapsed_s=v[kj.S_ELAPSED],
        aged_s=v[kj.S_AGED],
        total_distance_km=state.total_distance_km + distance_m / 1000.0,
        energy_discharged_kwh=v[kj.S_EDIS],
        energy_charged_kwh=v[kj.S_ECHG],
        throughput_ah=v[kj.S_THR],
        cal_capacity_loss=v[kj.S_CAL],
        cal_resistance_increase=v[kj.S_CALR],
        cyc_capacity_loss=v[kj.S_CYC],
        cyc_resistance_increase=v[kj.S_CYCR],
        seed_capacity_loss=v[kj.S_SEED],
        half_cycle=HalfCycle(
            direction=int(v[kj.S_HC_DIR]), start_soc=v[kj.S_HC_START],
            extreme_soc=v[kj.S_HC_EXT], ah=v[kj.S_HC_AH],
            active_s=v[kj.S_HC_ACT], loss_sq_start=v[kj.S_HC_LSQ],
            resistance_start=v[kj.S_HC_RES],
        ),
    )
    return _result(params, new_state, drive, out[:, kj.O_SOC], out[:, kj.O_V], out[:, kj.O_I],
                   out[:, kj.O_P], out[:, kj.O_T], out[:, kj.O_SOH], out[:, kj.O_RF],
                   out[:, kj.O_LIMITED] > 0.5)


def _result(params: PackParams, state: PackState, drive: DriveInput, soc: np.ndarray,
            voltage: np.ndarray, current: np.ndarray, power: np.ndarray,
            temperature: np.ndarray, soh: np.ndarray, rf: np.ndarray,
            limited: np.ndarray) -> StepResult:
    dt_s = drive.dt_s
    if dt_s.shape[0] == 1:  # the cumulative sum of one sample is the sample
        t_s = state.elapsed_s - (dt_s - dt_s)
    else:
        t_s = state.elapsed_s - (np.cumsum(dt_s[::-1])[::-1] - dt_s)
    max_dis, max_reg = pulse_power_limits(params, state)
    return StepResult(
        state=state, t_s=t_s, soc=soc, voltage_v=voltage, current_a=current, power_w=power,
        temperature_c=temperature, soh=soh, resistance_factor=rf, limited=limited,
        max_discharge_w=max_dis, max_regen_w=max_reg,
    )


def _simulate_relaxation(
    params: PackParams,
    state: PackState,
    drive: DriveInput,
    aging: AgingSettings,
    counts: np.ndarray,
) -> StepResult:
    n = len(drive)
    out = {k: np.empty(n) for k in ("soc", "v", "i", "p", "t", "soh", "rf")}
    limited = np.zeros(n, dtype=bool)
    cum = np.cumsum(counts)
    start = 0
    chunk = CHUNK_SUBSTEPS
    while start < n:
        # Whole samples per chunk, at most `chunk` sub-steps (one sample at least). Where limits
        # switch on and off often the sweeps converge slowly; a shorter chunk then helps.
        base = cum[start - 1] if start else 0
        end = int(np.searchsorted(cum, base + chunk, side="right"))
        end = min(max(end, start + 1), n)
        sweeps = _MAX_SWEEPS_SINGLE_SAMPLE if end == start + 1 else _MAX_SWEEPS
        try:
            state = _simulate_chunk(
                params, state, drive, aging, counts, start, end, out, limited, sweeps
            )
        except _NotConverged:
            if end == start + 1:
                raise ArithmeticError("pack current did not converge") from None
            chunk = max(1, int(cum[end - 1] - base) // 4)
            continue
        start = end
        chunk = min(CHUNK_SUBSTEPS, chunk * 2)
    return _result(params, state, drive, out["soc"], out["v"], out["i"], out["p"], out["t"],
                   out["soh"], out["rf"], limited)


_OCV_SOC = OCV_SOC.tolist()
_OCV_V = OCV_V.tolist()


def interp_scalar(x: float, xp: Sequence[float], fp: Sequence[float]) -> float:
    """`float(np.interp(x, xp, fp))` for one float without numpy's per-call overhead: the same
    cases and floating-point operations as numpy's C loop, so the same value. `xp` ascending,
    at least two points."""
    if x > xp[-1]:
        return fp[-1]
    if x < xp[0]:
        return fp[0]
    if x == xp[-1]:
        return fp[-1]
    if x != x:  # NaN: numpy's own answer
        return float(np.interp(x, xp, fp))
    j = bisect_right(xp, x) - 1
    if xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    result = slope * (x - xp[j]) + fp[j]
    if result != result:
        result = slope * (x - xp[j + 1]) + fp[j + 1]
        if result != result and fp[j] == fp[j + 1]:
            result = fp[j]
    return result


def pulse_power_limits(params: PackParams, state: PackState) -> tuple[float, float]:
    """10 s discharge and charge power limits (W) at `state`, within all pack ratings."""
    c = params.circuit
    t_k = state.temperature_c + KELVIN
    arr = math.exp(c.activation_energy_j_mol / GAS_CONSTANT * (1.0 / t_k - 1.0 / T_REF_K))
    r0 = c.r0_ohm * state.resistance_factor * arr
    r1 = c.r1_ohm * state.resistance_factor * arr
    x = PULSE_S / c.tau1_s
    weight = -math.expm1(-x) / x
    # pack_ocv for one float, in plain Python (same value: see interp_scalar)
    ocv = params.cells_series * interp_scalar(float(state.soc), _OCV_SOC, _OCV_V)
    emf = ocv - state.v_rc * weight
    r_eff = r0 + r1 * (1.0 - weight)
    cap_as = params.capacity_ah * 3600.0 * max(state.soh, SOH_FLOOR)
    i_dis = min(c.max_discharge_a, max((emf - c.v_min) / r_eff, 0.0),
                max(state.soc, 0.0) * cap_as / PULSE_S)
    i_chg = min(c.max_charge_a, max((c.v_max - emf) / r_eff, 0.0),
                max(1.0 - state.soc, 0.0) * cap_as / PULSE_S)
    i_top = min(i_dis, emf / (2.0 * r_eff))
    p_dis = min(c.max_discharge_w, (emf - i_top * r_eff) * i_top)
    p_chg = min(c.max_regen_w, (emf + i_chg * r_eff) * i_chg)
    return max(p_dis, 0.0), max(p_chg, 0.0)


@dataclass
class _Trajectory:
    soc: np.ndarray  # n + 1 points: start of each sub-step, then the end
    v_rc: np.ndarray
    temperature_c: np.ndarray
    soh: np.ndarray
    resistance_factor: np.ndarray
    aging: dict


def _simulate_chunk(
    params: PackParams,
    state: PackState,
    drive: DriveInput,
    aging: AgingSettings,
    counts: np.ndarray,
    start: int,
    end: int,
    out: dict[str, np.ndarray],
    limited_out: np.ndarray,
    max_sweeps: int,
) -> PackState:
    c = params.circuit
    cnt = counts[start:end]
    idx = np.repeat(np.arange(start, end), cnt)
    dt = (drive.dt_s[start:end] / cnt)[idx - start]
    power_demand = drive.power_w[idx]
    current_demand = drive.current_a[idx]
    by_current = np.isnan(power_demand)
    ambient = drive.ambient_c[idx]
    dt_aging = dt * aging.time_multiplier
    decay_rc, weight_rc = rc_average_factor(dt, c.tau1_s)
    decay_th = thermal_decay(dt, params.thermal)
    cap_nom_as = params.capacity_ah * 3600.0

    n = dt.shape[0]
    emf0 = pack_ocv(state.soc, params.cells_series) - state.v_rc
    current = np.where(by_current, current_demand, np.nan_to_num(power_demand) / emf0)
    traj = _Trajectory(
        soc=np.full(n + 1, state.soc),
        v_rc=np.full(n + 1, state.v_rc),
        temperature_c=np.full(n + 1, state.temperature_c),
        soh=np.full(n + 1, state.soh),
        resistance_factor=np.full(n + 1, state.resistance_factor),
        aging={},
    )
    for _ in range(max_sweeps):
        new_traj = _trajectory(
            params, state, traj, current, dt, dt_aging, decay_rc, weight_rc, decay_th,
            ambient, aging,
        )
        new_current, voltage, limited = _currents(
            params, new_traj, dt, power_demand, current_demand, by_current, weight_rc, cap_nom_as
        )
        settled = _settled(current, new_current, traj, new_traj)
        current, traj = new_current, new_traj
        if settled:
            break
    else:
        raise _NotConverged

    # Per-sample results from sub-steps: charge and energy are summed, so V*I*dt per sample
    # equals the energy the counters book.
    offsets = np.concatenate(([0], np.cumsum(cnt)[:-1]))
    sample_dt = drive.dt_s[start:end]
    charge = np.add.reduceat(current * dt, offsets)
    energy = np.add.reduceat(voltage * current * dt, offsets)
    last = np.cumsum(cnt) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        use_mean = (cnt > 1) & (np.abs(charge) > 1e-6 * drive.dt_s[start:end])
        v_sample = np.where(use_mean, energy / charge, voltage[last])
    sl = slice(start, end)
    out["i"][sl] = charge / sample_dt
    out["p"][sl] = energy / sample_dt
    out["v"][sl] = v_sample
    out["soc"][sl] = traj.soc[last + 1]
    out["t"][sl] = traj.temperature_c[last + 1]
    out["soh"][sl] = traj.soh[last + 1]
    out["rf"][sl] = traj.resistance_factor[last + 1]
    limited_out[sl] = np.logical_or.reduceat(limited, offsets)

    p_step = voltage * current * dt
    a = traj.aging
    return replace(
        state,
        soc=float(traj.soc[-1]),
        temperature_c=float(traj.temperature_c[-1]),
        v_rc=float(traj.v_rc[-1]),
        elapsed_s=state.elapsed_s + float(dt.sum()),
        aged_s=state.aged_s + float(dt_aging.sum()),
        total_distance_km=state.total_distance_km + float(drive.distance_m[sl].sum()) / 1000.0,
        energy_discharged_kwh=state.energy_discharged_kwh
        + float(np.maximum(p_step, 0.0).sum()) / 3.6e6,
        energy_charged_kwh=state.energy_charged_kwh + float(np.maximum(-p_step, 0.0).sum()) / 3.6e6,
        throughput_ah=state.throughput_ah + float(np.abs(current * dt).sum()) / 3600.0,
        cal_capacity_loss=float(a["cal_loss"][-1]),
        cal_resistance_increase=float(a["cal_res"][-1]),
        cyc_capacity_loss=float(a["cyc_loss"][-1]),
        cyc_resistance_increase=float(a["cyc_res"][-1]),
        seed_capacity_loss=float(a["seed_loss"][-1]),
        half_cycle=a["half_cycle"],
    )


def _settled(
    current: np.ndarray, new_current: np.ndarray, traj: _Trajectory, new_traj: _Trajectory
) -> bool:
    """True when a sweep changed nothing beyond round-off: currents, SOC, temperature, aging."""
    scale = max(1.0, float(np.max(np.abs(new_current))))
    if np.max(np.abs(new_current - current)) > _REL_TOL * scale:
        return False
    for old, new, tol in (
        (traj.soc, new_traj.soc, 1e-14),
        (traj.temperature_c, new_traj.temperature_c, 1e-11),
        (traj.soh, new_traj.soh, 1e-15),
        (traj.resistance_factor, new_traj.resistance_factor, 1e-15),
    ):
        if np.max(np.abs(new - old)) > tol:
            return False
    return True


def _trajectory(
    params: PackParams,
    state: PackState,
    prev: _Trajectory,
    current: np.ndarray,
    dt: np.ndarray,
    dt_aging: np.ndarray,
    decay_rc: np.ndarray,
    weight_rc: np.ndarray,
    decay_th: np.ndarray,
    ambient: np.ndarray,
    aging: AgingSettings,
) -> _Trajectory:
    """State trajectories for given sub-step currents (resistances, capacity and temperature
    feedback taken from the previous sweep)."""
    c = params.circuit
    cap_as = params.capacity_ah * 3600.0 * np.maximum(prev.soh[:-1], SOH_FLOOR)
    soc = np.empty(current.shape[0] + 1)
    soc[0] = state.soc
    np.cumsum(-current * dt / cap_as, out=soc[1:])
    soc[1:] += state.soc
    arr = arrhenius_factor(prev.temperature_c[:-1], c.activation_energy_j_mol)
    r0 = c.r0_ohm * prev.resistance_factor[:-1] * arr
    r1 = c.r1_ohm * prev.resistance_factor[:-1] * arr
    v_rc = linear_recurrence(decay_rc, current * r1 * (1.0 - decay_rc), state.v_rc)
    v_rc_mean = v_rc[:-1] * weight_rc + current * r1 * (1.0 - weight_rc)
    heat_w = current * (current * r0 + v_rc_mean)
    # Resistive heat falls with temperature (Arrhenius); linearising it around the previous
    # sweep's temperatures keeps the recurrence linear and makes the sweeps converge like
    # Newton's method instead of a slow fixed-point iteration.
    g = params.thermal.conductance_w_k
    t_prev = prev.temperature_c[:-1]
    dheat_dt = -heat_w * c.activation_energy_j_mol / (GAS_CONSTANT * (t_prev + KELVIN) ** 2)
    coeff = decay_th + (1.0 - decay_th) * dheat_dt / g
    usable = coeff > 0.05  # otherwise (very long steps) fall back to the plain fixed point
    coeff = np.where(usable, coeff, decay_th)
    heat_offset = np.where(usable, heat_w - dheat_dt * t_prev, heat_w)
    temperature = linear_recurrence(
        coeff, (1.0 - decay_th) * (ambient + heat_offset / g), state.temperature_c
    )
    aged = _age(params, state, soc, temperature, current, dt, dt_aging, aging)
    loss = aged["cal_loss"] + aged["cyc_loss"] + aged["seed_loss"]
    soh = np.clip(1.0 - loss, 0.0, 1.0)
    rf = 1.0 + aged["cal_res"] + aged["cyc_res"]
    return _Trajectory(soc, v_rc, temperature, soh, rf, aged)


def _age(
    params: PackParams,
    state: PackState,
    soc: np.ndarray,
    temperature: np.ndarray,
    current: np.ndarray,
    dt: np.ndarray,
    dt_aging: np.ndarray,
    aging: AgingSettings,
) -> dict:
    """Aging trajectories (n + 1 points each) under the selected model; the other model's
    accumulated values are carried unchanged."""
    n = current.shape[0]

    def held(value: float) -> np.ndarray:
        return np.full(n + 1, value)

    def accumulated(start: float, increments: np.ndarray) -> np.ndarray:
        out = np.empty(n + 1)
        out[0] = start
        np.cumsum(increments, out=out[1:])
        out[1:] += start
        return out

    result = {
        "cal_loss": held(state.cal_capacity_loss),
        "cal_res": held(state.cal_resistance_increase),
        "cyc_loss": held(state.cyc_capacity_loss),
        "cyc_res": held(state.cyc_resistance_increase),
        "seed_loss": held(state.seed_capacity_loss),
        "half_cycle": state.half_cycle,
    }
    soc_start, temp_start = soc[:-1], temperature[:-1]
    if aging.model == "seed":
        c_rate = np.abs(current) / params.capacity_ah
        rate = seed.loss_rate_per_s(c_rate, temp_start, soc_start)
        result["seed_loss"] = accumulated(state.seed_capacity_loss, rate * dt_aging)
        return result

    # Calendar: squared loss grows linearly in time at the present stress (virtual time).
    k_cap = naumann.calendar_capacity_rate(soc_start, temp_start)
    loss_sq = accumulated(state.cal_capacity_loss**2, k_cap * k_cap * dt_aging)
    result["cal_loss"] = np.sqrt(loss_sq)
    k_res = naumann.calendar_resistance_rate(soc_start, temp_start)
    result["cal_res"] = accumulated(state.cal_resistance_increase, k_res * dt_aging)

    # Cycle: squared loss grows linearly in FEC; each half-cycle adds DOC/2 FEC.
    multiplier = aging.time_multiplier

    def cycle_terms(doc: np.ndarray, c_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fec = multiplier * np.asarray(doc) / 2.0
        k = naumann.cycle_capacity_factor(c_rate, doc)
        return k * k * fec, naumann.cycle_resistance_factor(c_rate, doc) * fec

    def close(loss_sq0: float, res0: float, doc: float, c_rate: float) -> tuple[float, float]:
        d_loss_sq, d_res = cycle_terms(np.array(doc), np.array(c_rate))
        return loss_sq0 + float(d_loss_sq), res0 + float(d_res)

    abs_ah = np.abs(current) * dt / 3600.0
    active = np.where(np.abs(current) > ACTIVE_C_RATE * params.capacity_ah, dt, 0.0)
    track = track_half_cycles(soc[1:], abs_ah, active, state.half_cycle, params.capacity_ah, close)
    d_loss_sq, d_res = cycle_terms(track.doc, track.c_rate)
    cyc_loss = np.empty(n + 1)
    cyc_loss[0] = state.cyc_capacity_loss
    cyc_loss[1:] = np.sqrt(track.loss_sq_start + d_loss_sq)
    cyc_res = np.empty(n + 1)
    cyc_res[0] = state.cyc_resistance_increase
    cyc_res[1:] = track.resistance_start + d_res
    result["cyc_loss"] = cyc_loss
    result["cyc_res"] = cyc_res
    result["half_cycle"] = track.final
    return result


def _currents(
    params: PackParams,
    traj: _Trajectory,
    dt: np.ndarray,
    power_demand: np.ndarray,
    current_demand: np.ndarray,
    by_current: np.ndarray,
    weight_rc: np.ndarray,
    cap_nom_as: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-step currents, mean terminal voltages and whether a limit bound, from the state at
    the start of each sub-step."""
    c = params.circuit
    soc = traj.soc[:-1]
    arr = arrhenius_factor(traj.temperature_c[:-1], c.activation_energy_j_mol)
    r0 = c.r0_ohm * traj.resistance_factor[:-1] * arr
    r1 = c.r1_ohm * traj.resistance_factor[:-1] * arr
    emf = pack_ocv(soc, params.cells_series) - traj.v_rc[:-1] * weight_rc
    r_eff = r0 + r1 * (1.0 - weight_rc)
    i_dis, i_chg = current_limits(emf, r_eff, c)
    cap_as = cap_nom_as * np.maximum(traj.soh[:-1], SOH_FLOOR)
    i_dis = np.minimum(i_dis, np.maximum(soc, 0.0) * cap_as / dt)
    i_chg = np.minimum(i_chg, np.maximum(1.0 - soc, 0.0) * cap_as / dt)
    p_dis, p_chg = power_limits(emf, r_eff, i_dis, i_chg, c)
    power = np.clip(np.nan_to_num(power_demand), -p_chg, p_dis)
    wanted = np.where(by_current, current_demand, current_from_power(power, emf, r_eff))
    current = np.clip(wanted, -i_chg, i_dis)
    limited = (current != wanted) | (~by_current & (power != np.nan_to_num(power_demand)))
    voltage = emf - current * r_eff
    return current, voltage, limited


def is_finite_state(state: PackState) -> bool:
    values = (state.soc, state.temperature_c, state.v_rc, state.soh, state.resistance_factor)
    return all(math.isfinite(v) for v in values)


def warm_up() -> None:
    """Compile (or load from cache) the jit kernel so the first request is not slow."""
    drive = DriveInput(np.array([1.0, 1.0]), np.array([1000.0, np.nan]), np.array([np.nan, 1.0]),
                       np.array([25.0, 25.0]), np.zeros(2))
    params = PackParams(
        cells_series=100, capacity_ah=100.0,
        circuit=CircuitParams(0.01, 0.01, 30.0, 20000.0, 250.0, 365.0, 500.0, 500.0, 1e5, 1e5),
        thermal=ThermalParams(1e5, 50.0),
    )
    for model in ("naumann", "seed"):
        simulate(params, new_pack_state(), drive, AgingSettings(model))
