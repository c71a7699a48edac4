"""The aging model registry: every model the service knows, in one place.

`GET /models`, `options.aging_model`, the forecast's `aging_model`, the OpenAPI enums and the
bridge's `--aging-model` choices all come from REGISTRY. Adding a model is one module (see
base.py for what it declares) plus its entry below and its branch in the compiled `step`
(numba calls only functions it knows at compile time; `test_each_model_advances_only_its_
own_state` fails when a branch is missing).
"""

from __future__ import annotations

import numpy as np

from twin_service.models.aging import naumann, nrel_lfp250, seed
from twin_service.models.aging.base import AgingModel
from twin_service.models.jit import jit
from twin_service.models.state import PACK, StateLayout

# Order = model id in the compiled step = order of the blocks in the state vector.
REGISTRY: tuple[AgingModel, ...] = (naumann.MODEL, seed.MODEL, nrel_lfp250.MODEL)
MODELS: dict[str, AgingModel] = {m.name: m for m in REGISTRY}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
MODEL_IDS: dict[str, int] = {m.name: i for i, m in enumerate(REGISTRY)}
DEFAULT_MODEL = "naumann"  # books seeded losses for models without fields of their own
LAYOUT = StateLayout((PACK, *(m.state for m in REGISTRY)))
OFFSETS = np.ascontiguousarray(LAYOUT.offsets[1:])  # per model id
# Vector positions of every model's capacity and resistance terms, in registry order.
CAPACITY_TERMS = np.array(
    [i for m in REGISTRY for i in LAYOUT.positions(m.name, m.capacity_terms)], dtype=np.int64
)
RESISTANCE_TERMS = np.array(
    [i for m in REGISTRY for i in LAYOUT.positions(m.name, m.resistance_terms)], dtype=np.int64
)


@jit
def step(model_id, s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah):
    """One sub-step of the selected model; out-of-range flags."""
    if model_id == 0:
        return naumann.step(s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah)
    if model_id == 1:
        return seed.step(s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah)
    if model_id == 2:
        return nrel_lfp250.step(s, off, soc, new_soc, temp, cur, dt, dta, multiplier, cap_ah)
    return 0


@jit
def state_of_health(s, capacity_terms):
    """1 minus every model's capacity loss (CAPACITY_TERMS, in registry order), in 0..1."""
    x = 1.0
    for i in capacity_terms:
        x -= s[i]
    return min(1.0, max(0.0, x))


@jit
def resistance_factor(s, resistance_terms):
    """1 plus every model's resistance increase (RESISTANCE_TERMS, in registry order)."""
    x = 1.0
    for i in resistance_terms:
        x += s[i]
    return x
