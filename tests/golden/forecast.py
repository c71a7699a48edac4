"""Pin the aging models' forecasts: `python -m tests.golden.forecast "<reason>"` writes
tests/fixtures/golden_forecast.json.gz from today's code (random usages and aged starts,
seeded; every 7th weekly point and the last). tests/test_forecast_golden.py holds the models'
forecasts, one vehicle at a time and as a fleet, to these numbers."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from twin_service.models.aging import MODELS, REGISTRY
from twin_service.models.aging.base import ForecastStart
from twin_service.models.forecast import Usage

PATH = Path(__file__).resolve().parents[1] / "fixtures" / "golden_forecast.json.gz"
VEHICLES = 40
EVERY = 7
HORIZONS = (10.0, 3.7, 0.05)


def cases(model: str, seed: int) -> tuple[ForecastStart, Usage, np.ndarray]:
    """VEHICLES random vehicles: usage within and beyond the usual range, aged starts."""
    rng = np.random.default_rng(seed)
    n = VEHICLES
    m = MODELS[model]
    block = np.zeros((n, len(m.state)))
    for name in (*m.capacity_terms, *m.resistance_terms):
        block[:, m.state.index(name)] = rng.uniform(0.0, 0.08, n) * (rng.random(n) < 0.7)
    soc_min = rng.uniform(0.0, 0.3, n)
    usage = Usage(
        daily_km=rng.uniform(0.0, 500.0, n) * (rng.random(n) < 0.9),
        wh_per_km=rng.uniform(120.0, 260.0, n),
        soc_min=soc_min,
        soc_max=np.minimum(soc_min + rng.uniform(0.2, 1.0, n), 1.0),
        ambient_c=rng.uniform(-20.0, 45.0, n),
        charge_c_rate=rng.uniform(0.05, 1.0, n),
        dc_fast_share=rng.uniform(0.0, 1.0, n) * (rng.random(n) < 0.5),
    )
    start = ForecastStart(block, rng.uniform(0.0, 0.05, n), rng.uniform(0.0, 0.1, n))
    capacity = rng.uniform(40.0, 110.0, n)
    return start, usage, capacity


def compute() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, model in enumerate(m.name for m in REGISTRY if m.physical):
        for years in HORIZONS:
            start, usage, capacity = cases(model, seed=100 + i)
            f = MODELS[model].forecast(start, usage, capacity, years)
            pick = sorted({*range(0, f.years.shape[0], EVERY), f.years.shape[0] - 1})
            out[f"{model}@{years:g}"] = {
                "points": pick,
                "soh": f.soh[:, pick].tolist(),
                "resistance_factor": f.resistance_factor[:, pick].tolist(),
            }
    return out


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        print(__doc__)
        return 2
    body = {"reason": sys.argv[1], "cases": compute()}
    PATH.write_bytes(gzip.compress(json.dumps(body).encode(), mtime=0))
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
