"""Golden /step numbers: today's responses to many stored requests, replayed to 1e-9.

The fixtures come from `python -m tests.golden.generate` (see tests/golden/generate.py):
tests/fixtures/golden_steps.json.gz and the three tests/fixtures/state_v1_*.json cases. Each
case holds a request body (chained states written in) and the response it got: state,
telemetry without its timestamp, trace.

Numbers compare with rel 1e-9 / abs 1e-12, booleans and strings exactly. Telemetry and trace
keys that the fixture lacks are ignored (new keys may be added); keys the fixture has must be
there. The state is compared through `comparable_state`, applied to today's response; the
fixture's (v1) state is only flattened.

The fixtures predate the EV pack physics of issue 12 (resistance map over SOC and temperature,
dense OCV, hysteresis, SOC window, charge taper, thermal management). Each request's vehicle is
replayed as `legacy_vehicle`: today's model with the parameters that switch those off (one
resistance at every SOC with Arrhenius around 25 degC, the coarse OCV table, no hysteresis, the
whole SOC range, no taper, no thermal management), so the same core must give the same numbers.

Cases whose stored response aged the pack past its end of life (SOH 0, capacity loss above 1:
a state the service itself refused to read back) are refused with 422 `end_of_life` since
issue 13; the test checks that refusal instead of the numbers.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest

from twin_service.errors import ApiError
from twin_service.presets import PRESETS
from twin_service.step.service import run_step
from validation.common import previous_model_vehicle

LEGACY = "-legacy"


def legacy_vehicle(vehicle: Any, default: str) -> dict[str, Any]:
    """A request's vehicle (preset id, None or an inline object of the old shape) with the
    parameters that give the model before issue 12."""
    if vehicle is None or isinstance(vehicle, str):
        v = PRESETS[vehicle or default].model_dump(exclude_computed_fields=True)
        v["id"] += LEGACY  # an inline vehicle that differs from a preset needs its own id
        return previous_model_vehicle(v)
    v = copy.deepcopy(vehicle)
    r0, r1 = v["pack"].pop("cell_r0_ohm"), v["pack"].pop("cell_r1_ohm")
    return previous_model_vehicle(v, r0, r1)


def legacy_request(request: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(request)
    out["vehicle"] = legacy_vehicle(out.get("vehicle"), DEFAULT_VEHICLE)
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict with dotted keys: {"aging": {"half_cycle": {"ah": x}}} ->
    {"aging.half_cycle.ah": x}."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def comparable_state(state: dict[str, Any]) -> dict[str, Any]:
    """Today's response state in the fixture's (v1) names, flattened to dotted keys such as
    "aging.half_cycle.ah". Schema 2 nests each aging model's fields under its name (and adds
    models that schema 1 did not have, which the fixture cannot pin)."""
    v1 = {k: v for k, v in state.items() if k != "aging"}
    v1["schema_version"] = 1
    aging = state["aging"]
    v1["aging"] = {
        **{k: v for k, v in aging["naumann"].items()},
        "seed_capacity_loss": aging["seed"]["capacity_loss"],
    }
    return flatten(v1)


FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN_PATH = FIXTURES / "golden_steps.json.gz"
STATE_PATHS = sorted(FIXTURES.glob("state_v1_*.json"))
REL, ABS = 1e-9, 1e-12
DEFAULT_VEHICLE = "sv1ev3"
MAX_SAMPLES = 200_000


def _load() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with gzip.open(GOLDEN_PATH, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    cases = list(doc.pop("cases"))
    for path in STATE_PATHS:
        case = json.loads(path.read_text())
        cases.append({"name": path.stem, "request": case["request"], "response": case["response"]})
    return doc, cases


HEADER, CASES = _load()


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


def _same(expected: Any, actual: Any) -> bool:
    if _is_number(expected):
        return _is_number(actual) and math.isclose(expected, actual, rel_tol=REL, abs_tol=ABS)
    return type(actual) is type(expected) and actual == expected  # bool, str, None


def _differences(
    expected: dict[str, Any], actual: dict[str, Any], prefix: str
) -> list[tuple[str, Any, Any]]:
    """(key, expected, actual) for each key of `expected` that `actual` lacks or differs in;
    keys only `actual` has are ignored."""
    missing = object()
    out = []
    for key, e in expected.items():
        a = actual.get(key, missing)
        if a is missing:
            out.append((f"{prefix}{key}", e, "<missing>"))
        elif not _same(e, a):
            out.append((f"{prefix}{key}", e, a))
    return out


def _check(case: dict[str, Any], state: dict[str, Any], outcome: Any, commit: str) -> None:
    """Fail at the first number of the case's stored response that today's `outcome` (its
    flattened `state`) does not reproduce."""
    want = case["response"]
    diffs = _differences(flatten(want["state"]), state, "state.")
    diffs += _differences(want["telemetry"], outcome.telemetry, "telemetry.")
    trace = outcome.trace or []
    stored = want["trace"] or []
    if len(trace) != len(stored):
        diffs.append(("trace length", len(stored), len(trace)))
    else:
        for i, (w, a) in enumerate(zip(stored, trace, strict=True)):
            diffs += _differences(w, a, f"trace[{i}].")
    if diffs:
        key, e, a = diffs[0]
        pytest.fail(
            f"{case['name']}: first difference at {key}: fixture {e!r}, now {a!r} "
            f"({len(diffs)} differing values; fixture from commit {commit})",
            pytrace=False,
        )


def test_fixture_cases_are_unique() -> None:
    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names)
    assert len(CASES) >= 150


def past_end_of_life(case: dict[str, Any]) -> bool:
    """The stored response aged the pack past its end of life (SOH 0, a capacity loss above
    1): a state the service refused to read back. Such steps are refused now (422
    end_of_life, a deliberate fix of issue 13) instead of answered."""
    state = flatten(case["response"]["state"])
    return state["soh"] <= 0.0 or any(
        "capacity_loss" in k and v is not None and v > 1.0 for k, v in state.items()
    )


def refused_past_end_of_life(request: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        run_step(request, DEFAULT_VEHICLE, MAX_SAMPLES)
    assert caught.value.status_code == 422
    assert {e["type"] for e in caught.value.errors} == {"end_of_life"}, caught.value.errors


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_step(case: dict[str, Any]) -> None:
    if past_end_of_life(case):
        refused_past_end_of_life(legacy_request(case["request"]))
        return
    outcome = run_step(legacy_request(case["request"]), DEFAULT_VEHICLE, MAX_SAMPLES)
    model = outcome.telemetry["vehicle_model"]
    outcome.telemetry["vehicle_model"] = model.removesuffix(LEGACY)  # the fixture's preset id
    _check(case, comparable_state(outcome.state), outcome, HEADER["commit"])


CURRENT_PATH = FIXTURES / "golden_current.json.gz"


def _load_current() -> dict[str, Any]:
    if not CURRENT_PATH.exists():  # while tests/golden/refresh.py --current writes it
        return {"commit": None, "cases": []}
    with gzip.open(CURRENT_PATH, "rt", encoding="utf-8") as f:
        return dict(json.load(f))


CURRENT = _load_current()


@pytest.mark.parametrize("case", CURRENT["cases"], ids=[c["name"] for c in CURRENT["cases"]])
def test_golden_current_physics(case: dict[str, Any]) -> None:
    """The stored preset requests as they are, against the responses of the pack physics of
    issue 12 (tests/golden/refresh.py --current wrote them): pins today's numbers, thermal
    management, taper and hysteresis included, for later refactors."""
    if past_end_of_life(case):
        refused_past_end_of_life(copy.deepcopy(case["request"]))
        return
    outcome = run_step(copy.deepcopy(case["request"]), DEFAULT_VEHICLE, MAX_SAMPLES)
    _check(case, flatten(outcome.state), outcome, CURRENT["commit"])


def test_golden_current_fixture_is_there() -> None:
    assert len(CURRENT["cases"]) >= 100, f"{CURRENT_PATH.name} is missing or short"
