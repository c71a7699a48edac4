"""The fleet runner: every vehicle's days through the bridge's poster, the fleet in step.

The fleet ages together in rounds of ``round_days`` simulated days (default one): a round
posts those days of every vehicle (``concurrency`` vehicles at a time, each through its own
:class:`Poster` for the round, all sharing one HTTP connection pool; one request per vehicle
and round, plus the read-backs its DC stops need), and the next round starts when the last
vehicle of this one is done — so a live view sees every vehicle move once per round. Paced
runs (``speedup``) start the round of day ``d`` no earlier than ``d × 86400 / speedup`` wall
seconds after the start.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.fleet.blocks import FleetClient
from bridge.fleet.climate import CLIMATES, ambient_at
from bridge.fleet.day import DAY_S, DAYS_PER_YEAR, DayBuilder, VehicleRun
from bridge.fleet.profiles import CLIMATE_SHARES, PROFILES, ROUTES, FleetVehicle
from bridge.fleet.traces import PresetInfo, TraceLibrary
from bridge.poster import (
    Poster,
    PosterConfig,
    PosterConflict,
    PosterStopped,
    atomic_write_json,
)
from clients.python import DEFAULT_TWIN_URL, TwinClient, TwinConnectionError, TwinHTTPError

logger = logging.getLogger("bridge.fleet")

#: Vehicles posted at the same time: enough to keep a local twin's core busy while the
#: bridge builds the next days on the other one.
DEFAULT_CONCURRENCY = 4
DEFAULT_SPEEDUP = 3600.0  # paced runs: a simulated hour per wall second
MANIFEST_FORMAT = "ev-twin-fleet-manifest/1"
#: Blocks of one vehicle-day per request at most (a day has a few dozen).
BLOCKS_PER_REQUEST = 512


class FleetError(RuntimeError):
    """The fleet cannot run or stopped; ``code`` is the command's exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class FleetResult:
    """What a run did. ``code``: 0 done, 1 failed, 4 vehicles held by the service, 130
    interrupted."""

    runs: list[VehicleRun]
    days: int
    vehicle_days: int = 0
    samples: int = 0
    requests: int = 0
    wall_s: float = 0.0
    code: int = 0
    error: str | None = None

    @property
    def total_vehicle_days(self) -> int:
        return len(self.runs) * self.days

    @property
    def vehicle_days_per_s(self) -> float:
        return self.vehicle_days / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0

    def summary_line(self) -> str:
        n = len(self.runs)
        line = (
            f"fleet {'done' if self.code == 0 else 'stopped'}: {n:,} vehicles × {self.days} "
            f"days, {self.vehicle_days:,}/{self.total_vehicle_days:,} vehicle-days, "
            f"{self.samples:,} samples in {self.requests:,} requests, {self.wall_s:.1f} s wall "
            f"({self.vehicle_days_per_s:.1f} vehicle-days/s, {self.samples_per_s:,.0f} "
            "samples/s)"
        )
        states = [r.state for r in self.runs if r.state]
        if states:
            km = sum(float(s.get("total_distance_km", 0.0)) for s in states)
            soh = [float(s.get("soh", 1.0)) for s in states]
            soc = [float(s.get("soc", 0.0)) for s in states]
            line += (
                f"; {km:,.0f} km, mean SOC {100 * sum(soc) / len(soc):.1f} %, SOH mean "
                f"{100 * sum(soh) / len(soh):.3f} % (min {100 * min(soh):.3f} %)"
            )
        return line

    def vehicle_results(self) -> list[dict[str, Any]]:
        out = []
        for run in self.runs:
            state = run.state or {}
            share = run.dc_share
            out.append(
                {
                    "vehicle_id": run.vehicle.vehicle_id,
                    "days": run.days,
                    "samples": run.samples,
                    "requests": run.requests,
                    "total_distance_km": state.get("total_distance_km"),
                    "soc": state.get("soc"),
                    "soh": state.get("soh"),
                    "resistance_factor": state.get("resistance_factor"),
                    "temperature_c": state.get("temperature_c"),
                    "energy_discharged_kwh": state.get("energy_discharged_kwh"),
                    "energy_charged_kwh": state.get("energy_charged_kwh"),
                    "cycle_count": state.get("cycle_count"),
                    "home_ac_kwh": round(run.ac_kwh, 3),
                    "dc_fast_kwh": round(run.dc_kwh, 3),
                    "dc_fast_share": None if share is None else round(share, 4),
                    "dc_sessions": run.dc_sessions,
                }
            )
        return out


def manifest_record(
    fleet: Sequence[FleetVehicle],
    *,
    seed: int,
    days: int,
    start_day: int,
    result: FleetResult | None = None,
) -> dict[str, Any]:
    """The manifest: the drawn fleet (every field of every vehicle), the profiles, routes
    and climates it was drawn from, and (after a run) each vehicle's outcome."""
    record: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "seed": seed,
        "vehicles": len(fleet),
        "days": days,
        "start_day": start_day,
        "profiles": {
            name: {
                "share": p.share,
                "description": p.description,
                "source": p.source,
                "routes": dict(p.routes),
            }
            for name, p in PROFILES.items()
        },
        "routes": {
            name: {"head": r.head, "body": r.body, "tail": r.tail, "description": r.description}
            for name, r in ROUTES.items()
        },
        "climates": {
            name: {
                "share": CLIMATE_SHARES.get(name, 0.0),
                "title": c.title,
                "station": c.station,
                "source": c.source,
                "january_mean_c": c.january_mean_c,
                "july_mean_c": c.july_mean_c,
                "annual_mean_c": c.annual_mean_c,
                "daily_range_k": c.daily_range_k,
            }
            for name, c in CLIMATES.items()
        },
        "fleet": [v.as_dict() for v in fleet],
    }
    if result is not None:
        record["run"] = {
            "code": result.code,
            "error": result.error,
            "vehicle_days": result.vehicle_days,
            "samples": result.samples,
            "requests": result.requests,
            "wall_s": round(result.wall_s, 3),
            "vehicle_days_per_s": round(result.vehicle_days_per_s, 3),
            "samples_per_s": round(result.samples_per_s, 1),
        }
        record["results"] = result.vehicle_results()
    return record


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class _Runner:
    def __init__(
        self,
        client: FleetClient,
        runs: list[VehicleRun],
        library: TraceLibrary,
        *,
        days: int,
        start_day: int,
        options: Mapping[str, Any] | None,
        replace: bool,
        flush_timeout_s: float,
        retry_max_s: float,
        stop: threading.Event,
    ) -> None:
        self.client = client
        self.runs = runs
        self.library = library
        self.days = days
        self.start_day = start_day
        self.options = dict(options) if options else None
        self.replace = replace
        self.flush_timeout_s = flush_timeout_s
        self.retry_max_s = retry_max_s
        self.stop = stop
        self.lock = threading.Lock()
        self.active: set[Poster] = set()
        self.vehicle_days = 0
        self.samples = 0
        self.requests = 0
        self.round = 0

    def seed_state(self, v: FleetVehicle) -> dict[str, Any]:
        """A new pack of the vehicle's preset at its drawn SOC, at the ambient temperature."""
        hour = ((self.start_day - 1) % DAYS_PER_YEAR) * 24.0
        return {"soc": v.initial_soc, "temperature_c": round(ambient_at(v.climate, hour), 3)}

    def post_days(self, run: VehicleRun, days: range) -> None:
        """Post ``days`` of ``run`` (in one request unless the driver needs the twin's state
        on the way)."""
        if self.stop.is_set():
            return
        v = run.vehicle
        initial = run.state or self.seed_state(v)
        config = PosterConfig(
            vehicle_id=v.vehicle_id,
            vehicle=v.preset,
            options=self.options,
            max_batch_samples=BLOCKS_PER_REQUEST,
            max_batch_age_s=60.0,
            max_buffer_samples=BLOCKS_PER_REQUEST * 4,
            block_when_full=True,
            retry_max_s=self.retry_max_s,
            initial_state=dict(initial),
            progress=False,
            replace=self.replace and run.days == 0,
        )
        poster = Poster(self.client, config).start()
        with self.lock:
            self.active.add(poster)

        def feedback() -> Mapping[str, Any] | None:
            if not poster.flush(self.flush_timeout_s):
                raise PosterStopped(f"not delivered within {self.flush_timeout_s:g} s")
            # flush() returns once the buffer is empty, which the sender makes so just before
            # it takes the answer's state in: wait for that too (samples_sent follows it).
            deadline = time.monotonic() + 10.0
            stats = poster.stats
            while stats.samples_sent + stats.samples_rejected < stats.samples_submitted:
                if poster.fatal is not None or time.monotonic() > deadline:
                    raise PosterStopped("no answer to read the pack's state from")
                time.sleep(0.0005)
            return poster.state

        builder: DayBuilder | None = None
        samples, active_s = 0, 0.0
        delivered = False
        try:
            for day in days:
                builder = DayBuilder(run, day, self.library, feedback, start_day=self.start_day,
                                     initial_state=initial, previous=builder)  # fmt: skip
                for block in builder.blocks():
                    poster.submit(block)
                samples += builder.samples
                active_s += builder.active_s
            delivered = poster.close(timeout_s=self.flush_timeout_s)
        except PosterStopped:
            poster.abort()
        except BaseException:
            poster.abort()
            raise
        finally:
            with self.lock:
                self.active.discard(poster)
        if not delivered or poster.fatal is not None:
            raise self._failure(poster, v, days)
        state = dict(poster.state or {})
        run.learn(run.state, state, active_s)
        run.state = state
        run.days += len(days)
        run.samples += samples
        run.requests += poster.stats.requests
        with self.lock:
            self.vehicle_days += len(days)
            self.samples += samples
            self.requests += poster.stats.requests

    def _failure(self, poster: Poster, v: FleetVehicle, days: range) -> FleetError:
        fatal = poster.fatal
        where = f"{v.vehicle_id} day {days[0] + 1}" + (f"-{days[-1] + 1}" if len(days) > 1 else "")
        if isinstance(fatal, PosterConflict):
            return FleetError(
                f"the service already holds a twin of {v.vehicle_id} (a fleet drawn before?): "
                "rerun with --replace to restart the fleet's twins from new packs, or use "
                "another twin",
                4,
            )
        if fatal is not None and str(fatal) != "aborted":
            return FleetError(f"{where}: {fatal}")
        if self.stop.is_set():
            return FleetError(f"{where}: interrupted", 130)
        reason = "service unreachable" if poster.unreachable else poster.unsent_reason
        return FleetError(f"{where}: not delivered within {self.flush_timeout_s:g} s ({reason})")

    def abort_all(self) -> None:
        with self.lock:
            active = list(self.active)
        for poster in active:
            poster.abort()


class _Progress:
    def __init__(self, runner: _Runner, total: int, enabled: bool, interval_s: float) -> None:
        self.runner = runner
        self.total = total
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.interval_s = 0.5 if self.tty else interval_s
        self.started_at = time.monotonic()
        self.last = 0.0

    def line(self) -> str:
        r = self.runner
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        done = r.vehicle_days
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else math.inf
        return (
            f"fleet: day {min(r.round + 1, r.days)}/{r.days} | {done:,}/{self.total:,} "
            f"vehicle-days ({100 * done / max(self.total, 1):.1f} %) | {rate:.1f} "
            f"vehicle-days/s | {r.samples / elapsed / 1e6:.2f} M samples/s | "
            f"{r.requests:,} requests | ETA {_duration(eta)}"
        )

    def tick(self, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < self.interval_s:
            return
        self.last = now
        text = self.line()
        if self.tty:
            sys.stderr.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _presets(client: TwinClient, ids: Sequence[str]) -> dict[str, PresetInfo]:
    out = {}
    for preset_id in ids:
        try:
            out[preset_id] = PresetInfo.from_preset(client.preset(preset_id))
        except KeyError:
            known = ", ".join(sorted(_known_presets(client))) or "-"
            raise FleetError(f"unknown vehicle preset {preset_id!r}; known: {known}", 2) from None
    return out


def _known_presets(client: TwinClient) -> list[str]:
    from clients.python import preset_ids

    try:
        return preset_ids(client.presets())
    except (TwinConnectionError, TwinHTTPError):
        return []


def _check_reachable(client: TwinClient) -> None:
    try:
        client.health()
    except TwinConnectionError as exc:
        reason = exc.__cause__ or exc
        raise FleetError(
            f"twin service unreachable at {client.base_url} ({type(reason).__name__}: "
            f"{reason}); start it (python -m twin_service) or pass --twin-url"
        ) from None
    except TwinHTTPError as exc:
        raise FleetError(f"twin service at {client.base_url} not healthy: {exc}") from None


def run_fleet(
    fleet: Sequence[FleetVehicle],
    days: int,
    *,
    seed: int = 0,
    client: TwinClient | None = None,
    twin_url: str | None = None,
    api_key: str | None = None,
    batch_format: str = "msgpack",
    concurrency: int = DEFAULT_CONCURRENCY,
    start_day: int = 1,
    speedup: float | None = None,
    options: Mapping[str, Any] | None = None,
    replace: bool = False,
    manifest: Path | None = None,
    progress: bool = True,
    progress_interval_s: float = 5.0,
    flush_timeout_s: float = 120.0,
    retry_max_s: float = 10.0,
    drive_window_s: float = 1.0,
    round_days: int = 1,
    stop: threading.Event | None = None,
) -> FleetResult:
    """Simulate ``days`` days of ``fleet`` (:func:`draw_fleet`, drawn with ``seed``) through
    the twin: a given ``client`` (its connection pool is shared; not closed here) or one
    opened on ``twin_url``. ``speedup`` None runs as fast as the twin takes; else round ``d``
    waits for ``d × 86400 / speedup`` wall seconds. ``options`` go to every ``POST /step``
    (``aging_model``, ``demo_mode``, ``time_multiplier``); ``replace`` restarts twins the
    service already holds. ``drive_window_s`` > 1 coarsens the drives (see
    :func:`~bridge.fleet.traces.make_trace`; 1: the cycles' own 1 s). ``round_days`` days of
    a vehicle go in one request (fewer requests; its SOC estimate then runs over several
    days before the twin's answer resets it). Setting ``stop`` (or Ctrl-C) ends the run after
    the vehicle-days in flight.

    Raises :class:`FleetError` when the fleet cannot start (service unreachable: code 1,
    unknown preset: 2); the result's ``code`` says how the run ended."""
    if days < 0 or concurrency < 1:
        raise FleetError("need days ≥ 0 and concurrency ≥ 1", 2)
    if not 1 <= start_day <= DAYS_PER_YEAR:
        raise FleetError(f"start day must be within 1..{DAYS_PER_YEAR}", 2)
    if speedup is not None and not speedup > 0:
        raise FleetError("speedup must be > 0", 2)
    if not drive_window_s >= 1.0:
        raise FleetError("the drive window must be ≥ 1 s", 2)
    if round_days < 1:
        raise FleetError("rounds need at least one day", 2)
    own = client is None
    base = client or TwinClient(
        twin_url or DEFAULT_TWIN_URL, api_key=api_key, batch_format=batch_format
    )
    twin = FleetClient.around(base)
    stop = stop or threading.Event()
    try:
        _check_reachable(twin)
        presets = _presets(twin, sorted({v.preset for v in fleet}))
        library = TraceLibrary(presets, window_s=drive_window_s)
        if manifest is not None:
            atomic_write_json(
                manifest, manifest_record(fleet, seed=seed, days=days, start_day=start_day)
            )
        runs = [VehicleRun(v, seed) for v in fleet]
        runner = _Runner(
            twin, runs, library, days=days, start_day=start_day, options=options,
            replace=replace, flush_timeout_s=flush_timeout_s, retry_max_s=retry_max_s,
            stop=stop,
        )  # fmt: skip
        result = _run_rounds(
            runner, speedup, concurrency, progress, progress_interval_s, round_days
        )
        if manifest is not None:
            record = manifest_record(
                fleet, seed=seed, days=days, start_day=start_day, result=result
            )
            atomic_write_json(manifest, record)
        return result
    finally:
        if own:
            base.close()


def _run_rounds(
    runner: _Runner,
    speedup: float | None,
    concurrency: int,
    progress: bool,
    interval_s: float,
    round_days: int = 1,
) -> FleetResult:
    result = FleetResult(runner.runs, runner.days)
    meter = _Progress(runner, result.total_vehicle_days, progress, interval_s)
    started_at = time.monotonic()
    logger.info(
        "fleet: %d vehicles × %d days from day %d of the year, %d at a time, %d day%s a round, %s",
        len(runner.runs),
        runner.days,
        runner.start_day,
        concurrency,
        round_days,
        "" if round_days == 1 else "s",
        "as fast as the twin takes" if speedup is None else f"paced at {speedup:g}× real time",
    )
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fleet")
    pending: set[cf.Future[None]] = set()
    try:
        for day in range(0, runner.days, round_days):
            days = range(day, min(day + round_days, runner.days))
            runner.round = day
            if speedup is not None:
                due = started_at + day * DAY_S / speedup
                while not runner.stop.is_set() and time.monotonic() < due:
                    meter.tick()
                    runner.stop.wait(min(due - time.monotonic(), 0.5))
            if runner.stop.is_set():
                break
            pending = {pool.submit(runner.post_days, run, days) for run in runner.runs}
            while pending:
                finished, pending = cf.wait(
                    pending, timeout=min(interval_s, 0.5), return_when=cf.FIRST_EXCEPTION
                )
                for future in finished:
                    exc = future.exception()
                    if exc is not None and result.error is None:
                        runner.stop.set()
                        result.code, result.error = _outcome(exc)
                meter.tick()
            if result.error is not None:
                break
    except KeyboardInterrupt:
        runner.stop.set()
        result.code, result.error = 130, "interrupted"
        logger.warning(
            "interrupted: finishing the vehicle-days in flight (Ctrl-C again to quit now)"
        )
        try:
            cf.wait(pending)
        except KeyboardInterrupt:
            runner.abort_all()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if runner.stop.is_set() and result.error is None:
        result.code, result.error = 130, "stopped"  # by the caller's stop event
    result.vehicle_days = runner.vehicle_days
    result.samples = runner.samples
    result.requests = runner.requests
    result.wall_s = time.monotonic() - started_at
    meter.tick(final=True)
    if result.error and result.code != 130:
        logger.error("fleet stopped: %s", result.error)
    (logger.info if result.code == 0 else logger.warning)(result.summary_line())
    return result


def _outcome(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, FleetError):
        return exc.code, str(exc)
    logger.error("fleet worker failed", exc_info=exc)
    return 1, f"{type(exc).__name__}: {exc}"
