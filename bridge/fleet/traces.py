"""Drive traces of the fleet: each (preset, cycle) pair computed once, reused for every trip.

A bundled cycle (bridge/cycles) goes through the bridge's road-load model
(:func:`bridge.roadload.road_load`, as ``python -m bridge cycle`` does) at its own 1 s
resolution; the motors' mechanical power then becomes electrical power at the pack terminals
with the twin's drivetrain law (motor efficiency over the load, times the transmission's,
divided when motoring and multiplied when regenerating, plus the preset's auxiliary load),
so a ``power_kw`` sample asks the twin for exactly what the equivalent ``motors`` sample
would. Trips are prefixes of these traces, cut where the car stands still.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.cycles import load_cycle
from bridge.fleet.profiles import ROUTES, Route
from bridge.roadload import RoadLoadParams, road_load


def _table(data: Any, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, Mapping) or x not in data or y not in data:
        return np.array([0.0, 1.0]), np.array([1.0, 1.0])
    return np.asarray(data[x], dtype=float), np.asarray(data[y], dtype=float)


@dataclass(frozen=True)
class PresetInfo:
    """What the fleet needs of a preset (as ``GET /vehicles/presets`` serves it)."""

    id: str
    roadload: RoadLoadParams
    motor_peak_w: float  # per motor
    efficiency_load: np.ndarray = field(repr=False)
    efficiency_value: np.ndarray = field(repr=False)
    transmission_efficiency: float
    aux_kw: float
    capacity_ah: float
    cells_series: int
    nominal_energy_kwh: float
    cell_v_max: float
    max_charge_a: float
    soc_min: float
    soc_max: float
    ocv_soc: np.ndarray = field(repr=False)
    ocv_v: np.ndarray = field(repr=False)
    taper_soc: np.ndarray = field(repr=False)
    taper_c_rate: np.ndarray = field(repr=False)
    derate_t: np.ndarray = field(repr=False)
    derate_f: np.ndarray = field(repr=False)
    #: Thermal management heats a plugged-in pack to this (None: no thermal management).
    precondition_c: float | None = None

    @classmethod
    def from_preset(cls, preset: Mapping[str, Any]) -> PresetInfo:
        pack = dict(preset.get("pack") or {})
        drivetrain = dict(preset.get("drivetrain") or {})
        taper = pack.get("charge_taper") or {}
        series = int(pack.get("cells_series", 1))
        capacity = float(
            pack.get("capacity_ah")
            or float(pack["cell_capacity_ah"]) * int(pack.get("cells_parallel", 1))
        )
        ocv_soc, ocv_v = _table(pack.get("ocv"), "soc", "v")
        if len(ocv_soc) == 2 and ocv_v[0] == ocv_v[1]:  # no table: LFP's plateau
            ocv_v = np.array([3.27, 3.27])
        taper_soc, taper_c = _table(taper, "soc", "c_rate")
        if not taper:
            taper_c = np.array([10.0, 10.0])  # no taper: the current limit alone
        derate_t, derate_f = _table(taper, "temperature_c", "factor")
        energy = float(pack.get("nominal_energy_kwh") or capacity * series * 3.2 / 1000.0)
        tms = preset.get("thermal_management")
        precondition = tms.get("precondition_c") if isinstance(tms, Mapping) else None
        return cls(
            id=str(preset.get("id") or preset.get("name") or "?"),
            roadload=RoadLoadParams.from_preset(preset),
            motor_peak_w=float(drivetrain.get("motor_peak_kw", 1e6)) * 1000.0,
            efficiency_load=np.asarray(drivetrain.get("efficiency_load", [0.0, 1.0]), float),
            efficiency_value=np.asarray(drivetrain.get("efficiency_value", [1.0, 1.0]), float),
            transmission_efficiency=float(drivetrain.get("transmission_efficiency", 1.0)),
            aux_kw=float(drivetrain.get("aux_kw", 0.0)),
            capacity_ah=capacity,
            cells_series=series,
            nominal_energy_kwh=energy,
            cell_v_max=float(pack.get("cell_v_max", 3.65)),
            max_charge_a=float(pack.get("max_charge_a") or 1e9),
            soc_min=float(pack.get("soc_min", 0.0)),
            soc_max=float(pack.get("soc_max", 1.0)),
            ocv_soc=ocv_soc,
            ocv_v=ocv_v,
            taper_soc=taper_soc,
            taper_c_rate=taper_c,
            derate_t=derate_t,
            derate_f=derate_f,
            precondition_c=None if precondition is None else float(precondition),
        )

    def terminal_power_kw(self, motor_power_w: np.ndarray) -> np.ndarray:
        """Electrical power at the pack terminals (kW) for all motors' mechanical power (W),
        split over the motors by the road-load torque split: the twin's
        ``motor_electrical_power`` per motor plus the preset's auxiliary load."""
        total = np.zeros_like(motor_power_w, dtype=float)
        for share in self.roadload.torque_split:
            mech = motor_power_w * share
            load = np.minimum(np.abs(mech) / self.motor_peak_w, 1.0)
            eta = np.interp(load, self.efficiency_load, self.efficiency_value)
            eta = eta * self.transmission_efficiency
            total += np.where(mech >= 0.0, mech / eta, mech * eta)
        return total / 1000.0 + self.aux_kw

    def accepted_current_a(self, soc: np.ndarray, temperature_c: float) -> np.ndarray:
        """The charge current the pack's management accepts at ``soc`` (taper × derating
        at the pack temperature, at most the pack's charge current limit), fresh capacity."""
        c_rate = np.interp(soc, self.taper_soc, self.taper_c_rate)
        derate = float(np.interp(temperature_c, self.derate_t, self.derate_f))
        return np.minimum(c_rate * self.capacity_ah * derate, self.max_charge_a)

    def pack_voltage(self, soc: float) -> float:
        """Open-circuit pack voltage at ``soc`` (for charge-time estimates)."""
        return self.cells_series * float(np.interp(soc, self.ocv_soc, self.ocv_v))

    def pack_voltages(self, soc: np.ndarray) -> np.ndarray:
        return self.cells_series * np.interp(soc, self.ocv_soc, self.ocv_v)

    @property
    def dc_offer_kw(self) -> float:
        """What a DC fast charger offers this car: its highest accepted current at the top
        of its voltage window, so the pack's own taper decides what it takes."""
        peak_a = min(float(np.max(self.taper_c_rate)) * self.capacity_ah, self.max_charge_a)
        return round(peak_a * self.cells_series * self.cell_v_max / 1000.0, 1)


@dataclass(frozen=True)
class Trace:
    """One pass of a cycle for one preset: 1 s samples, each ending at ``cum_km``."""

    cycle: str
    dt_s: np.ndarray = field(repr=False)
    power_kw: np.ndarray = field(repr=False)  # at the pack terminals, discharge > 0
    speed_m_s: np.ndarray = field(repr=False)  # interval mean
    cum_km: np.ndarray = field(repr=False)
    cum_kwh: np.ndarray = field(repr=False)
    #: Sample counts after which the car stands still (a trip may end there), ascending.
    stops: np.ndarray = field(repr=False)

    @property
    def km(self) -> float:
        return float(self.cum_km[-1])

    @property
    def kwh(self) -> float:
        return float(self.cum_kwh[-1])

    @property
    def duration_s(self) -> float:
        return float(np.sum(self.dt_s))


def make_trace(cycle: str, info: PresetInfo, window_s: float = 1.0) -> Trace:
    """``cycle`` for the preset ``info``: the road-load model's 1 s intervals, runs of
    identical ones (standing still, steady cruising) joined into one sample — the twin
    integrates a constant input over any ``dt_s`` exactly, so this loses nothing.

    ``window_s`` > 1 coarsens the drive: the stretches between stops are cut into windows of
    at most ``window_s`` seconds, and each window sends its motoring and its regenerating
    seconds as one sample each (mean power and speed over them). Energy out and in,
    distance, time and throughput stay those of the 1 s trace; what is lost is the spread of
    the power within a window (a little ohmic heat, and regeneration peaks that a cold pack
    would have had to refuse), see docs/fleet.md."""
    trace = load_cycle(cycle)
    result = road_load(trace.time_s, trace.speed_m_s, info.roadload, trace.grade)
    dt = result.dt_s
    power = info.terminal_power_kw(result.motor_power_w)
    speed = result.speed_m_s
    n = len(dt)
    ends = np.cumsum(dt)
    stopped = np.zeros(n, dtype=bool)  # the car stands still at the end of interval i
    stopped[np.flatnonzero(np.asarray(trace.speed_m_s[1:], float) == 0.0)] = True
    if window_s > 1.0:
        # Window number of each interval: a new window after every stop and every window_s.
        boundary = np.zeros(n, dtype=bool)
        boundary[1:] = stopped[:-1]
        segment = np.cumsum(boundary)
        seg_start = np.concatenate(([0.0], ends))[np.flatnonzero(np.r_[True, boundary[1:]])]
        window = (ends - dt - seg_start[segment]) // window_s
        key = segment * (n + 1) + window.astype(int)
        sign = np.where(power < 0.0, 1, 0)
        group = key * 2 + sign
        # Groups in order of their first interval: (window, sign) parts of a window follow
        # each other in the order their first intervals come.
        _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        g = rank[inverse]
        m = len(order)
        dt_m = np.bincount(g, weights=dt, minlength=m)
        power_m = np.bincount(g, weights=power * dt, minlength=m) / dt_m
        speed_m = np.bincount(g, weights=speed * dt, minlength=m) / dt_m
        # A group ends at a stop when its last interval does and it closes its segment.
        last = np.zeros(m, dtype=int)
        np.maximum.at(last, g, np.arange(n))
        stop_m = stopped[last] & (np.r_[g[1:] != g[:-1], True][last])
        dt, power, speed, stopped = dt_m, power_m, speed_m, stop_m
    else:
        # (A run of standing seconds becomes one sample that ends at a stop: a trip cut
        # there still ends standing.)
        same = np.r_[False, (power[1:] == power[:-1]) & (speed[1:] == speed[:-1])]
        starts = np.flatnonzero(~same)
        last = np.r_[starts[1:], n] - 1
        dt = np.add.reduceat(dt, starts)
        power, speed = power[starts], speed[starts]
        stopped = stopped[last]
    return Trace(
        cycle=trace.name,
        dt_s=dt,
        power_kw=power,
        speed_m_s=speed,
        cum_km=np.cumsum(speed * dt) / 1000.0,
        cum_kwh=np.cumsum(power * dt) / 3600.0,
        stops=np.flatnonzero(stopped) + 1,
    )


@dataclass(frozen=True)
class Piece:
    """The first ``n`` samples of ``trace``."""

    trace: Trace
    n: int

    @property
    def km(self) -> float:
        return float(self.trace.cum_km[self.n - 1]) if self.n else 0.0

    @property
    def kwh(self) -> float:
        return float(self.trace.cum_kwh[self.n - 1]) if self.n else 0.0


def _nearest_stop(trace: Trace, km: float) -> int:
    """Samples of the prefix that ends at a stop nearest ``km`` (0: none of the trace)."""
    cuts = np.concatenate(([0], trace.stops))
    dist = np.concatenate(([0.0], trace.cum_km[trace.stops - 1]))
    return int(cuts[int(np.argmin(np.abs(dist - km)))])


class TraceLibrary:
    """Traces per (preset, cycle), computed on first use (thread-safe)."""

    def __init__(self, presets: Mapping[str, PresetInfo], window_s: float = 1.0) -> None:
        self.presets = dict(presets)
        self.window_s = window_s
        self._traces: dict[tuple[str, str], Trace] = {}
        self._lock = threading.Lock()

    def trace(self, preset: str, cycle: str) -> Trace:
        key = (preset, cycle)
        found = self._traces.get(key)
        if found is None:
            with self._lock:
                found = self._traces.get(key)
                if found is None:
                    info = self.presets[preset]
                    found = self._traces[key] = make_trace(cycle, info, self.window_s)
        return found

    def whole(self, preset: str, cycle: str) -> Piece:
        trace = self.trace(preset, cycle)
        return Piece(trace, len(trace.dt_s))

    def trip(self, preset: str, route: Route | str, km: float) -> list[Piece]:
        """The pieces of a trip of about ``km`` on ``route``: the head, whole passes of the
        body, the last pass cut at the stop nearest the distance still to go, the tail
        (a trip shorter than head and tail is the head cut at a stop)."""
        r = ROUTES[route] if isinstance(route, str) else route
        head = [self.whole(preset, c) for c in r.head]
        tail = [self.whole(preset, c) for c in r.tail]
        fixed_km = sum(p.km for p in head) + sum(p.km for p in tail)
        if km < fixed_km and (head or tail):
            first = (head or tail)[0].trace
            n = _nearest_stop(first, km) or (int(first.stops[0]) if first.stops.size else 0)
            return [Piece(first, n)] if n else []
        pieces = list(head)
        need = km - fixed_km
        body = [self.trace(preset, c) for c in r.body]
        i = 0
        while need > 0.0:
            trace = body[i % len(body)]
            i += 1
            if trace.km <= need:
                pieces.append(Piece(trace, len(trace.dt_s)))
                need -= trace.km
                continue
            n = _nearest_stop(trace, need)
            if n:
                pieces.append(Piece(trace, n))
            break
        if not pieces and not tail:  # shorter than the first stop: drive to it
            trace = body[0]
            n = int(trace.stops[0]) if trace.stops.size else len(trace.dt_s)
            pieces.append(Piece(trace, n))
        return pieces + tail
