"""A DC fast-charge session: optional preconditioning, then charging at a charger's power until
the pack reaches a target SOC. The twin's charge taper and thermal management decide what the
pack accepts; this source only plugs in and watches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.samples import Sample

logger = logging.getLogger("bridge.charge")

STEP_S = 10.0  # one charging sample
CHECK_S = 60.0  # read the pack back this often
MAX_SESSION_S = 4 * 3600.0
MAX_STALL_S = 1800.0  # no SOC gain for this long (and not warming up): give up


@dataclass(frozen=True)
class ChargeSession:
    charger_kw: float = 250.0
    from_soc: float = 0.1
    to_soc: float = 0.8
    ambient_c: float | None = None
    precondition_min: float = 0.0  # heating for a fast charge before plugging in
    aux_kw: float = 0.25  # while preconditioning (the car is awake, parked)

    def __post_init__(self) -> None:
        if not 0.0 <= self.from_soc < self.to_soc <= 1.0:
            raise ValueError("charge levels must satisfy 0 <= from < to <= 1")
        if self.charger_kw <= 0 or self.precondition_min < 0:
            raise ValueError("charger power must be > 0 and preconditioning >= 0")


@dataclass
class ChargeReport:
    """What the session saw, read back once a minute from the twin's telemetry."""

    minutes: list[float] = field(default_factory=list)
    soc: list[float] = field(default_factory=list)
    power_kw: list[float] = field(default_factory=list)  # accepted at the pack (charge > 0)
    temperature_c: list[float] = field(default_factory=list)
    tms_kwh_start: float | None = None  # before any preconditioning
    start_temperature_c: float | None = None
    tms_kwh_end: float | None = None
    precondition_s: float = 0.0
    stopped: str = ""
    resumed: str = ""  # set when the session continued an interrupted one (state file)

    def minutes_between(self, low: float, high: float) -> float | None:
        """Minutes of charging from SOC `low` to `high` (linear between read-backs)."""
        t_low = _crossing(self.minutes, self.soc, low)
        t_high = _crossing(self.minutes, self.soc, high)
        return None if t_low is None or t_high is None else t_high - t_low

    def summary(self, low: float, high: float) -> str:
        span = self.minutes_between(low, high)
        parts = [
            f"{low * 100:.0f}->{high * 100:.0f} % in "
            + (f"{span:.1f} min" if span is not None else "(not reached)")
        ]
        if self.power_kw:
            parts.append(f"peak {max(self.power_kw):.0f} kW")
        if self.temperature_c:
            start = self.start_temperature_c
            first = self.temperature_c[0] if start is None else start
            plugged = f" (plugged in at {self.temperature_c[0]:.1f})" if self.precondition_s else ""
            parts.append(
                f"pack {first:.1f}{plugged} -> peak {max(self.temperature_c):.1f} -> end "
                f"{self.temperature_c[-1]:.1f} °C"
            )
        if self.tms_kwh_start is not None and self.tms_kwh_end is not None:
            parts.append(f"thermal management {self.tms_kwh_end - self.tms_kwh_start:.2f} kWh")
        if self.precondition_s:
            parts.append(f"after {self.precondition_s / 60:.0f} min preconditioning")
        if self.stopped:
            parts.append(self.stopped)
        if self.resumed:
            parts.append(self.resumed)
        return ", ".join(parts)


def _crossing(t: list[float], y: list[float], level: float) -> float | None:
    if y and y[0] >= level:
        return t[0]
    for (t0, y0), (t1, y1) in zip(zip(t, y, strict=True), zip(t[1:], y[1:], strict=True),
                                  strict=False):  # fmt: skip
        if y0 < level <= y1:
            return t0 + (t1 - t0) * (level - y0) / (y1 - y0)
    return None


def charge_samples(
    session: ChargeSession,
    telemetry: Callable[[], Mapping[str, Any] | None],
    report: ChargeReport,
    start: Mapping[str, Any] | None = None,
) -> Iterator[Sample]:
    """Samples of the session. `telemetry` returns the twin's telemetry after everything
    yielded so far (the poster waits for the service); `report` fills as it goes.

    A sample's `position` is `{"phase": "wake"}`, `{"phase": "precondition", "t_s": s}`
    (seconds of preconditioning done) or `{"phase": "charge", "steps": k}` (charging samples
    done); `start` continues right behind it, and the report then covers the rest only."""
    amb = session.ambient_c
    pre_s = session.precondition_min * 60.0
    phase = "" if start is None else str(start.get("phase"))
    if not phase:
        # Waking up (on the charger, or preconditioning for it) for one second, so the pack's
        # state can be read back before the session's energy is counted.
        yield Sample(dt_s=1.0, power_kw=session.aux_kw, charging=pre_s == 0.0 or None,
                     precondition=pre_s > 0.0 or None, wheel_speed_m_s=0.0, ambient_c=amb,
                     extras={"phase": "wake"}, position={"phase": "wake"})  # fmt: skip
    steps = int(start.get("steps", 0)) if start is not None and phase == "charge" else 0
    if start is not None:
        done_min = {"charge": steps * STEP_S, "precondition": float(start.get("t_s", 0.0))}
        report.resumed = f"resumed after {done_min.get(phase, 0.0) / 60:.0f} min of {phase}"
        logger.info("charge session: %s", report.resumed)
    tel = telemetry()
    if tel is None:
        report.stopped = "no answer from the twin"
        return
    report.tms_kwh_start = float(tel.get("tms_energy_kwh", 0.0))
    report.start_temperature_c = float(tel["temperature"])
    if phase == "precondition" and start is not None:
        report.precondition_s = float(start.get("t_s", 0.0))
    while phase != "charge" and report.precondition_s < pre_s - 1e-9:
        dt = min(STEP_S, pre_s - report.precondition_s)
        report.precondition_s += dt
        yield Sample(dt_s=dt, power_kw=session.aux_kw, precondition=True, wheel_speed_m_s=0.0,
                     ambient_c=amb, extras={"phase": "precondition"},
                     position={"phase": "precondition", "t_s": report.precondition_s})  # fmt: skip
    if pre_s > 0.0 and phase != "charge":
        tel = telemetry()
        if tel is None:
            report.stopped = "no answer from the twin"
            return
    t = steps * STEP_S
    _record(report, t / 60.0, tel)
    logger.info("plugged in at SOC %.1f %%, pack %.1f °C, charger %.0f kW", tel["soc"],
                tel["temperature"], session.charger_kw)  # fmt: skip
    per_check = int(CHECK_S / STEP_S)
    best_soc, best_t = report.soc[-1], t
    # A session resumed between read-backs first completes that minute, as it would have.
    while steps % per_check or report.soc[-1] < session.to_soc:
        for _ in range(per_check - steps % per_check):  # to the next read-back
            steps += 1
            yield Sample.plugged_in(
                STEP_S, session.charger_kw, amb, {"phase": "charge", "steps": steps}
            )
        t = steps * STEP_S
        tel = telemetry()
        if tel is None:
            report.stopped = "no answer from the twin"
            return
        _record(report, t / 60.0, tel)
        if report.soc[-1] > best_soc + 1e-6:
            best_soc, best_t = report.soc[-1], t
        elif t - best_t >= MAX_STALL_S:
            report.stopped = f"stopped: no charge accepted for {MAX_STALL_S / 60:.0f} min"
            break
        if t >= MAX_SESSION_S:
            report.stopped = f"stopped after {MAX_SESSION_S / 3600:.0f} h"
            break
    report.tms_kwh_end = float(tel.get("tms_energy_kwh", 0.0))


def _record(report: ChargeReport, minutes: float, tel: Mapping[str, Any]) -> None:
    report.minutes.append(minutes)
    report.soc.append(float(tel["soc"]) / 100.0)
    report.power_kw.append(max(-float(tel["power_kw"]), 0.0))
    report.temperature_c.append(float(tel["temperature"]))
