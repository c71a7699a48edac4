"""Forecast: 10 years for 1 vehicle and for 10,000 vehicles at once (the model's forecast
call, inputs built beforehand), against a per-cell loop in the style of NREL BLAST-Lite (one
object per cell, one Python update per day)."""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from benchmarks.common import best_of, goal, machine, table
from twin_service.models.aging import MODELS, REGISTRY
from twin_service.models.aging import naumann as nm
from twin_service.models.aging.base import ForecastStart
from twin_service.models.constants import GAS_CONSTANT, T_REF_K
from twin_service.models.forecast import Usage

YEARS = 10.0


class BlastStyleCell:
    """One cell, stepped a day at a time with the same Naumann equations (scalar Python)."""

    def __init__(self) -> None:
        self.q_cal = 0.0
        self.q_cyc = 0.0
        self.r = 0.0

    def update_day(
        self, soc_hi: float, soc_lo: float, temp_c: float, doc: float, c_dis: float, c_chg: float
    ) -> None:
        arr = math.exp(-nm.CAL_EA / GAS_CONSTANT * (1 / (temp_c + 273.15) - 1 / T_REF_K))
        k_hi = nm.CAL_K_REF * arr * (nm.CAL_SOC_C * (soc_hi - 0.5) ** 3 + nm.CAL_SOC_D)
        k_lo = nm.CAL_K_REF * arr * (nm.CAL_SOC_C * (soc_lo - 0.5) ** 3 + nm.CAL_SOC_D)
        self.q_cal = math.sqrt(self.q_cal**2 + 0.5 * (k_hi**2 + k_lo**2) * 86400.0)
        k_doc = nm.CYC_KDOC_A * (doc - nm.CYC_KDOC_CENTER) ** 3 + nm.CYC_KDOC_B
        kd = (nm.CYC_KC_SLOPE * c_dis + nm.CYC_KC_OFFSET) * k_doc / 100
        kc = (nm.CYC_KC_SLOPE * c_chg + nm.CYC_KC_OFFSET) * k_doc / 100
        self.q_cyc = math.sqrt(self.q_cyc**2 + (kd**2 + kc**2) * doc / 2)
        arr_r = math.exp(-nm.CAL_R_EA / GAS_CONSTANT * (1 / (temp_c + 273.15) - 1 / T_REF_K))
        self.r += nm.CAL_R_K_REF * arr_r * (nm.CAL_R_SOC_A * (soc_hi - 0.5) ** 2 + nm.CAL_R_SOC_B)

    @property
    def soh(self) -> float:
        return 1.0 - self.q_cal - self.q_cyc


def blast_style(n_cells: int, years: float) -> float:
    cells = [BlastStyleCell() for _ in range(n_cells)]
    for cell in cells:
        for _ in range(int(years * 365)):
            doc = 40 * 0.16 / (80 * max(cell.soh, 0.05))
            cell.update_day(0.9, 0.9 - doc, 20.0, doc, 0.08, 0.15)
    return cells[-1].soh


def inputs(n: int, model: str) -> tuple[ForecastStart, Usage, np.ndarray]:
    """n vehicles' usage (seeded) and new packs: built once, outside the timed forecast."""
    rng = np.random.default_rng(0)
    z = np.zeros(n)
    usage = Usage(
        rng.uniform(10, 120, n),
        np.full(n, 160.0),
        np.full(n, 0.2),
        np.full(n, 0.9),
        rng.uniform(5, 35, n),
        np.full(n, 0.15),
        z,
    )
    start = ForecastStart(np.zeros((n, len(MODELS[model].state))), z, z)
    return start, usage, np.full(n, 80.0)


def ours(n: int, years: float, model: str = "naumann") -> np.ndarray:
    start, usage, capacity = inputs(n, model)
    return MODELS[model].forecast(start, usage, capacity, years).soh


def main() -> None:
    base_cells = 20
    t0 = time.perf_counter()
    blast_style(base_cells, YEARS)
    base = (time.perf_counter() - t0) / (base_cells * YEARS)
    rows = [["BLAST-Lite-style per-cell daily loop (baseline)", base_cells, base * 1e6, 1.0]]
    for model in (m.name for m in REGISTRY if m.physical):
        for n in (1, 10_000):
            start, usage, capacity = inputs(n, model)
            forecast = MODELS[model].forecast
            forecast(start, usage, capacity, YEARS)  # compile or load the laws

            run = functools.partial(forecast, start, usage, capacity, YEARS)
            el = best_of(run, repeat=3 if n > 1 else 200)
            per = el / (n * YEARS)
            rows.append(
                [
                    f"{model} forecast, {n} vehicle(s) at once (weekly steps)",
                    n,
                    per * 1e6,
                    base / per,
                ]
            )
    table(
        f"Forecast: {YEARS:g} years ({machine()})",
        ["model", "vehicles", "us per vehicle-year", "x baseline"],
        rows,
    )
    print("\nGoal: >= 100x faster per vehicle-year than the per-cell loop.")
    for row in rows[1:]:
        if row[1] == 1:
            model = str(row[0]).split()[0]
            goal(f"One-vehicle forecast ({model}) x per-cell loop per vehicle-year",
                 float(row[3]), 100.0)  # type: ignore[arg-type]  # fmt: skip


if __name__ == "__main__":
    main()
