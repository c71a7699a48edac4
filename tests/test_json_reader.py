"""json_reader: numbers rounded as orjson rounds them, the same columns as the general path,
and a give-up (None) for every body it does not take."""

from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_service.step import json_reader as jr
from twin_service.step.samples import parse_samples
from twin_service.step.service import run_step_body


def _number(text: str) -> tuple[float, int, int]:
    buf = np.frombuffer(text.encode(), dtype=np.uint8)
    return jr._number(buf, 0, jr._T_HI, jr._T_LO, jr._T_EXP2)


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_shortest_repr_reads_back_exactly(x: float) -> None:
    text = orjson.dumps(x).decode()
    v, end, kind = _number(text)
    assert end == len(text) and kind in (0, 1)
    if kind == 0:
        assert _bits(v) == _bits(orjson.loads(text))


@settings(max_examples=3000, deadline=None)
@given(st.integers(1, 10**19 - 1), st.integers(-340, 310), st.booleans())
def test_decimal_mantissa_and_exponent_round_to_nearest(man: int, exp: int, neg: bool) -> None:
    text = f"{'-' if neg else ''}{man}e{exp}"
    v, end, kind = _number(text)
    assert end == len(text)
    if kind == 0:
        assert _bits(v) == _bits(float(text))


@pytest.mark.parametrize("text", ["01", "-", "1.", ".5", "+1", "1e", "1e+", "-a", "1.e5"])
def test_not_a_json_number(text: str) -> None:
    assert _number(text)[2] == -1


def test_integer_minus_zero_is_zero_as_orjson_gives_it() -> None:
    assert _bits(_number("-0")[0]) == _bits(0.0)
    assert _bits(_number("-0.0")[0]) == _bits(-0.0)


def _same_columns(body: bytes) -> None:
    read = jr.read_step_json(body, 100_000)
    assert read is not None
    ref = parse_samples(orjson.loads(body)["samples"], 100_000)
    for field in dataclasses.fields(ref):
        a, b = getattr(read[1], field.name), getattr(ref, field.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), field.name
        else:
            assert a == b, field.name


finite = st.floats(-1000.0, 1000.0, allow_nan=False)
row = st.fixed_dictionaries(
    {"dt_s": st.floats(0.01, 10.0)},
    optional={
        "ambient_c": st.one_of(st.none(), st.floats(-40, 60)),
        "wheel_speed_m_s": st.floats(-100, 100),
        "charging": st.booleans(),
        "measured_voltage_v": st.floats(100, 500),
    },
).flatmap(
    lambda r: st.one_of(
        st.builds(lambda p: {**r, "power_kw": p}, finite),
        st.builds(
            lambda ms: {**r, "motors": [{"torque_nm": t, "speed_rad_s": w} for t, w in ms]},
            st.lists(st.tuples(finite, finite), max_size=3),
        ),
    )
)


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=200, max_size=400))
def test_rows_and_columns_give_the_general_paths_columns(rows: list[dict]) -> None:
    _same_columns(orjson.dumps({"vehicle_id": "v", "samples": rows}))
    _same_columns(
        orjson.dumps({"samples": rows, "options": {"replace": True}}, option=orjson.OPT_INDENT_2)
    )


def _rows(n: int = 1000) -> list[dict]:
    return [{"dt_s": 0.1, "power_kw": 10.0 + i * 1e-3} for i in range(n)]


@pytest.mark.parametrize(
    "body",
    [
        b'{"samples": %s, "samples": []}' % orjson.dumps(_rows()),
        b'{"sam\\u0070les": %s}' % orjson.dumps(_rows()),
        orjson.dumps({"samples": [*_rows(), {"dt_s": 0.1, "power_kw": 1, "x": 1}]}),
        orjson.dumps({"samples": [*_rows(), {"dt_s": 0.1, "power_kw": "1"}]}),
        orjson.dumps({"samples": [*_rows(), {"dt_s": 0.1, "power_kw": 1e6}]}),
        orjson.dumps({"samples": [*_rows(), {"power_kw": 1.0}]}),
        orjson.dumps({"samples": _rows()}) + b" x",
        orjson.dumps({"samples": _rows()})[:-3],
        b'{"samples": %s}' % orjson.dumps(_rows()).replace(b"10.0", b"NaN", 1),
        b'{"samples": %s}' % orjson.dumps(_rows()).replace(b"10.0", b"1e999", 1),
        orjson.dumps({"vehicle_id": 5, "samples": _rows()}),
        orjson.dumps([_rows()]),
    ],
)
def test_gives_up_and_the_general_path_answers_the_same(body: bytes) -> None:
    read = jr.read_step_json(body, 100_000)
    if read is not None:  # only a bad envelope passes the reader; pydantic refuses it
        assert read[0].get("vehicle_id") == 5
    status = []
    for reader in (True, False):
        try:
            if reader:
                run_step_body(body, "sv1ev3", 100_000)
            else:
                from twin_service.step import service

                service.run_step(service.decode_json(body), "sv1ev3", 100_000)
            status.append(200)
        except Exception as exc:  # ApiError
            status.append((exc.status_code, exc.errors))  # type: ignore[attr-defined]
    assert status[0] == status[1]  # an escaped key is valid: both accept it


def test_too_many_samples_is_the_general_paths_413() -> None:
    body = orjson.dumps({"samples": _rows(2000)})
    assert jr.read_step_json(body, 1000) is None
    with pytest.raises(Exception) as exc:
        run_step_body(body, "sv1ev3", 1000)
    assert exc.value.status_code == 413  # type: ignore[attr-defined]


def test_step_through_the_reader_equals_the_general_path() -> None:
    from twin_service.step import service

    rows = [
        {"dt_s": 0.1, "motors": [{"torque_nm": 100 * math.sin(i / 50), "speed_rad_s": 300.0}],
         "wheel_speed_m_s": 12.0}
        for i in range(3000)
    ]  # fmt: skip
    for samples in (rows, {"dt_s": [r["dt_s"] for r in rows],
                           "motors": [{"torque_nm": [r["motors"][0]["torque_nm"] for r in rows],
                                       "speed_rad_s": [300.0] * len(rows)}]}):  # fmt: skip
        body = orjson.dumps({"vehicle_id": "v", "samples": samples, "options": {"trace": True}})
        assert jr.read_step_json(body, 100_000) is not None
        fast = run_step_body(body, "sv1ev3", 100_000)
        slow = service.run_step(orjson.loads(body), "sv1ev3", 100_000)
        assert orjson.dumps(fast.state) == orjson.dumps(slow.state)
        assert orjson.dumps(fast.trace) == orjson.dumps(slow.trace)


@pytest.mark.parametrize(
    "key", ["", "dt_x", "dt_", "dt_s_", "motorz", "torque_nM", "s", "Dt_s", "\u00e9t_s", "x" * 40]
)
def test_unknown_keys_near_known_ones(key: str) -> None:
    """The key lookup (by length and first byte) confirms every byte: a key that shares a
    known key's length and first byte, or is empty, longer or not ASCII, is unknown."""
    buf = np.frombuffer(orjson.dumps(key) + b":1", dtype=np.uint8)
    k, after = jr._key(buf, 0, jr._KEY_BYTES, jr._KEY_OFF, jr._KEY_AT)
    assert (k, after) == (-1, len(buf) - 2)


def test_every_known_key_is_found() -> None:
    for index, name in enumerate(jr._KEY_NAMES):
        buf = np.frombuffer(orjson.dumps(name) + b":1", dtype=np.uint8)
        assert jr._key(buf, 0, jr._KEY_BYTES, jr._KEY_OFF, jr._KEY_AT) == (index, len(buf) - 2)
