"""Drive-cycle source: a bundled speed trace through the road-load model, repeated, with
optional charging stops between cycles."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

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
) -> Iterator[Sample]:
    """Samples of ``repeat`` passes of ``cycle`` (None: forever).

    ``soc_feedback`` returns the pack SOC after everything yielded so far (the poster waits
    for the service); it is needed only for charging stops.
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
    done = 0
    while repeat is None or done < repeat:
        for sample in one_pass:
            yield replace(sample, extras={"phase": "drive", "cycle": trace.name, "pass": done})
        done += 1
        more = repeat is None or done < repeat
        if charge is not None and more and soc_feedback is not None:
            yield from charge_stop(charge, soc_feedback, ambient_c=ambient_c)


MAX_STALL_S = 1800.0  # no charge accepted for this long ends a stop
NEAR_FULL_SOC = 0.9  # above this, no charge accepted ends a stop at once


def charge_stop(
    charge: ChargeStop,
    soc_feedback: Callable[[], float | None],
    *,
    ambient_c: float | None = None,
) -> Iterator[Sample]:
    """Charging samples (``power_kw`` < 0, ``charging``) until SOC reaches ``charge.to``.

    The SOC rate seen so far predicts how long the rest takes, so the stop ends close to
    the target with few round trips to the service.
    """
    soc = soc_feedback()
    if soc is None or soc >= charge.below:
        return
    logger.info(
        "charging stop: SOC %.1f %% → %.0f %% at %.1f kW",
        soc * 100,
        charge.to * 100,
        charge.power_kw,
    )
    charged_s = 0.0
    stalled_s = 0.0
    rate_per_s: float | None = None
    while soc < charge.to and charged_s < MAX_CHARGE_STOP_S:
        chunk_s = charge.check_s
        if rate_per_s:
            chunk_s = min(chunk_s, max(charge.step_s, (charge.to - soc) / rate_per_s))
        remaining_s = chunk_s
        while remaining_s > 1e-9:
            dt_s = min(charge.step_s, remaining_s)
            remaining_s -= dt_s
            yield Sample(
                dt_s=dt_s,
                power_kw=-charge.power_kw,
                charging=True,
                wheel_speed_m_s=0.0,
                ambient_c=ambient_c,
                extras={"phase": "charge"},
            )
        charged_s += chunk_s
        new_soc = soc_feedback()
        if new_soc is None:
            return
        if new_soc <= soc:
            # A cold pack takes nothing until thermal management has heated it: wait, but not
            # for ever; near full (the top of the BMS window) it never takes more: stop.
            stalled_s += chunk_s
            if stalled_s >= MAX_STALL_S or soc >= NEAR_FULL_SOC:
                logger.warning("pack stopped accepting charge at SOC %.1f %%", new_soc * 100)
                return
            rate_per_s = None
            continue
        stalled_s = 0.0
        rate_per_s = (new_soc - soc) / chunk_s
        soc = new_soc
    logger.info("charging stop done: SOC %.1f %% after %.0f min", soc * 100, charged_s / 60)
