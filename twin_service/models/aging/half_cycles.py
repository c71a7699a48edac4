"""Half-cycle detection on an SOC trajectory, vectorised between reversals.

A half-cycle is a run of SOC in one direction. It ends when SOC moves back from the extreme by
more than `REVERSAL_BAND`, so regeneration blips inside a discharge do not split it. While it
runs, its depth (DOC) is start-to-extreme and its C-rate is the mean over time with current.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

REVERSAL_BAND = 0.005  # SOC fraction
_FIRST_WINDOW = 4096


@dataclass(frozen=True)
class HalfCycle:
    direction: int = 0  # +1 charging, -1 discharging, 0 not yet known
    start_soc: float = 0.85
    extreme_soc: float = 0.85
    ah: float = 0.0
    active_s: float = 0.0
    loss_sq_start: float = 0.0  # squared cycle capacity loss of all completed half-cycles
    resistance_start: float = 0.0  # cycle resistance increase of all completed half-cycles


@dataclass
class HalfCycleTrack:
    """Per-step view of the running half-cycle after each step."""

    doc: np.ndarray
    c_rate: np.ndarray
    loss_sq_start: np.ndarray
    resistance_start: np.ndarray
    final: HalfCycle


def track_half_cycles(
    soc_end: np.ndarray,
    charge_ah: np.ndarray,
    active_s: np.ndarray,
    hc: HalfCycle,
    capacity_ah: float,
    close_half_cycle,
) -> HalfCycleTrack:
    """Follow the half-cycle through steps whose end SOC is `soc_end`.

    `charge_ah` and `active_s` are each step's |Ah| and time under current. `close_half_cycle`
    maps (loss_sq_start, resistance_start, doc, c_rate) of a finished half-cycle to the new
    (loss_sq_start, resistance_start).
    """
    n = soc_end.shape[0]
    doc = np.empty(n)
    c_rate = np.empty(n)
    loss_sq = np.empty(n)
    res = np.empty(n)
    pos = 0
    window = _FIRST_WINDOW
    while pos < n:
        if hc.direction == 0:
            moved = np.flatnonzero(soc_end[pos:] != hc.start_soc)
            stop = n if moved.size == 0 else pos + int(moved[0])
            sl = slice(pos, stop)
            ah = hc.ah + np.cumsum(charge_ah[sl])
            act = hc.active_s + np.cumsum(active_s[sl])
            doc[sl] = 0.0
            c_rate[sl] = _mean_c_rate(ah, act, capacity_ah)
            loss_sq[sl] = hc.loss_sq_start
            res[sl] = hc.resistance_start
            if stop > pos:
                hc = replace(hc, ah=float(ah[-1]), active_s=float(act[-1]))
            if stop < n:
                direction = 1 if soc_end[stop] > hc.start_soc else -1
                hc = replace(hc, direction=direction, extreme_soc=hc.start_soc)
            pos = stop
            continue
        end = min(n, pos + window)
        seg = soc_end[pos:end]
        if hc.direction < 0:
            running = np.minimum.accumulate(np.concatenate(([hc.extreme_soc], seg)))
            reversed_ = seg > running[:-1] + REVERSAL_BAND
        else:
            running = np.maximum.accumulate(np.concatenate(([hc.extreme_soc], seg)))
            reversed_ = seg < running[:-1] - REVERSAL_BAND
        hits = np.flatnonzero(reversed_)
        stop = end if hits.size == 0 else pos + int(hits[0])
        k = stop - pos
        sl = slice(pos, stop)
        ah = hc.ah + np.cumsum(charge_ah[sl])
        act = hc.active_s + np.cumsum(active_s[sl])
        ext = running[1 : k + 1]
        doc[sl] = np.abs(ext - hc.start_soc)
        c_rate[sl] = _mean_c_rate(ah, act, capacity_ah)
        loss_sq[sl] = hc.loss_sq_start
        res[sl] = hc.resistance_start
        if k > 0:
            hc = replace(hc, extreme_soc=float(ext[-1]), ah=float(ah[-1]), active_s=float(act[-1]))
        if hits.size:
            # The half-cycle ended at its extreme; the next one starts there, going back.
            final_doc = abs(hc.extreme_soc - hc.start_soc)
            final_c = float(_mean_c_rate(np.array(hc.ah), np.array(hc.active_s), capacity_ah))
            new_loss_sq, new_res = close_half_cycle(
                hc.loss_sq_start, hc.resistance_start, final_doc, final_c
            )
            hc = HalfCycle(
                direction=-hc.direction,
                start_soc=hc.extreme_soc,
                extreme_soc=hc.extreme_soc,
                ah=0.0,
                active_s=0.0,
                loss_sq_start=float(new_loss_sq),
                resistance_start=float(new_res),
            )
            window = _FIRST_WINDOW
        else:
            window *= 4
        pos = stop
    return HalfCycleTrack(doc, c_rate, loss_sq, res, hc)


def _mean_c_rate(ah: np.ndarray, active_s: np.ndarray, capacity_ah: float) -> np.ndarray:
    hours = np.asarray(active_s) / 3600.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(hours > 0.0, np.asarray(ah) / np.where(hours > 0, hours, 1.0), 0.0)
    return rate / capacity_ah
