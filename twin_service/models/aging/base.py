"""What every aging model declares, and the laws they share.

A model is one module: constants with their source, its state fields (a StateBlock), a step
compiled with numba that advances its fields over one sub-step, two small functions that
subtract its capacity loss from and add its resistance increase to a running total, and a
vectorised forecast. The registry in this package lists the models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twin_service.models.forecast import Forecast, Usage
from twin_service.models.jit import jit
from twin_service.models.state import StateBlock

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


@jit
def cycling_flags(
    charging: bool,
    c_rate: float,
    dod: float,
    dod_min: float,
    max_charge_c_rate: float,
    max_discharge_c_rate: float,
) -> int:
    """Out-of-range flags of a finished half-cycle (or stress window) of depth `dod` at mean
    C-rate `c_rate`."""
    flags = 0
    if dod < dod_min:
        flags |= OUT_OF_RANGE_DOD
    if charging and c_rate > max_charge_c_rate:
        flags |= OUT_OF_RANGE_CHARGE_RATE
    if not charging and c_rate > max_discharge_c_rate:
        flags |= OUT_OF_RANGE_DISCHARGE_RATE
    return flags


@jit
def temperature_flag(
    current_a: float, capacity_ah: float, temperature_c: float, t_min: float, t_max: float
) -> int:
    """OUT_OF_RANGE_TEMPERATURE while cycling outside the fitted temperatures."""
    if abs(current_a) > ACTIVE_C_RATE * capacity_ah and not t_min <= temperature_c <= t_max:
        return OUT_OF_RANGE_TEMPERATURE
    return 0


@jit
def mean_c_rate(ah: float, active_s: float, capacity_ah: float) -> float:
    """Mean C-rate over the time under current."""
    return (ah / (active_s / 3600.0)) / capacity_ah if active_s > 0.0 else 0.0
