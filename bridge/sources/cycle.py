"""Drive-cycle source: a bundled speed trace through the road-load model, repeated, with
optional charging stops between cycles."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, TypeVar

from bridge.cycles import load_cycle
from bridge.roadload import RoadLoadParams, samples_from_trace
from bridge.samples import Sample

logger = logging.getLogger(__name__)

#: Longest charging stop before giving up on reaching the target (a pack that stops
#: accepting charge, e.g. at its voltage limit, must not stall the run forever).
MAX_CHARGE_STOP_S = 48 * 3600.0


@dataclass(frozen=True)
class ChargeStop:
    """Plug in between cycles when SOC < ``below`` and charge at ``power_kw`` to ``to``."""

    to: float = 0.9
    below: float = 0.3
    power_kw: float = 11.0
    step_s: float = 10.0  # length of one charging sample
    check_s: float = 300.0  # re-read the SOC from the service at least this often

    def __post_init__(self) -> None:
        if not 0 < self.to <= 1 or not 0 <= self.below <= 1:
            raise ValueError("charge levels must be within 0..1")
        if self.power_kw <= 0 or self.step_s <= 0 or self.check_s < self.step_s:
            raise ValueError("charge power and steps must be > 0 (check_s ≥ step_s)")


def cycle_samples(
    cycle: str,
    params: RoadLoadParams,
    *,
    repeat: int | None = 1,
    ambient_c: float | None = None,
    sample_hz: float | None = None,
    charge: ChargeStop | None = None,
    soc_feedback: Callable[[], float | None] | None = None,
    start: Mapping[str, Any] | None = None,
    daily_passes: int = 0,
    park_speedup: float | None = None,
) -> Iterator[Sample]:
    """Samples of ``repeat`` passes of ``cycle`` (None: forever).

    ``soc_feedback`` returns the pack SOC after everything yielded so far (the poster waits
    for the service); it is needed only for charging stops. Every sample's ``position`` is
    ``{"pass": p, "index": i}`` (``i`` samples of pass ``p`` are done), plus ``"stop"``
    (:class:`StopProgress`) inside the charging stop after pass ``p``; ``start`` (such a
    position) continues right behind that sample.

    ``daily_passes`` > 0 makes days: that many passes, then the car parks for the rest of the
    24 h (:func:`park`, charging first when SOC is below ``charge.below``); the last pass of
    the run also ends its day. Positions then also hold ``"day_s"`` (simulated seconds of the
    day before pass ``p``) and, while parked, ``"park"``. Park samples carry ``park_speedup``.
    """
    if charge is not None and soc_feedback is None:
        raise ValueError("charging stops need SOC feedback from the service")
    if daily_passes < 0:
        raise ValueError("daily_passes must be ≥ 0")
    trace = load_cycle(cycle)
    one_pass = list(
        samples_from_trace(
            trace.time_s,
            trace.speed_m_s,
            params,
            grade=trace.grade,
            sample_hz=sample_hz,
            ambient_c=ambient_c,
        )
    )
    pass_s = sum(sample.dt_s for sample in one_pass)
    logger.info(
        "cycle %s: %d samples, %.0f s, %.3f km per pass",
        trace.name,
        len(one_pass),
        trace.duration_s,
        trace.distance_km,
    )
    done, index, day_s = 0, 0, 0.0
    stop: Mapping[str, Any] | None = None
    parked: Mapping[str, Any] | None = None
    if start is not None:
        done, index = int(start["pass"]), int(start["index"])
        stop, parked = start.get("stop"), start.get("park")
        day_s = float(start.get("day_s", 0.0))
        if not 0 <= index <= len(one_pass) or done < 0:
            raise ValueError(f"cycle {trace.name}: no position {dict(start)}")
        logger.info("cycle %s: continuing pass %d at sample %d", trace.name, done, index)
    while repeat is None or done < repeat:
        extras: dict[str, Any] = {"phase": "drive", "cycle": trace.name, "pass": done}
        day = done // daily_passes + 1 if daily_passes else None
        if day is not None:
            extras["day"] = day
            if index == 0 and done % daily_passes == 0:
                logger.info("day %d: %d × %s", day, daily_passes, trace.name)
        at = partial(_position, done, day_s if daily_passes else None)
        for i in range(index, len(one_pass)):
            yield replace(one_pass[i], extras=extras, position=at(i + 1))
        index = 0
        more = repeat is None or done + 1 < repeat
        end_at = partial(at, len(one_pass))
        if day is not None and (not more or (done + 1) % daily_passes == 0):
            yield from park(
                day,
                day_s + pass_s,
                charge,
                soc_feedback,
                ambient_c=ambient_c,
                speedup=park_speedup,
                resume=parked,
                position=partial(_nested, end_at, "park"),
            )
            day_s = 0.0
        elif charge is not None and more and soc_feedback is not None:
            tag = {} if day is None else {"day": day}
            progress = yield from _tagged(
                charge_stop(
                    charge,
                    soc_feedback,
                    ambient_c=ambient_c,
                    resume=stop,
                    position=partial(_nested, end_at, "stop"),
                ),
                tag,
            )
            day_s += pass_s + (progress.charged_s if progress is not None else 0.0)
        else:
            day_s += pass_s
        stop = parked = None
        done += 1


def _position(done: int, day_s: float | None, index: int, **more: Any) -> dict[str, Any]:
    position: dict[str, Any] = {"pass": done, "index": index}
    if day_s is not None:
        position["day_s"] = day_s
    position.update(more)
    return position


def _nested(at: Callable[..., dict[str, Any]], key: str, progress: Any) -> dict[str, Any]:
    return at(**{key: progress})


R = TypeVar("R")


def _tagged(
    samples: Generator[Sample, None, R], extras: Mapping[str, Any], speedup: float | None = None
) -> Generator[Sample, None, R]:
    """``samples`` with ``extras`` added and paced at ``speedup``; returns what they return."""
    try:
        while True:
            try:
                sample = next(samples)
            except StopIteration as end:
                return end.value
            sample.extras = {**sample.extras, **extras}
            sample.speedup = speedup
            yield sample
    finally:
        samples.close()


DAY_S = 86400.0
PARK_SAMPLE_S = 600.0  # longest idle sample while parked


def park(
    day: int,
    day_used_s: float,
    charge: ChargeStop | None,
    soc_feedback: Callable[[], float | None] | None,
    *,
    ambient_c: float | None = None,
    speedup: float | None = None,
    resume: Mapping[str, Any] | None = None,
    position: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Iterator[Sample]:
    """The rest of day ``day`` (``DAY_S - day_used_s``, at least 0) parked: plugged in first
    when SOC is below ``charge.below`` (a :func:`charge_stop`), then idle samples of at most
    ``PARK_SAMPLE_S`` (``power_kw`` 0, no wheel speed).

    ``position`` turns the park's progress into each sample's position: ``{"charge":
    StopProgress, "from_soc": s}`` while charging, ``{"t_s": seconds parked, "charged":
    [from, to] | None}`` while idle; ``resume`` (such a progress) continues right behind it.
    """
    park_s = max(0.0, DAY_S - day_used_s)
    resume = resume or {}
    t_s, charged = 0.0, None

    def at(progress: dict[str, Any]) -> dict[str, Any] | None:
        return None if position is None else position(progress)

    def charge_position(progress: dict[str, Any]) -> dict[str, Any]:
        assert position is not None
        if not from_soc:
            from_soc.append(float(progress["soc"]))
        return position({"charge": progress, "from_soc": from_soc[0]})

    from_soc: list[float] = [float(resume["from_soc"])] if "from_soc" in resume else []
    if "t_s" in resume:
        t_s, charged = float(resume["t_s"]), resume.get("charged")
    elif charge is not None and soc_feedback is not None:
        stopped = yield from _tagged(
            charge_stop(
                charge,
                soc_feedback,
                ambient_c=ambient_c,
                resume=resume.get("charge"),
                position=None if position is None else charge_position,
            ),
            {"day": day},
            speedup,
        )
        if stopped is not None:
            t_s = stopped.charged_s
            charged = [from_soc[0] if from_soc else stopped.soc, stopped.soc]
    while park_s - t_s > 1e-9:
        dt_s = min(PARK_SAMPLE_S, park_s - t_s)
        t_s += dt_s
        yield Sample(
            dt_s=dt_s,
            power_kw=0.0,
            ambient_c=ambient_c,
            extras={"phase": "park", "day": day},
            position=at({"t_s": t_s, "charged": charged}),
            speedup=speedup,
        )
    line = f"day {day}: parked {t_s / 3600:.1f} h"
    if charged:
        line += f", charged {charged[0] * 100:.0f}→{charged[1] * 100:.0f} %"
    logger.info(line)


MAX_STALL_S = 1800.0  # no charge accepted for this long ends a stop
NEAR_FULL_SOC = 0.9  # above this, no charge accepted ends a stop at once


@dataclass
class StopProgress:
    """Where a charging stop is: saved with every charging sample, so it can be resumed."""

    soc: float  # at the start of the current chunk
    charged_s: float = 0.0  # chunks sent and read back
    stalled_s: float = 0.0
    rate_per_s: float | None = None
    chunk_s: float = 0.0  # the chunk being sent (0: none)
    left_s: float = 0.0  # of it still to send


def charge_stop(
    charge: ChargeStop,
    soc_feedback: Callable[[], float | None],
    *,
    ambient_c: float | None = None,
    resume: Mapping[str, Any] | None = None,
    position: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Generator[Sample, None, StopProgress | None]:
    """Charging samples (``power_kw`` < 0, ``charging``) until SOC reaches ``charge.to``.

    The SOC rate seen so far predicts how long the rest takes, so the stop ends close to
    the target with few round trips to the service. ``resume`` (a :class:`StopProgress` as a
    dict) continues a stop; ``position`` turns the progress into each sample's position.
    Returns the final progress (``charged_s``: the whole stop), None when no stop was needed.
    """
    if resume is not None:
        progress = StopProgress(**resume)
        logger.info("charging stop: continuing after %.0f s", progress.charged_s)
    else:
        soc = soc_feedback()
        if soc is None or soc >= charge.below:
            return None
        logger.info(
            "charging stop: SOC %.1f %% → %.0f %% at %.1f kW",
            soc * 100,
            charge.to * 100,
            charge.power_kw,
        )
        progress = StopProgress(soc=soc)
    p = progress
    while True:
        if p.chunk_s > 0.0 and p.left_s <= 1e-9:  # a chunk is sent: read the pack back
            chunk_s, p.chunk_s, p.left_s = p.chunk_s, 0.0, 0.0
            p.charged_s += chunk_s
            new_soc = soc_feedback()
            if new_soc is None:
                return p
            if new_soc <= p.soc:
                # A cold pack takes nothing until thermal management has heated it: wait, but
                # not for ever; near full (the top of the BMS window) it never takes more.
                p.stalled_s += chunk_s
                if p.stalled_s >= MAX_STALL_S or p.soc >= NEAR_FULL_SOC:
                    logger.warning("pack stopped accepting charge at SOC %.1f %%", new_soc * 100)
                    return p
                p.rate_per_s = None
            else:
                p.stalled_s = 0.0
                p.rate_per_s = (new_soc - p.soc) / chunk_s
                p.soc = new_soc
        if p.chunk_s == 0.0:
            if p.soc >= charge.to or p.charged_s >= MAX_CHARGE_STOP_S:
                break
            chunk_s = charge.check_s
            if p.rate_per_s:
                chunk_s = min(chunk_s, max(charge.step_s, (charge.to - p.soc) / p.rate_per_s))
            p.chunk_s = p.left_s = chunk_s
        dt_s = min(charge.step_s, p.left_s)
        p.left_s -= dt_s
        yield Sample.plugged_in(
            dt_s, charge.power_kw, ambient_c, None if position is None else position(asdict(p))
        )
    logger.info("charging stop done: SOC %.1f %% after %.0f min", p.soc * 100, p.charged_s / 60)
    return p
