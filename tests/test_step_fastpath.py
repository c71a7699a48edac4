"""The small-batch fast paths of /step give exactly what the general (numpy / pydantic) paths
give: the same results for valid input, and the general path's errors for bad input."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import orjson
import pytest

from twin_service.errors import ApiError
from twin_service.models.aging import LAYOUT, REGISTRY
from twin_service.models.cell_data import OCV_SOC, OCV_SOC_COARSE, OCV_V, OCV_V_COARSE
from twin_service.models.kernel import total_substeps
from twin_service.models.laws import interp
from twin_service.models.state import from_validated, read_fast
from twin_service.presets import PRESETS, drivetrain_params
from twin_service.schemas import PackStateWire, StepEnvelope
from twin_service.step import service
from twin_service.step.samples import SMALL_BATCH, parse_samples, parse_small

GOOD = {"dt_s": 1.0, "power_kw": 10.0}
MOTOR = {"torque_nm": 120.0, "speed_rad_s": 310.0}

BAD_SAMPLES: list[dict[str, Any]] = [
    {"dt_s": -1.0, "power_kw": 1.0},
    {"dt_s": 0.0, "power_kw": 1.0},
    {"dt_s": 86400.5, "power_kw": 1.0},
    {"dt_s": "1", "power_kw": 1.0},
    {"dt_s": True, "power_kw": 1.0},
    {"power_kw": 1.0},
    {"dt_s": None, "power_kw": 1.0},
    {"dt_s": 1.0},
    {"dt_s": 1.0, "power_kw": None},
    {"dt_s": 1.0, "power_kw": 1.0, "current_a": 2.0},
    {"dt_s": 1.0, "motors": [], "power_kw": 1.0},
    {"dt_s": 1.0, "motors": [{"torque_nm": 1.0}]},
    {"dt_s": 1.0, "motors": [{"torque_nm": 1.0, "speed_rad_s": 1.0, "x": 1}]},
    {"dt_s": 1.0, "motors": [{"torque_nm": "1", "speed_rad_s": 1.0}]},
    {"dt_s": 1.0, "motors": [{"torque_nm": 1e6, "speed_rad_s": 1.0}]},
    {"dt_s": 1.0, "motors": [{"torque_nm": math.nan, "speed_rad_s": 1.0}]},
    {"dt_s": 1.0, "motors": [MOTOR] * 17},
    {"dt_s": 1.0, "motors": "fast"},
    {"dt_s": 1.0, "motors": [5]},
    {"dt_s": 1.0, "power_kw": 1.0, "throttle": 2.0},
    {"dt_s": 1.0, "power_kw": 1.0, "brake": -0.1},
    {"dt_s": 1.0, "power_kw": 1.0, "ambient_c": 500.0},
    {"dt_s": 1.0, "power_kw": 1.0, "charging": "yes"},
    {"dt_s": 1.0, "power_kw": 1.0, "charging": 1},
    {"dt_s": 1.0, "current_a": 1.0, "aux_kw": 1.0},
    {"dt_s": 1.0, "power_kw": 1.0, "aux_kw": -1.0},
    {"dt_s": 1.0, "power_kw": 1.0, "speed": 3.0},
    {"dt_s": 1.0, "power_kw": True},
    {"dt_s": 1.0, "power_kw": math.nan},
    {"dt_s": 1.0, "power_kw": math.inf},
    {"dt_s": 1.0, "power_kw": -math.inf},
    {"dt_s": 1.0, "power_kw": 10**400},
    {"dt_s": 1.0, "current_a": 2e5},
    {"dt_s": 1.0, "power_kw": 1.0, "wheel_speed_m_s": 151},
]


def _errors(samples: Any, max_samples: int = 1000) -> tuple[int, list[dict[str, Any]]]:
    with pytest.raises(ApiError) as info:
        parse_samples(samples, max_samples)
    return info.value.status_code, info.value.errors


def _shift(errors: list[dict[str, Any]], by: int) -> list[dict[str, Any]]:
    out = copy.deepcopy(errors)
    for e in out:
        if len(e["loc"]) > 2 and isinstance(e["loc"][2], int):
            e["loc"][2] += by
    return out


@pytest.mark.parametrize("bad", BAD_SAMPLES, ids=range(len(BAD_SAMPLES)))
def test_bad_sample_same_errors_in_small_and_large_batches(bad: dict[str, Any]) -> None:
    small = [GOOD, bad]
    assert parse_small(small, 1000) is None  # the fast path never accepts bad input
    pad = SMALL_BATCH + 10
    large = [GOOD] * pad + [bad]
    status_small, errors_small = _errors(small)
    status_large, errors_large = _errors(large)
    assert status_small == status_large == 422
    assert errors_small and errors_large

    def about(errors: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
        return [e for e in errors if len(e["loc"]) > 3 and e["loc"][2] == index]

    # The bad sample's own field errors, at its index. (Column-wide consequences such as
    # "Field required" for the first samples after a wrong type, and the per-kind caps, are
    # parse_samples' and the same for any batch size.)
    assert about(errors_large, pad)[:1] == _shift(about(errors_small, 1), pad - 1)[:1]
    assert {e["type"] for e in about(errors_large, pad)} <= {e["type"] for e in errors_small}


def test_bad_inputs_outside_samples_fall_back() -> None:
    for samples in ([], 5, None, "x", [GOOD, 5], [GOOD] * (SMALL_BATCH + 1)):
        assert parse_small(samples, 1000) is None
    assert parse_small([GOOD] * 3, 2) is None  # too many for the limit: parse_samples says 413
    status, errors = _errors([GOOD] * 3, 2)
    assert status == 413 and errors[0]["type"] == "too_many_samples"


VALID_BATCHES: list[list[dict[str, Any]]] = [
    [GOOD],
    [{"dt_s": 0.1, "motors": [MOTOR], "wheel_speed_m_s": 12.3, "ambient_c": 25.0}],
    [{"dt_s": 0.1, "motors": [MOTOR, {"torque_nm": -80.0, "speed_rad_s": 250}]}],
    [{"dt_s": 0.1, "motors": [], "aux_kw": 2.5}],
    [{"dt_s": 2, "current_a": -40}, {"dt_s": 1.0, "current_a": 0.0, "charging": True}],
    [
        {"dt_s": 5.0, "power_kw": -0.0, "aux_kw": 1.0, "charging": False},
        {"dt_s": 25.0, "power_kw": 30.0, "ambient_c": None, "wheel_speed_m_s": -20.0},
        {"dt_s": 7200.0, "power_kw": 0.0, "ambient_c": 35.0, "throttle": 0.5, "brake": 0},
        {"dt_s": 0.5, "current_a": 12.0, "motors": None, "power_kw": None, "charging": None},
    ],
    [{"dt_s": 1.0, "power_kw": 50.0, "ambient_c": -10.0}] * SMALL_BATCH,
    [{"dt_s": 1.0, "motors": [MOTOR] * 4, "aux_kw": 0.0, "wheel_speed_m_s": 30}] * 3,
]


def _general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "parse_small", lambda samples, max_samples: None)
    monkeypatch.setattr(service, "_envelope_fast", lambda payload: None)
    monkeypatch.setattr(service, "read_fast", lambda layout, raw: None)


def _outcome(payload: dict[str, Any]) -> dict[str, Any]:
    out = service.run_step_body(orjson.dumps(payload), "sv1ev3", 1000)
    telemetry = dict(out.telemetry)
    telemetry.pop("timestamp")
    return {"state": out.state, "telemetry": telemetry, "trace": out.trace, "n": out.samples}


@pytest.mark.parametrize("samples", VALID_BATCHES, ids=range(len(VALID_BATCHES)))
@pytest.mark.parametrize("vehicle", [None, "sv1ev3", *sorted(PRESETS)])
def test_fast_path_results_equal_general_path(
    samples: list[dict[str, Any]], vehicle: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_small(samples, 1000) is not None
    first = _outcome({"vehicle_id": "a", "samples": [GOOD]})
    for state in (None, {"soc": 0.4}, first["state"]):
        payload: dict[str, Any] = {
            "vehicle_id": "fp",
            "samples": samples,
            "state": state,
            "options": {"trace": True},
        }
        if vehicle is not None:
            payload["vehicle"] = vehicle
        fast = _outcome(payload)
        with monkeypatch.context() as m:
            _general_path(m)
            general = _outcome(payload)
        assert orjson.dumps(fast) == orjson.dumps(general)
        # The fast envelope (no options) too.
        del payload["options"]
        fast = _outcome(payload)
        with monkeypatch.context() as m:
            _general_path(m)
            general = _outcome(payload)
        assert orjson.dumps(fast) == orjson.dumps(general)


def test_interp_is_numpy_interp() -> None:
    """The compiled interpolation gives np.interp's values bit for bit (OCV, efficiency)."""
    curves = [
        (np.array(OCV_SOC), np.array(OCV_V)),
        (np.array(OCV_SOC_COARSE), np.array(OCV_V_COARSE)),
    ]
    for preset in PRESETS.values():
        d = drivetrain_params(preset)
        curves.append(d.curve)
    rng = np.random.default_rng(7)
    for xp, fp in curves:
        xs = [
            *rng.uniform(-0.1, 1.1, 5000).tolist(),
            *xp.tolist(),
            0.0,
            -0.0,
            1.0,
            math.inf,
            -math.inf,
        ]
        xs += [float(np.nextafter(x, d)) for x in xp for d in (-2.0, 2.0)]
        ref = np.interp(np.array(xs), xp, fp).tolist()
        assert [interp(x, xp, fp) for x in xs] == ref
    assert math.isnan(interp(math.nan, np.array(OCV_SOC), np.array(OCV_V)))


def test_substeps_follow_the_inputs() -> None:
    # active samples (a demand, or plugged in / preconditioning): 10 s sub-steps; rest: 1 h
    for dt, power, current, mode, expected in [
        (0.1, 1.0, math.nan, 0, 1),
        (10.0, 0.0, math.nan, 0, 1),
        (10.5, 1.0, math.nan, 0, 2),
        (3600.5, math.nan, 0.0, 0, 2),
        (86400.0, 5.0, math.nan, 0, 8640),
        (1e-9, math.nan, 3.0, 0, 1),
        (20.0, math.nan, 0.0, 0, 1),
        (20.0, -0.0, math.nan, 0, 1),
        (20.0, 0.0, math.nan, 1, 2),
        (3600.0, math.nan, 0.0, 2, 360),
    ]:
        got = total_substeps(np.array([dt]), np.array([power]), np.array([current]),
                             np.array([mode]))  # fmt: skip
        assert got == expected


def _full_state() -> dict[str, Any]:
    return _outcome({"vehicle_id": "s", "samples": [GOOD] * 3})["state"]


def test_state_fast_reads_what_pydantic_reads() -> None:
    raw = _full_state()
    variants = [raw]
    as_ints = copy.deepcopy(raw)
    as_ints["soc"] = 1
    as_ints["aging"]["naumann"]["half_cycle"]["ah"] = 0
    variants.append(as_ints)
    no_new_model = copy.deepcopy(raw)  # a state from before the newest model was added
    newest = REGISTRY[-1].name
    del no_new_model["aging"][newest]
    variants.append(no_new_model)
    for v in variants:
        fast = read_fast(LAYOUT, v)
        assert fast is not None
        general = from_validated(LAYOUT, PackStateWire.model_validate(v).model_dump())
        assert fast.tolist() == general.tolist()
    # The missing model starts fresh from the pack's present SOC.
    vec = read_fast(LAYOUT, no_new_model)
    fresh = LAYOUT.defaults()
    fresh[0] = no_new_model["soc"]
    LAYOUT.fresh_block(newest, fresh)
    off = LAYOUT.offset(newest)
    sl = slice(off, off + len(LAYOUT.block(newest)))
    assert vec is not None and vec[sl].tolist() == fresh[sl].tolist()


@pytest.mark.parametrize(
    "change",
    [
        ("soc", 1.2),
        ("soc", True),
        ("soc", "0.5"),
        ("soc", math.nan),
        ("elapsed_s", math.inf),
        ("soc", None),
        ("schema_version", True),
        ("cycle_count", -1.0),
        ("extra", 1),
        ("aging", None),
        ("aging.naumann", None),
        ("aging.naumann.cal_capacity_loss", 2.0),
        ("aging.extra", 0.0),
        ("aging.naumann.extra", 0.0),
        ("aging.naumann.half_cycle", []),
        ("aging.naumann.half_cycle.direction", 2),
        ("aging.naumann.half_cycle.direction", 1.0),
        ("aging.naumann.half_cycle.direction", True),
        ("aging.naumann.half_cycle.start_soc", 1.5),
        ("aging.naumann.half_cycle.extra", 1.0),
        ("aging.naumann.half_cycle.ah", -0.0001),
        ("aging.seed.capacity_loss", 1.5),
    ],
)
def test_state_fast_declines_what_it_does_not_certainly_accept(change: tuple[str, Any]) -> None:
    raw = _full_state()
    *path, last = change[0].split(".")
    target = raw
    for key in path:
        target = target[key]
    target[last] = change[1]
    assert read_fast(LAYOUT, raw) is None


def test_state_fast_missing_field() -> None:
    raw = _full_state()
    del raw["throughput_ah"]
    assert read_fast(LAYOUT, raw) is None
    raw = _full_state()
    del raw["aging"]["naumann"]["half_cycle"]["ah"]
    assert read_fast(LAYOUT, raw) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"samples": [GOOD]},
        {"vehicle_id": "ev-1.a_B", "vehicle": "sv1ev3", "state": {"soc": 0.5}, "samples": []},
        {"vehicle_id": "x" * 64, "vehicle": None, "state": None, "samples": 5},
        {"samples": [GOOD], "options": {}},
        {"samples": [GOOD], "options": {"replace": True, "store": False, "trace": True}},
    ],
)
def test_envelope_fast_is_step_envelope(payload: dict[str, Any]) -> None:
    fast = service._envelope_fast(payload)
    env = StepEnvelope.model_validate(payload)
    assert fast is not None
    assert (fast.vehicle_id, fast.vehicle, fast.state, fast.samples) == (
        env.vehicle_id,
        env.vehicle,
        env.state,
        env.samples,
    )
    assert fast.options == env.options


@pytest.mark.parametrize(
    "payload",
    [
        {"vehicle_id": "a b", "samples": [GOOD]},
        {"vehicle_id": "x" * 65, "samples": [GOOD]},
        {"vehicle_id": "ev\n", "samples": [GOOD]},
        {"vehicle_id": None, "samples": [GOOD]},
        {"vehicle_id": 5, "samples": [GOOD]},
        {"vehicle": 5, "samples": [GOOD]},
        {"vehicle": {"id": "inline"}, "samples": [GOOD]},
        {"state": [1], "samples": [GOOD]},
        {"samples": [GOOD], "options": {"demo_mode": True}},
        {"samples": [GOOD], "options": {"replace": 1}},
        {"samples": [GOOD], "options": {"store": "no"}},
        {"samples": [GOOD], "options": []},
        {"samples": [GOOD], "extra": 1},
    ],
)
def test_envelope_fast_declines(payload: dict[str, Any]) -> None:
    assert service._envelope_fast(payload) is None


def _step_app_client() -> Any:
    from fastapi.testclient import TestClient

    from twin_service.app import create_app
    from twin_service.settings import Settings

    return TestClient(create_app(Settings(hub_url="memory://")))


def test_step_served_ahead_of_routing_under_a_root_path() -> None:
    """api.step.StepFirst answers POST /step itself, also when a proxy mounts the app under a
    root path, and hands everything else on."""
    from fastapi.testclient import TestClient

    from twin_service.api.step import StepFirst
    from twin_service.app import create_app
    from twin_service.settings import Settings

    app = create_app(Settings(hub_url="memory://"))
    handed_on: list[tuple[str, str]] = []

    async def rest(scope: Any, receive: Any, send: Any) -> None:
        handed_on.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    first = StepFirst(rest, app.state.settings)

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # the lifespan starts the app's live backend
            await app(scope, receive, send)
            return
        scope["app"] = app  # as Starlette sets it before its middleware
        await first(scope, receive, send)

    body = {"vehicle_id": "first", "samples": [GOOD], "options": {"store": False}}
    with _step_app_client() as plain, TestClient(asgi, root_path="/twin") as mounted:
        direct = plain.post("/step", json=body)
        under = mounted.post("/twin/step", json=body)
        assert direct.status_code == under.status_code == 200
        assert direct.json()["state"] == under.json()["state"]
        assert mounted.get("/twin/step").status_code == 204
        assert mounted.post("/twin/steps", json=body).status_code == 204
    assert handed_on == [("GET", "/twin/step"), ("POST", "/twin/steps")]


def test_step_recursion_error_is_a_422(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last-resort handler of the app applies to POST /step served ahead of routing."""
    from twin_service.api import step as step_api

    def deep(*_: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(step_api, "run_step_body", deep)
    with _step_app_client() as client:
        r = client.post("/step", json={"samples": [GOOD]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_too_deep"
