"""One vehicle's day as sample blocks: trips from the bundled drive cycles at their own 1 s,
parked hours as hourly samples, home AC and DC fast charging by the driver's habits.

Decisions that need the pack's state of charge use an estimate kept from the twin's last
answer (the previous day's, or the last one read back): each block's terminal energy at the
pack's mid-SOC open-circuit voltage, plus thermal management at the rate the twin reported
for the vehicle's previous day, with an uncertainty that grows with every change. A trip
that may run below the reserve asks the twin first; a DC fast-charging stop reads the exact
state back when it plugs in and after each chunk; a home AC charge is planned from the
estimate and completed from the twin's next answer. So a day costs one request, plus two
(at most four) per DC session.

Local time of the simulated year: day 1 is 1 January and a Monday; 365 days, no daylight
saving time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.fleet.blocks import SampleBlock
from bridge.fleet.climate import hourly_ambient
from bridge.fleet.profiles import FleetVehicle
from bridge.fleet.traces import Piece, PresetInfo, TraceLibrary

DAY_S = 86400.0
DAYS_PER_YEAR = 365
PARK_STEP_S = 3600.0  # parked: one sample per clock hour (the twin is exact for it)
AC_STEP_S = 900.0  # home AC charging samples
DC_STEP_S = 120.0  # DC fast-charging samples (the twin sub-steps them at 10 s)
MAX_BLOCK_SAMPLES = 20_000
#: The driver preconditions the pack for this long before a DC fast-charging stop (the
#: navigation-triggered preconditioning of current EVs; the twin heats to the preset's
#: preconditioning target while a sample has ``precondition``).
PRECONDITION_S = 15 * 60.0
#: A trip that would take the pack below this SOC stops at a DC charger on the way, at the
#: last pass of its cycle before the estimate reaches DC_STOP_SOC.
RESERVE_SOC = 0.12
DC_STOP_SOC = 0.2
#: A DC stop is worth making only for at least this much SOC.
MIN_DC_GAIN = 0.15
MAX_DC_S = 90 * 60.0
DC_TOP_UPS = 2
DC_DONE_SOC = 0.02  # a DC session within this of its target is done
#: The car is parked by this long before midnight (trips that would end later are cut at a
#: stop or dropped).
DAY_END_MARGIN_S = 60.0
#: Planned home charging ends this far (plus the estimate's uncertainty) below the driver's
#: limit; the twin's state at the next day's start says how far it got, and the car, still
#: plugged in, charges the rest. Within AC_DONE_SOC of the limit the charge is done.
AC_UNDERSHOOT_SOC = 0.003
AC_DONE_SOC = 0.006
#: A planned home charge that ends this long before the car leaves, with the estimate's
#: uncertainty above AC_DONE_SOC, reads the twin's state back and charges the rest (at most
#: AC_TOP_UPS times).
AC_TOP_UP_MIN_S = 1800.0
AC_TOP_UPS = 2
#: The SOC estimate's uncertainty grows by this share of every change it integrates.
DRIVE_UNCERTAINTY = 0.1
CHARGE_UNCERTAINTY = 0.05
AMBIENT_GRID_S = 600.0
DAY_JITTER_SIGMA = 0.25  # log-normal day-to-day spread of the distance (mean 1)


@dataclass(frozen=True)
class Trip:
    """A planned trip: leaves not before ``depart_s`` (time of day) and after ``wait_s``
    parked where the previous trip ended (``awake``: a taxi waiting with its systems on)."""

    km: float
    dest: str  # "home" or "away"
    depart_s: float | None = None
    wait_s: float = 0.0
    awake: bool = False


def weekday(start_day: int, day: int) -> int:
    """0 = Monday … 6 = Sunday of simulated day ``day`` (0-based) from ``start_day``."""
    return (start_day - 1 + day) % 7


def _jitter(rng: np.random.Generator) -> float:
    return math.exp(DAY_JITTER_SIGMA * rng.normal() - DAY_JITTER_SIGMA**2 / 2.0)


def plan_day(v: FleetVehicle, dow: int, rng: np.random.Generator) -> list[Trip]:
    """The trips of one day (weekly patterns keep ``daily_km`` the calendar mean)."""
    depart = v.depart_h * 3600.0
    if v.profile == "commute":
        # 5 weekdays of w, half of the weekend days a 0.8 w leisure trip: 5.8 w a week.
        w = v.daily_km * 7.0 / 5.8 * _jitter(rng)
        if dow < 5:
            leave = depart + rng.normal(0.0, 900.0)
            return [
                Trip(w / 2, "away", leave),
                Trip(w / 2, "home", wait_s=rng.uniform(8, 9.5) * 3600),
            ]
        if rng.random() < 0.5:
            return _round_trip(0.8 * w, rng.uniform(10, 15) * 3600, rng.uniform(1, 4) * 3600)
        return []
    if v.profile == "long_distance":
        # 5 weekdays of w, 30 % of the weekend days 0.5 w: 5.3 w a week.
        w = v.daily_km * 7.0 / 5.3 * _jitter(rng)
        if dow < 5:
            return _round_trip(w, depart + rng.normal(0.0, 900.0), rng.uniform(2, 5) * 3600)
        if rng.random() < 0.3:
            return _round_trip(0.5 * w, rng.uniform(9, 14) * 3600, rng.uniform(2, 5) * 3600)
        return []
    if v.profile == "taxi":
        if dow == v.index % 7:  # the day off
            return []
        km = v.daily_km * 7.0 / 6.0 * _jitter(rng)
        return _taxi_shift(km, depart + rng.normal(0.0, 1200.0), rng)
    if v.profile == "rarely_driven":
        p = max(v.drive_probability, 1e-6)
        if rng.random() >= p:
            return []
        km = v.daily_km / p * _jitter(rng)
        return _round_trip(km, depart + rng.normal(0.0, 3600.0), rng.uniform(0.5, 3) * 3600)
    raise ValueError(f"unknown profile {v.profile!r}")


def _round_trip(km: float, depart_s: float, stay_s: float) -> list[Trip]:
    return [Trip(km / 2, "away", max(depart_s, 0.0)), Trip(km / 2, "home", wait_s=stay_s)]


def _taxi_shift(km: float, start_s: float, rng: np.random.Generator) -> list[Trip]:
    """Out to the first fare, fares of 3-15 km with 3-15 min waits (a 30-min break at half
    the distance), home at the end."""
    home_leg = rng.uniform(3, 10)
    trips = [Trip(rng.uniform(3, 10), "away", max(start_s, 0.0))]
    done = trips[0].km
    on_break = False
    while done < km - home_leg:
        fare = min(rng.uniform(3, 15), max(km - home_leg - done, 1.0))
        if not on_break and done >= km / 2:
            trips.append(Trip(fare, "away", wait_s=1800.0))
            on_break = True
        else:
            trips.append(Trip(fare, "away", wait_s=rng.uniform(3, 15) * 60, awake=True))
        done += fare
    trips.append(Trip(home_leg, "home", wait_s=rng.uniform(3, 15) * 60, awake=True))
    return trips


def charge_time_s(
    info: PresetInfo, soc0: float, soc1: float, offer_kw: float, temperature_c: float, soh: float
) -> float:
    """Seconds to charge from ``soc0`` to ``soc1`` on a charger offering ``offer_kw``: the
    pack takes the smaller of the charger's current at its voltage and what its management
    accepts (taper over SOC, derating over temperature; thermal management and the ohmic
    rise of the voltage are left out)."""
    if soc1 <= soc0:
        return 0.0
    grid = np.linspace(soc0, soc1, 33)
    mid = (grid[:-1] + grid[1:]) / 2.0
    volts = info.pack_voltages(mid) * 1.02
    current = np.minimum(info.accepted_current_a(mid, temperature_c), offer_kw * 1e3 / volts)
    if np.any(current <= 0.0):
        return math.inf
    ds = (soc1 - soc0) / (len(grid) - 1)
    return float(np.sum(ds * info.capacity_ah * max(soh, 0.05) * 3600.0 / current))


@dataclass
class VehicleRun:
    """A vehicle across the days of a run: the twin's state and the driver's situation."""

    vehicle: FleetVehicle
    seed: int
    state: dict[str, Any] | None = None  # the twin's, after the last accepted day
    location: str = "home"
    plugged: bool = False  # on the home AC charger, the limit not reached yet
    ac_kwh: float = 0.0  # charging energy (SOC gained × usable energy), home AC
    dc_kwh: float = 0.0  # and DC fast charging
    dc_sessions: int = 0
    #: Thermal management's mean electrical power while the pack is active (driving,
    #: awake, charging), learnt from the twin's tms_energy_kwh over the previous day.
    tms_kw: float = 0.0
    days: int = 0
    samples: int = 0
    requests: int = 0

    def learn(
        self, before: Mapping[str, Any] | None, after: Mapping[str, Any], active_s: float
    ) -> None:
        """Update ``tms_kw`` from a day of the twin's states (``before`` None: a new pack)."""
        if active_s < 600.0:
            return
        used = float(after.get("tms_energy_kwh", 0.0)) - float(
            (before or {}).get("tms_energy_kwh", 0.0)
        )
        kw = max(used, 0.0) * 3600.0 / active_s
        self.tms_kw = kw if self.days == 0 else 0.5 * (self.tms_kw + kw)

    @property
    def dc_share(self) -> float | None:
        total = self.ac_kwh + self.dc_kwh
        return self.dc_kwh / total if total > 0 else None


Feedback = Callable[[], Mapping[str, Any] | None]


class DayBuilder:
    """The blocks of day ``day`` (0-based) of ``run``; ``feedback`` returns the twin's state
    after every block yielded so far (the poster flushes), or None. The day starts from the
    twin's state (``run.state``, else ``initial_state``), or from where ``previous`` (the
    builder of the day before, not yet answered for) left its estimate."""

    def __init__(
        self,
        run: VehicleRun,
        day: int,
        library: TraceLibrary,
        feedback: Feedback,
        *,
        start_day: int = 1,
        initial_state: Mapping[str, Any] | None = None,
        previous: DayBuilder | None = None,
    ) -> None:
        self.run = run
        self.v = run.vehicle
        self.info = library.presets[self.v.preset]
        self._volts = self.info.pack_voltage(0.5)
        self.library = library
        self.feedback = feedback
        self.day = day
        self.rng = np.random.default_rng([run.seed, 2, self.v.index, day])
        self.dow = weekday(start_day, day)
        self.hour0 = ((start_day - 1 + day) % DAYS_PER_YEAR) * 24.0
        self._ambient_curve: tuple[np.ndarray, np.ndarray] | None = None
        self.t = 0.0
        state = run.state or initial_state or {}
        self.soc = float(state.get("soc", self.v.initial_soc))
        self.soh = float(state.get("soh", 1.0))
        self.temperature_c = float(state.get("temperature_c", 25.0))
        self.km = 0.0
        self.samples = 0
        self.active_s = 0.0  # driving, awake or plugged in: thermal management may run
        #: Uncertainty of ``soc`` (0 right after the twin's answer).
        self.uncertainty = 0.0
        if previous is not None:
            self.soc, self.soh = previous.soc, previous.soh
            self.temperature_c, self.uncertainty = previous.temperature_c, previous.uncertainty
        #: Set when a DC stop could not be made (too late in the day): no more tries today.
        self.dc_unavailable = False

    # -- the day -----------------------------------------------------------------------------

    def blocks(self) -> Iterator[SampleBlock]:
        legs = []
        for trip in plan_day(self.v, self.dow, self.rng):
            pieces = self.library.trip(self.v.preset, self.v.route, trip.km)
            if pieces:
                legs.append((trip, pieces))
        for i, (trip, pieces) in enumerate(legs):
            onward = self._need_soc(legs[i + 1][1]) if i + 1 < len(legs) else 0.0
            arrival = self.t
            depart = max(arrival, trip.depart_s if trip.depart_s is not None else arrival)
            depart += trip.wait_s
            duration = sum(float(np.sum(p.trace.dt_s[: p.n])) for p in pieces)
            latest = DAY_S - DAY_END_MARGIN_S - duration
            if depart > latest:
                if trip.dest != "home":
                    continue  # no time left for it today
                depart = max(arrival, latest)
            yield from self._parked(depart, awake=trip.awake and depart > arrival)
            yield from self._trip(pieces, trip.dest, onward)
        yield from self._parked(DAY_S, awake=False)

    # -- parked --------------------------------------------------------------------------------

    def _ambient(self, mid_s: np.ndarray) -> np.ndarray:
        """The climate's ambient at times of the day (linear between AMBIENT_GRID_S points
        of the model: within 0.01 K of it)."""
        if self._ambient_curve is None:
            grid = np.arange(0.0, DAY_S + AMBIENT_GRID_S, AMBIENT_GRID_S)
            self._ambient_curve = grid, hourly_ambient(self.v.climate, self.hour0 + grid / 3600.0)
        grid, values = self._ambient_curve
        return np.interp(mid_s, grid, values)

    def _parked(self, until_s: float, awake: bool) -> Iterator[SampleBlock]:
        if self.location_home and self.run.plugged:
            yield from self._home_charge(until_s)
        if until_s - self.t <= 1e-6:
            return
        # Hour boundaries in between, so each sample has its own hour's ambient.
        inner = np.arange(math.floor(self.t / PARK_STEP_S) + 1, math.ceil(until_s / PARK_STEP_S))
        edges = np.concatenate(([self.t], inner * PARK_STEP_S, [until_s]))
        edges = edges[np.concatenate(([True], np.diff(edges) > 1e-6))]
        dt = np.diff(edges)
        power = np.full(dt.shape, self.info.aux_kw if awake else 0.0)
        yield self._block(dt, power, np.zeros_like(dt), phase="wait" if awake else "park")
        if awake:
            self._discharge(float(np.dot(power, dt)) / 3600.0)
            self._tms(float(np.sum(dt)))

    @property
    def location_home(self) -> bool:
        return self.run.location == "home"

    def _charge_samples(self, seconds: float, step_s: float) -> np.ndarray:
        full = int(seconds // step_s)
        dt = np.full(full, step_s)
        rest = seconds - full * step_s
        return np.append(dt, rest) if rest > 1e-6 else dt

    def _charging(self, seconds: float, offer_kw: float, step_s: float, phase: str) -> SampleBlock:
        dt = self._charge_samples(seconds, step_s)
        return self._block(dt, np.full(dt.shape, -offer_kw), np.zeros_like(dt), phase=phase,
                           charging=np.ones(dt.shape, dtype=bool))  # fmt: skip

    def _target_ac(self) -> float:
        return min(self.v.home_charge_limit, self.info.soc_max - 0.005)

    def _home_charge(self, until_s: float) -> Iterator[SampleBlock]:
        """Charge at the home charger from now until the limit or ``until_s``: planned from
        the estimate to just below the limit, finished once the twin's state says where the
        charge got (the car stays plugged in until then)."""
        limit = self._target_ac()
        if self.soc >= limit - AC_DONE_SOC:
            if self.uncertainty == 0.0:
                self.run.plugged = False
            return
        target = limit - AC_UNDERSHOOT_SOC - self.uncertainty
        if self.soc >= target:
            return  # charged as far as the estimate allows: the next answer tells the rest
        kw = self.v.home_ac_kw
        # Thermal management runs on the charger's power while plugged in.
        net_kw = max(kw - self.run.tms_kw, 0.5 * kw)
        for _ in range(AC_TOP_UPS + 1):
            need_s = charge_time_s(self.info, self.soc, target, net_kw, 25.0, self.soh)
            seconds = min(need_s, until_s - self.t)
            if seconds <= 1.0:
                return
            before = self.soc
            yield self._charging(seconds, kw, AC_STEP_S, "ac")
            self.soc += (target - before) * min(seconds / need_s, 1.0)
            self.active_s += seconds
            self.uncertainty += CHARGE_UNCERTAINTY * (self.soc - before)
            self.run.ac_kwh += (self.soc - before) * self._usable_kwh
            # Time left before the car leaves and the estimate too rough to stop on: ask the
            # twin and charge the rest (a charge that runs to midnight is completed from the
            # next day's first state instead).
            if until_s >= DAY_S or until_s - self.t < AC_TOP_UP_MIN_S:
                return
            if self.uncertainty <= AC_DONE_SOC:
                return
            if not self._read_back():
                return
            gained = self.soc - before
            if self.soc >= limit - AC_DONE_SOC:
                self.run.plugged = False
                return
            target = limit - AC_UNDERSHOOT_SOC
            if gained <= 0.0:
                return  # not taking charge (too cold, or full): leave it to the next day

    # -- driving ---------------------------------------------------------------------------------

    @property
    def _usable_kwh(self) -> float:
        """The pack's energy from empty to full at its mid-SOC voltage (aged capacity)."""
        return self.info.capacity_ah * max(self.soh, 0.05) * self._volts / 1e3

    @property
    def _per_kwh(self) -> float:
        """SOC per kWh at the terminals."""
        return 1.0 / self._usable_kwh

    def _discharge(self, kwh: float) -> None:
        """The estimate after ``kwh`` at the terminals (discharge > 0)."""
        change = kwh * self._per_kwh
        self.soc -= change
        self.uncertainty += DRIVE_UNCERTAINTY * abs(change)

    def _tms(self, active_s: float) -> None:
        """Thermal management's share of ``active_s`` seconds (learnt from earlier days)."""
        self.active_s += active_s
        if self.run.tms_kw > 0.0:
            self._discharge(self.run.tms_kw * active_s / 3600.0)

    def _need_soc(self, pieces: list[Piece]) -> float:
        """The estimated SOC a trip of ``pieces`` uses (thermal management included)."""
        kwh = sum(p.kwh for p in pieces)
        seconds = sum(float(np.sum(p.trace.dt_s[: p.n])) for p in pieces)
        return (kwh + self.run.tms_kw * seconds / 3600.0) * self._per_kwh

    def _trip(self, pieces: list[Piece], dest: str, onward_soc: float) -> Iterator[SampleBlock]:
        """Drive ``pieces`` to ``dest``; ``onward_soc``: what the next trip needs (a driver
        who could not make it charges at the destination)."""
        self.run.plugged = False
        dt = np.concatenate([p.trace.dt_s[: p.n] for p in pieces])
        power = np.concatenate([p.trace.power_kw[: p.n] for p in pieces])
        speed = np.concatenate([p.trace.speed_m_s[: p.n] for p in pieces])
        stops: list[np.ndarray] = []
        offset = 0
        for p in pieces:
            inner = p.trace.stops[p.trace.stops < p.n]
            stops.append(offset + inner)
            offset += p.n
            stops.append(np.array([offset]))
        at_rest = np.concatenate(stops)  # ascending; a piece's end may repeat its last stop
        at_rest = at_rest[np.concatenate(([True], np.diff(at_rest) > 0))]
        # Cut a trip that would end after the day's end at its last stop before it.
        end_s = self.t + np.cumsum(dt)
        fits = at_rest[end_s[at_rest - 1] <= DAY_S - DAY_END_MARGIN_S]
        if fits.size == 0:
            return
        n = int(fits[-1])
        at_rest = fits
        start = 0
        per_kwh = self._per_kwh
        while start < n:
            used = np.cumsum((power[start:n] + self.run.tms_kw) * dt[start:n]) / 3600.0
            along = self.soc - used * per_kwh
            if along[-1] < RESERVE_SOC + self.uncertainty and self.uncertainty > 0.005:
                self._read_back()  # running low: decide on the twin's state, not the estimate
                along = self.soc - used * per_kwh
            later = at_rest[at_rest > start]
            if along[-1] < RESERVE_SOC and later.size > 1 and not self.dc_unavailable:
                # Stop at a DC charger on the way: at the last stop before the estimate
                # reaches DC_STOP_SOC (the first one if even that is below).
                ok = later[:-1][along[later[:-1] - start - 1] >= DC_STOP_SOC]
                split = int(ok[-1] if ok.size else later[0])
                yield from self._drive(dt[start:split], power[start:split], speed[start:split],
                                       precondition=True)  # fmt: skip
                yield from self._dc_session()
                start = split
                continue
            dc = not self.dc_unavailable and self._dc_wanted(float(along[-1]), dest, onward_soc)
            yield from self._drive(dt[start:n], power[start:n], speed[start:n], precondition=dc)
            if dc:
                yield from self._dc_session()
            break
        self.run.location = dest
        if dest == "home" and self.soc < self.v.plug_in_soc:
            self.run.plugged = True

    def _drive(
        self, dt: np.ndarray, power: np.ndarray, speed: np.ndarray, precondition: bool
    ) -> Iterator[SampleBlock]:
        ends = np.cumsum(dt)
        flags = ends > ends[-1] - PRECONDITION_S if precondition else None
        for lo in range(0, len(dt), MAX_BLOCK_SAMPLES):
            hi = min(lo + MAX_BLOCK_SAMPLES, len(dt))
            yield self._block(dt[lo:hi], power[lo:hi], speed[lo:hi], phase="drive",
                              precondition=None if flags is None else flags[lo:hi])  # fmt: skip
        self._discharge(float(np.dot(power, dt)) / 3600.0)
        self._tms(float(np.sum(dt)))
        self.km += float(np.dot(speed, dt)) / 1e3

    # -- DC fast charging --------------------------------------------------------------------

    def _dc_due(self, kwh: float) -> bool:
        """Whether a DC session of ``kwh`` brings the DC share of the charging energy closer
        to the driver's ``dc_fast_share`` than charging elsewhere would."""
        dc, total = self.run.dc_kwh, self.run.ac_kwh + self.run.dc_kwh + kwh
        share = self.v.dc_fast_share
        return abs((dc + kwh) / total - share) < abs(dc / total - share)

    def _dc_wanted(self, soc_end: float, dest: str, onward_soc: float) -> bool:
        """A DC stop at the end of a trip: needed away from home when the next trip would
        take the pack below the reserve, else by the driver's habit (``_dc_due``) when the
        SOC is below the plug-in level."""
        target = min(self.v.dc_target_soc, self.info.soc_max - 0.01)
        if soc_end >= target - MIN_DC_GAIN:
            return False
        if dest != "home" and soc_end - onward_soc < RESERVE_SOC + self.uncertainty:
            return True
        if soc_end >= self.v.plug_in_soc:
            return False
        return self._dc_due((target - soc_end) * self._usable_kwh)

    def _read_back(self) -> bool:
        state = self.feedback()
        if state is None or "soc" not in state:
            return False
        self.uncertainty = 0.0
        self.soc = float(state["soc"])
        self.soh = float(state.get("soh", self.soh))
        self.temperature_c = float(state.get("temperature_c", self.temperature_c))
        return True

    def _dc_session(self) -> Iterator[SampleBlock]:
        """Plug in at a DC fast charger offering the preset's peak power. The twin's exact
        state at plugging in sets the first chunk (planned as if the pack were warm, as its
        thermal management makes it; so a cold pack ends short, not over), and after each
        chunk the twin's state says whether to charge on (at most DC_TOP_UPS more)."""
        self._read_back()
        target = min(self.v.dc_target_soc, self.info.soc_max - 0.01)
        if self.soc >= target - DC_DONE_SOC:
            return
        offer = self.info.dc_offer_kw
        before, left_s = self.soc, min(MAX_DC_S, DAY_S - DAY_END_MARGIN_S - self.t)
        for chunk in range(DC_TOP_UPS + 1):
            warm = self.temperature_c
            if self.info.precondition_c is not None:
                warm = max(warm, min(self.info.precondition_c, 25.0))
            need_s = charge_time_s(self.info, self.soc, target, offer, warm, self.soh)
            seconds = min(need_s, left_s)
            if seconds < (60.0 if chunk == 0 else 30.0):
                self.dc_unavailable = chunk == 0
                break
            start_soc = self.soc
            yield self._charging(seconds, offer, DC_STEP_S, "dc")
            left_s -= seconds
            self.active_s += seconds
            if chunk == 0:
                self.run.dc_sessions += 1
            self.soc += target - start_soc  # as planned, until the twin says
            self.uncertainty += CHARGE_UNCERTAINTY * (target - start_soc)
            if not self._read_back() or self.soc >= target - DC_DONE_SOC:
                break
        self.run.dc_kwh += max(self.soc - before, 0.0) * self._usable_kwh

    # -- blocks --------------------------------------------------------------------------------

    def _block(
        self,
        dt: np.ndarray,
        power: np.ndarray,
        speed: np.ndarray,
        *,
        phase: str,
        charging: np.ndarray | None = None,
        precondition: np.ndarray | None = None,
    ) -> SampleBlock:
        ends = self.t + np.cumsum(dt)
        ambient = self._ambient(ends - dt / 2.0)
        block = SampleBlock(dt, power, speed, ambient, charging, precondition,
                            extras={"phase": phase, "day": self.day + 1})  # fmt: skip
        self.t = float(ends[-1])
        self.samples += block.n
        return block
