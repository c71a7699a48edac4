"""Columnar and msgpack batches (SPEC "Batch formats"): the same samples as rows, as columns in
JSON and as columns in msgpack give the same results bit for bit; bad columns get a 422 that
names the field and the sample index; no body gives a 5xx."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.wire import rows_of

from clients.python.columns import binary_columns, to_columns
from twin_service.app import create_app
from twin_service.errors import ApiError
from twin_service.settings import Settings
from twin_service.step.samples import (
    SMALL_BATCH,
    SampleColumns,
    columns_from_small,
    parse_samples,
    parse_small,
    rows_of_small_columns,
)

MSGPACK = "application/msgpack"


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings(max_samples_per_request=1000))) as c:
        yield c


def _value(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid row batches: one drive input per sample (power, current or a fixed number of
    motors, mixed within a batch), optional inputs and measurements, some absent or null."""
    n = draw(st.integers(1, 40))
    k = draw(st.integers(1, 3))
    kinds = draw(st.lists(st.sampled_from(["power", "current", "motors"]), min_size=1, max_size=3))
    optional = draw(
        st.sets(
            st.sampled_from(
                [
                    "ambient_c",
                    "wheel_speed_m_s",
                    "throttle",
                    "brake",
                    "aux_kw",
                    "charging",
                    "precondition",
                    "measured_voltage_v",
                    "measured_temperature_c",
                    "measured_soc",
                ]  # fmt: skip
            )
        )
    )
    bounds = {
        "ambient_c": (-20.0, 45.0), "wheel_speed_m_s": (-40.0, 40.0), "throttle": (0.0, 1.0),
        "brake": (0.0, 1.0), "aux_kw": (0.0, 5.0), "measured_voltage_v": (250.0, 450.0),
        "measured_temperature_c": (0.0, 45.0), "measured_soc": (0.0, 1.0),
    }  # fmt: skip
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {"dt_s": draw(_value(0.01, 120.0))}
        kind = draw(st.sampled_from(kinds))
        if kind == "power":
            row["power_kw"] = draw(_value(-80.0, 150.0))
        elif kind == "current":
            row["current_a"] = draw(_value(-200.0, 300.0))
        else:
            row["motors"] = [
                {"torque_nm": draw(_value(-300.0, 400.0)), "speed_rad_s": draw(_value(0, 900))}
                for _ in range(k)
            ]
        for name in sorted(optional):
            if name == "aux_kw" and kind == "current":
                continue
            presence = draw(st.sampled_from(["value", "value", "absent", "null"]))
            if presence == "null":
                row[name] = None
            elif presence == "value":
                if name in ("charging", "precondition"):
                    row[name] = draw(st.booleans())
                else:
                    row[name] = draw(_value(*bounds[name]))
        rows.append(row)
    return rows


def _same_columns(a: SampleColumns, b: SampleColumns, skip: tuple[str, ...] = ()) -> None:
    assert a.measurement_count == b.measurement_count
    for name, value in vars(a).items():
        if name in skip:
            continue
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype, name
            assert np.array_equal(value, other, equal_nan=True), name
        else:
            assert value == other, name


@given(rows=batches())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_columns_parse_to_the_same_arrays_as_rows(rows: list[dict[str, Any]]) -> None:
    columns = to_columns(rows)
    assert columns is not None
    assert rows_of(columns) == [{k: v for k, v in r.items() if v is not None} for r in rows]
    _same_columns(parse_samples(rows, 1000), parse_samples(columns, 1000))
    packed = msgpack.unpackb(msgpack.packb(columns))
    _same_columns(parse_samples(rows, 1000), parse_samples(packed, 1000))
    binary = msgpack.unpackb(msgpack.packb(binary_columns(columns)))
    assert isinstance(binary["dt_s"], bytes)
    _same_columns(parse_samples(rows, 1000), parse_samples(binary, 1000))
    # A small batch of columns takes the rows' plain-Python path, with the same result.
    for form in (columns, binary):
        small = parse_small(rows_of_small_columns(form), 1000)
        assert (small is not None) == (len(rows) <= SMALL_BATCH)
        if small is not None:
            # (measured_seen is only a shortcut: with nulls only, neither path counts any)
            _same_columns(parse_samples(rows, 1000), columns_from_small(small), ("measured_seen",))


def _post(client: TestClient, samples: Any, *, packed: bool = False, accept: str = "", **opts):
    body = {"vehicle_id": "columnar", "samples": samples,
            "options": {"store": False, "trace": True, **opts}}  # fmt: skip
    headers = {"content-type": MSGPACK if packed else "application/json"}
    if accept:
        headers["accept"] = accept
    content = msgpack.packb(body) if packed else orjson.dumps(body)
    return client.post("/step", content=content, headers=headers)


def _decoded(response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    if response.headers["content-type"] == MSGPACK:
        return msgpack.unpackb(response.content)
    return response.json()


@given(rows=batches())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
def test_rows_json_columns_and_msgpack_give_the_same_step(client, rows) -> None:
    columns = to_columns(rows)
    results = [
        _decoded(_post(client, rows)),
        _decoded(_post(client, columns)),
        _decoded(_post(client, columns, packed=True)),
        _decoded(_post(client, columns, packed=True, accept=MSGPACK)),
        _decoded(_post(client, binary_columns(columns), packed=True, accept=MSGPACK)),
    ]
    for r in results:
        r["telemetry"].pop("timestamp")
        r["state"].pop("updated_at", None)
    assert all(r == results[0] for r in results[1:])
    as_columns = _decoded(_post(client, columns, packed=True, trace_format="columns"))["trace"]
    rows_trace = results[0]["trace"]
    assert as_columns == {key: [row[key] for row in rows_trace] for key in rows_trace[0]}


def test_a_msgpack_answer_only_when_asked_before_json(client) -> None:
    samples = {"dt_s": [1.0, 1.0], "power_kw": [20.0, 30.0]}
    cases = [
        ("", "application/json"),
        (MSGPACK, MSGPACK),
        (f"{MSGPACK}, application/json;q=0.5", MSGPACK),
        (f"application/json, {MSGPACK}", "application/json"),
        ("*/*", "application/json"),
    ]
    for accept, want in cases:
        response = _post(client, samples, packed=True, accept=accept)
        assert response.headers["content-type"] == want, accept


GOOD = {"dt_s": [1.0, 1.0, 1.0], "power_kw": [10.0, 20.0, 30.0]}
MOTORS = {"torque_nm": [100.0, 100.0, 100.0], "speed_rad_s": [300.0, 300.0, 300.0]}


@pytest.mark.parametrize(
    ("samples", "loc", "kind"),
    [
        ({**GOOD, "power_kw": [10.0, "x", 30.0]}, ["power_kw", 1], "float_type"),
        ({**GOOD, "power_kw": [10.0, 20.0, 1e6]}, ["power_kw", 2], "out_of_range"),
        ({**GOOD, "power_kw": [10.0, True, 30.0]}, ["power_kw", 1], "float_type"),
        ({**GOOD, "power_kw": [10.0, 20.0]}, ["power_kw"], "length_mismatch"),
        ({**GOOD, "power_kw": 10.0}, ["power_kw"], "list_type"),
        ({"power_kw": [1.0]}, ["dt_s"], "missing"),
        ({**GOOD, "dt_s": [1.0, None, 1.0]}, ["dt_s", 1], "missing"),
        ({**GOOD, "dt_s": [1.0, -1.0, 1.0]}, ["dt_s", 1], "out_of_range"),
        ({**GOOD, "speed": [1.0, 1.0, 1.0]}, ["speed"], "extra_forbidden"),
        ({**GOOD, "power_kw": [None, 1.0, 1.0]}, [0], "drive_input"),
        ({**GOOD, "current_a": [None, 1.0, None]}, [1], "drive_input"),
        ({**GOOD, "charging": [False, "yes", None]}, ["charging", 1], "bool_type"),
        (
            {"dt_s": [1.0] * 3, "current_a": [1.0] * 3, "aux_kw": [None, None, 2.0]},
            ["aux_kw", 2],
            "drive_input",
        ),  # fmt: skip
        (
            {"dt_s": [1.0] * 3, "motors": [{**MOTORS, "torque_nm": [1.0, 1e6, 1.0]}]},
            ["motors", 0, "torque_nm", 1],
            "out_of_range",
        ),  # fmt: skip
        (
            {"dt_s": [1.0] * 3, "motors": [{**MOTORS, "torque_nm": [1.0, None, 1.0]}]},
            ["motors", 0, "torque_nm", 1],
            "missing",
        ),  # fmt: skip
        (
            {"dt_s": [1.0] * 3, "motors": [MOTORS, {**MOTORS, "speed_rad_s": [1.0, 2.0]}]},
            ["motors", 1, "speed_rad_s"],
            "length_mismatch",
        ),  # fmt: skip
        (
            {"dt_s": [1.0] * 3, "motors": [{"torque_nm": [1.0] * 3}]},
            ["motors", 0],
            "motor_fields",
        ),  # fmt: skip
        ({"dt_s": [1.0] * 3, "motors": []}, ["motors"], "list_type"),
        ({"dt_s": [1.0] * 3, "motors": [MOTORS] * 17}, ["motors"], "list_type"),
        ({"dt_s": []}, [], "too_short"),
    ],
)
def test_bad_columns_name_the_field_and_the_index(client, samples, loc, kind) -> None:
    for packed in (False, True):
        response = _post(client, samples, packed=packed)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert {"loc": ["body", "samples", *loc], "type": kind} in [
            {"loc": d["loc"], "type": d["type"]} for d in detail
        ], detail


def _f8(*values: float) -> bytes:
    return np.array(values, dtype="<f8").tobytes()


@pytest.mark.parametrize(
    ("samples", "loc", "kind"),
    [
        ({**GOOD, "power_kw": _f8(1.0, 2.0)}, ["power_kw"], "length_mismatch"),
        ({**GOOD, "power_kw": b"\x00" * 20}, ["power_kw"], "list_type"),
        ({**GOOD, "power_kw": _f8(1.0, math.inf, 1.0)}, ["power_kw", 1], "finite_number"),
        ({**GOOD, "power_kw": _f8(1.0, 2e4, 1.0)}, ["power_kw", 1], "out_of_range"),
        ({**GOOD, "dt_s": _f8(1.0, math.nan, 1.0)}, ["dt_s", 1], "missing"),
        ({**GOOD, "charging": _f8(0.0, 0.0, 0.0)}, ["charging"], "list_type"),
        (
            {
                "dt_s": _f8(1.0, 1.0, 1.0),
                "motors": [{**MOTORS, "speed_rad_s": _f8(1, math.nan, 1)}],
            },
            ["motors", 0, "speed_rad_s", 1],
            "missing",
        ),  # fmt: skip
    ],
)
def test_bad_binary_columns_name_the_field_and_the_index(client, samples, loc, kind) -> None:
    response = _post(client, samples, packed=True)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert {"loc": ["body", "samples", *loc], "type": kind} in [
        {"loc": d["loc"], "type": d["type"]} for d in detail
    ], detail


def test_nan_and_infinity_in_msgpack_are_refused_by_name(client) -> None:
    for bad in (math.nan, math.inf):
        response = _post(client, {**GOOD, "power_kw": [1.0, bad, 1.0]}, packed=True)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "samples", "power_kw", 1]


def test_too_many_columnar_samples_is_413(client) -> None:
    response = _post(client, {"dt_s": [1.0] * 1001, "power_kw": [1.0] * 1001})
    assert response.status_code == 413
    assert response.json()["detail"][0]["type"] == "too_many_samples"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x81",  # a map with its entry missing
        msgpack.packb({"samples": GOOD}) + b"\x01",  # data after the object
        msgpack.packb({1: 2}),  # a non-string key
        b"\x91" * 5000 + b"\x01",  # nested deeper than the unpacker's stack
        msgpack.packb([GOOD]),
    ],
)
def test_bad_msgpack_is_a_422(client, content: bytes) -> None:
    response = client.post("/step", content=content, headers={"content-type": MSGPACK})
    assert response.status_code == 422, response.text


def test_a_refused_columnar_step_stores_nothing(client) -> None:
    body = {"vehicle_id": "never-columnar", "samples": {**GOOD, "dt_s": [1.0, 0.0, 1.0]}}
    response = client.post("/step", content=msgpack.packb(body), headers={"content-type": MSGPACK})
    assert response.status_code == 422
    assert client.get("/vehicles/never-columnar").status_code == 404


_LEAF = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8)
)  # fmt: skip
_ANY = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.sampled_from(["dt_s", "power_kw", "motors", "torque_nm",
                                       "speed_rad_s", "charging", "x"]), inner, max_size=5),
    max_leaves=30,
)  # fmt: skip


@given(samples=_ANY, extra=st.dictionaries(st.sampled_from(["vehicle", "options", "state"]), _ANY))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
def test_no_msgpack_body_gives_a_5xx(client, samples, extra) -> None:
    body = {"vehicle_id": "fuzz", "samples": samples, **extra, "options": {"store": False}}
    response = client.post("/step", content=msgpack.packb(body), headers={"content-type": MSGPACK})
    assert response.status_code < 500, response.text


def test_parse_errors_are_api_errors() -> None:
    with pytest.raises(ApiError) as caught:
        parse_samples({"dt_s": "1"}, 10)
    assert caught.value.status_code == 422
