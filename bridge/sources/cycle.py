"""Drive-cycle source: a bundled speed trace through the road-load model, repeated, with
optional charging stops between cycles."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

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
) -> Iterator[Sample]:
    """Samples of ``repeat`` passes of ``cycle`` (None: forever).

    ``soc_feedback`` returns the pack SOC after everything yielded so far (the poster waits
    for the service); it is needed only for charging stops. Every sample's ``position`` is
    ``{"pass": p, "index": i}`` (``i`` samples of pass ``p`` are done), plus ``"stop"``
    (:class:`StopProgress`) inside the charging stop after pass ``p``; ``start`` (such a
    position) continues right behind that sample.
    """
    if charge is not None and soc_feedback is None:
        raise ValueError("charging stops need SOC feedback from the service")
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
    logger.info(
        "cycle %s: %d samples, %.0f s, %.3f km per pass",
        trace.name,
        len(one_pass),
        trace.duration_s,
        trace.distance_km,
    )
    done, index = 0, 0
    stop: Mapping[str, Any] | None = None
    if start is not None:
        done, index = int(start["pass"]), int(start["index"])
        stop = start.get("stop")
        if not 0 <= index <= len(one_pass) or done < 0:
            raise ValueError(f"cycle {trace.name}: no position {dict(start)}")
        logger.info("cycle %s: continuing pass %d at sample %d", trace.name, done, index)
    while repeat is None or done < repeat:
        extras = {"phase": "drive", "cycle": trace.name, "pass": done}
        for i in range(index, len(one_pass)):
            yield replace(one_pass[i], extras=extras, position={"pass": done, "index": i + 1})
        index = 0
        more = repeat is None or done + 1 < repeat
        if charge is not None and more and soc_feedback is not None:
            position = partial(_stop_position, done, len(one_pass))
            yield from charge_stop(
                charge, soc_feedback, ambient_c=ambient_c, resume=stop, position=position
            )
        stop = None
        done += 1


def _stop_position(done: int, index: int, progress: dict[str, Any]) -> dict[str, Any]:
    return {"pass": done, "index": index, "stop": progress}


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
) -> Iterator[Sample]:
    """Charging samples (``power_kw`` < 0, ``charging``) until SOC reaches ``charge.to``.

    The SOC rate seen so far predicts how long the rest takes, so the stop ends close to
    the target with few round trips to the service. ``resume`` (a :class:`StopProgress` as a
    dict) continues a stop; ``position`` turns the progress into each sample's position.
    """
    if resume is not None:
        progress = StopProgress(**resume)
        logger.info("charging stop: continuing after %.0f s", progress.charged_s)
    else:
        soc = soc_feedback()
        if soc is None or soc >= charge.below:
            return
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
                return
            if new_soc <= p.soc:
                # A cold pack takes nothing until thermal management has heated it: wait, but
                # not for ever; near full (the top of the BMS window) it never takes more.
                p.stalled_s += chunk_s
                if p.stalled_s >= MAX_STALL_S or p.soc >= NEAR_FULL_SOC:
                    logger.warning("pack stopped accepting charge at SOC %.1f %%", new_soc * 100)
                    return
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
