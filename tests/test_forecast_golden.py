"""The aging models' forecasts hold to the pinned numbers (tests/golden/forecast.py), for a
fleet at once and for each vehicle on its own."""

from __future__ import annotations

import gzip
import json
from dataclasses import fields

import numpy as np
import pytest
from golden.forecast import HORIZONS, PATH, cases

from twin_service.models.aging import MODELS, REGISTRY
from twin_service.models.aging.base import ForecastStart
from twin_service.models.forecast import Usage

GOLDEN = json.loads(gzip.decompress(PATH.read_bytes()))["cases"]
PHYSICAL = [m.name for m in REGISTRY if m.physical]


@pytest.mark.parametrize("years", HORIZONS)
@pytest.mark.parametrize("model", PHYSICAL)
def test_forecast_holds_the_pinned_numbers(model: str, years: float) -> None:
    want = GOLDEN[f"{model}@{years:g}"]
    start, usage, capacity = cases(model, seed=100 + PHYSICAL.index(model))
    fleet = MODELS[model].forecast(start, usage, capacity, years)
    pick = want["points"]
    np.testing.assert_allclose(fleet.soh[:, pick], want["soh"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        fleet.resistance_factor[:, pick], want["resistance_factor"], rtol=1e-9, atol=1e-12
    )
    for v in range(0, capacity.shape[0], 7):
        one_start = ForecastStart(*(getattr(start, f.name)[v : v + 1] for f in fields(start)))
        one_usage = Usage(*(getattr(usage, f.name)[v : v + 1] for f in fields(usage)))
        one = MODELS[model].forecast(one_start, one_usage, capacity[v : v + 1], years)
        np.testing.assert_allclose(one.soh[0], fleet.soh[v], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(
            one.resistance_factor[0], fleet.resistance_factor[v], rtol=1e-12, atol=1e-15
        )
