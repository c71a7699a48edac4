"""Nothing the service returns can be refused by it: random valid /step requests, each
returned state fed back (property-based), and the end-of-life refusals."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin_service.app import create_app
from twin_service.models.aging import MODEL_NAMES
from twin_service.presets import PRESETS
from twin_service.schemas import PackStateWire
from twin_service.settings import Settings

_ids = itertools.count()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


finite = {"allow_nan": False, "allow_infinity": False}
dt_s = st.one_of(
    st.floats(min_value=1e-3, max_value=10.0, **finite),
    st.floats(min_value=10.0, max_value=86400.0, **finite),
)
motor = st.fixed_dictionaries(
    {
        "torque_nm": st.floats(min_value=-1e5, max_value=1e5, **finite),
        "speed_rad_s": st.floats(min_value=-1e5, max_value=1e5, **finite),
    }
)
drive = st.one_of(
    st.fixed_dictionaries({"power_kw": st.floats(min_value=-10000, max_value=10000, **finite)}),
    st.fixed_dictionaries({"current_a": st.floats(min_value=-1e5, max_value=1e5, **finite)}),
    st.fixed_dictionaries({"motors": st.lists(motor, min_size=1, max_size=2)}),
)
extras = st.fixed_dictionaries(
    {},
    optional={
        "ambient_c": st.floats(min_value=-60, max_value=80, **finite),
        "wheel_speed_m_s": st.floats(min_value=-150, max_value=150, **finite),
        "charging": st.booleans(),
        "precondition": st.booleans(),
    },
)


@st.composite
def sample(draw: st.DrawFn) -> dict[str, Any]:
    out = {"dt_s": draw(dt_s), **draw(drive), **draw(extras)}
    if "current_a" not in out and draw(st.booleans()):
        out["aux_kw"] = draw(st.floats(min_value=0, max_value=100, **finite))
    return out


options = st.fixed_dictionaries(
    {},
    optional={
        "time_multiplier": st.one_of(
            st.just(1.0), st.just(1e6), st.floats(min_value=1, max_value=1e6, **finite)
        ),
        "aging_model": st.sampled_from(list(MODEL_NAMES)),
        "demo_mode": st.booleans(),
    },
)
seed = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "soc": st.floats(min_value=0, max_value=1, **finite),
            "temperature_c": st.floats(min_value=-60, max_value=150, **finite),
            "soh": st.floats(min_value=0.01, max_value=1, **finite),
            "resistance_factor": st.floats(min_value=1, max_value=10, **finite),
        },
    ),
)


def _finite(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, float):
        return math.isfinite(value)
    return True


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    vehicle=st.sampled_from(sorted(PRESETS)),
    first=seed,
    batches=st.lists(st.lists(sample(), min_size=1, max_size=6), min_size=2, max_size=3),
    opts=options,
)
def test_every_returned_state_is_accepted_back(
    client: TestClient,
    vehicle: str,
    first: dict[str, Any] | None,
    batches: list[list[dict[str, Any]]],
    opts: dict[str, Any],
) -> None:
    vehicle_id = f"roundtrip-{next(_ids)}"
    state = first
    for samples in batches:
        body = {"vehicle_id": vehicle_id, "vehicle": vehicle, "state": state,
                "samples": samples, "options": opts}  # fmt: skip
        resp = client.post("/step", json=body)
        assert resp.status_code in (200, 422), resp.text
        if resp.status_code == 422:
            # Only the step may be refused (the pack would age past its end of life or the
            # integration is too long), never the state the service itself returned.
            locs = [e["loc"] for e in resp.json()["detail"]]
            assert state is first or all(loc[:2] != ["body", "state"] for loc in locs), locs
            return
        out = resp.json()
        assert _finite(out["state"]) and _finite(out["telemetry"]), out
        PackStateWire.model_validate(out["state"])
        assert out["state"]["rev"] == out["rev"]
        state = out["state"]


def _cycling(n: int) -> list[dict[str, Any]]:
    return [{"dt_s": 600.0, "power_kw": 30.0 if i % 2 else -30.0} for i in range(n)]


def test_aging_past_end_of_life_is_refused_and_nothing_is_stored(client: TestClient) -> None:
    body = {"vehicle_id": "eol-1", "samples": _cycling(200),
            "options": {"time_multiplier": 1e6, "aging_model": "naumann"}}  # fmt: skip
    resp = client.post("/step", json=body)
    assert resp.status_code == 422
    errors = resp.json()["detail"]
    assert {e["type"] for e in errors} == {"end_of_life"}
    assert any("cyc_capacity_loss" in e["msg"] for e in errors)
    assert "end of life" in errors[0]["msg"]
    assert client.get("/vehicles/eol-1").status_code == 404


def test_a_step_that_would_overflow_a_state_field_is_refused(client: TestClient) -> None:
    first = client.post("/step", json={"vehicle_id": "ovf-1", "samples": _cycling(2)}).json()
    state = first["state"]
    state["aging"]["naumann"]["half_cycle"]["ah"] = 1.7e308
    resp = client.post(
        "/step", json={"vehicle_id": "ovf-1", "state": state, "samples": _cycling(4)}
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["type"] in ("state_out_of_range", "end_of_life")
    assert client.get("/vehicles/ovf-1").json()["rev"] == 1
