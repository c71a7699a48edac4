"""What every aging model declares, and the laws they share.

A model is one module: constants with their source, its state fields (a StateBlock), a step
compiled with numba that advances its fields over one sub-step, which of its fields make up
its capacity loss and resistance increase, its fitted range, and a vectorised forecast. The
registry in this package lists the models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twin_service.models.forecast import Forecast, Usage
from twin_service.models.jit import jit
from twin_service.models.laws import run_extreme, run_reversed, run_start
from twin_service.models.state import StateBlock, StateField

# Which stressors left the range a model was fitted on (bits of the kernel's flag column).
OUT_OF_RANGE_TEMPERATURE = 1
OUT_OF_RANGE_DOD = 2
OUT_OF_RANGE_CHARGE_RATE = 4
OUT_OF_RANGE_DISCHARGE_RATE = 8
OUT_OF_RANGE_NAMES = {
    OUT_OF_RANGE_TEMPERATURE: "temperature",
    OUT_OF_RANGE_DOD: "dod",
    OUT_OF_RANGE_CHARGE_RATE: "charge_c_rate",
    OUT_OF_RANGE_DISCHARGE_RATE: "discharge_c_rate",
}
OUT_OF_RANGE_STRESSORS: tuple[str, ...] = tuple(OUT_OF_RANGE_NAMES.values())
ACTIVE_C_RATE = 1e-3  # below C/1000 the pack counts as resting


def out_of_range_names(flags: int) -> list[str]:
    return [name for bit, name in OUT_OF_RANGE_NAMES.items() if flags & bit]


@dataclass(frozen=True)
class Validity:
    """The conditions a model was fitted on; outside them it extrapolates."""

    cycling_temperature_c: tuple[float, float]
    dod: tuple[float, float]
    max_charge_c_rate: float
    max_discharge_c_rate: float
    note: str

    def limits(self) -> np.ndarray:
        """The ranges as the compiled flag checks take them (see LIMIT_*)."""
        return np.array([*self.cycling_temperature_c, self.dod[0], self.max_charge_c_rate,
                         self.max_discharge_c_rate])  # fmt: skip

    def as_dict(self) -> dict[str, object]:
        return {
            "cycling_temperature_c": list(self.cycling_temperature_c),
            "dod": list(self.dod),
            "max_charge_c_rate": self.max_charge_c_rate,
            "max_discharge_c_rate": self.max_discharge_c_rate,
            "note": self.note,
        }


@dataclass(frozen=True)
class ForecastStart:
    """Accumulated aging at the start of a forecast, one row per vehicle."""

    block: np.ndarray  # (V, fields of the model's StateBlock)
    other_capacity_loss: np.ndarray  # (V,) losses booked by the other models, held
    other_resistance_increase: np.ndarray  # (V,)


@dataclass(frozen=True)
class AgingModel:
    name: str
    title: str
    cell: str
    sources: tuple[str, ...]
    validity: Validity | None
    outputs: tuple[str, ...]  # subset of ("capacity", "resistance")
    state: StateBlock
    # The fields whose sum is the model's capacity loss (fraction) and resistance increase
    # (relative): SOH = 1 - every model's capacity terms, in registry order; likewise R.
    capacity_terms: tuple[str, ...]
    resistance_terms: tuple[str, ...]
    # Where a seeded pack's capacity and resistance loss are booked (its own field, or None
    # for the default model's calendar fields), so the model continues from them.
    seed_capacity_field: str | None
    seed_resistance_field: str | None
    forecast: Callable[[ForecastStart, Usage, np.ndarray, float], Forecast]
    physical: bool = True  # a published model (compared side by side); the demo model is not

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "cell": self.cell,
            "sources": list(self.sources),
            "validity": self.validity.as_dict() if self.validity else None,
            "outputs": list(self.outputs),
            "state": [
                {"name": f.name, "unit": f.unit, "description": f.description}
                for f in self.state.fields
            ],
        }


LIMIT_T_MIN, LIMIT_T_MAX, LIMIT_DOD_MIN, LIMIT_CHARGE_C, LIMIT_DISCHARGE_C = range(5)


@jit
def cycling_flags(charging: bool, c_rate: float, dod: float, limits: np.ndarray) -> int:
    """Out-of-range flags of a finished half-cycle of depth `dod` at mean C-rate `c_rate`."""
    flags = 0
    if dod < limits[LIMIT_DOD_MIN]:
        flags |= OUT_OF_RANGE_DOD
    if charging and c_rate > limits[LIMIT_CHARGE_C]:
        flags |= OUT_OF_RANGE_CHARGE_RATE
    if not charging and c_rate > limits[LIMIT_DISCHARGE_C]:
        flags |= OUT_OF_RANGE_DISCHARGE_RATE
    return flags


@jit
def temperature_flag(
    current_a: float, capacity_ah: float, temperature_c: float, limits: np.ndarray
) -> int:
    """OUT_OF_RANGE_TEMPERATURE while cycling outside the fitted temperatures."""
    if abs(current_a) > ACTIVE_C_RATE * capacity_ah and not (
        limits[LIMIT_T_MIN] <= temperature_c <= limits[LIMIT_T_MAX]
    ):
        return OUT_OF_RANGE_TEMPERATURE
    return 0


@jit
def mean_c_rate(ah: float, active_s: float, capacity_ah: float) -> float:
    """Mean C-rate over the time under current."""
    return (ah / (active_s / 3600.0)) / capacity_ah if active_s > 0.0 else 0.0


# The running half-cycle (a run of SOC in one direction), as both physical models count it:
# five consecutive fields of a model's block, starting at the index given to follow_half_cycle.
HC_DIR, HC_START, HC_EXT, HC_AH, HC_ACTIVE = range(5)


def half_cycle_fields(group: str) -> tuple[StateField, ...]:
    return (
        StateField("direction", "1", "running half-cycle: +1 charging, -1 discharging, 0 not "
                   "yet known", -1.0, 1.0, direction=True, group=group),
        StateField("start_soc", "1", "SOC where the half-cycle started", -0.01, 1.01, "soc",
                   group=group),
        StateField("extreme_soc", "1", "SOC farthest from the start so far", -0.01, 1.01, "soc",
                   group=group),
        StateField("ah", "Ah", "charge moved in the half-cycle", group=group),
        StateField("active_s", "s", "time under current in the half-cycle", group=group),
    )  # fmt: skip


@jit
def follow_half_cycle(s, i, new_soc, cur, dt, cap_ah):
    """Advance the half-cycle whose fields start at s[i] to the sub-step's end SOC and
    current. Returns (ended, charging, doc, c_rate): whether a half-cycle ended at its extreme
    here, its direction, depth and mean C-rate while current flowed. The next one then starts
    at that extreme (s[i + HC_START]), going back."""
    d, ext = run_start(s[i + HC_DIR], s[i + HC_START], s[i + HC_EXT], new_soc)
    ended = run_reversed(d, ext, new_soc)
    charging = d > 0.0
    doc = 0.0
    c_rate = 0.0
    if ended:
        doc = abs(ext - s[i + HC_START])
        c_rate = mean_c_rate(s[i + HC_AH], s[i + HC_ACTIVE], cap_ah)
        d = -d
        s[i + HC_START] = ext
        s[i + HC_AH] = 0.0
        s[i + HC_ACTIVE] = 0.0
    s[i + HC_EXT] = run_extreme(d, ext, new_soc)
    s[i + HC_DIR] = d
    s[i + HC_AH] += abs(cur) * dt / 3600.0
    if abs(cur) > ACTIVE_C_RATE * cap_ah:
        s[i + HC_ACTIVE] += dt
    return ended, charging, doc, c_rate
