"""Vehicle logs through a signal map: the map and its units, ASAM MDF4 files and CAN traces
(BLF, ASC) written here with asammdf, python-can and cantools, the resampling (charge kept,
measurements without look-ahead, staleness, gaps), then replayed and calibrated against a real
service from a log the twin itself produced."""

from __future__ import annotations

import bisect
import importlib.util
import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from support.processes import ServiceProcess, free_port

# The readers need the extra 'logs'; locally its absence skips the module, in CI it fails.
_MISSING = [name for name in ("asammdf", "can", "cantools") if not importlib.util.find_spec(name)]
if _MISSING and not os.environ.get("CI"):
    pytest.skip(
        f"{', '.join(_MISSING)} not installed: pip install -e '.[logs]'", allow_module_level=True
    )

import can  # noqa: E402
import cantools  # noqa: E402
from asammdf import MDF, Signal  # noqa: E402

from bridge.__main__ import main  # noqa: E402
from bridge.calibrate import load_samples  # noqa: E402
from bridge.samples import Sample  # noqa: E402
from bridge.sources.replay import VEHICLE_LOG_SUFFIXES, replay_samples  # noqa: E402
from bridge.sources.signal_map import (  # noqa: E402
    SIGNALS,
    UNITS,
    SignalSpec,
    known_unit,
    load_signal_map,
    parse_signal_map,
)
from bridge.sources.vehicle_log import (  # noqa: E402
    SUFFIXES,
    Channel,
    LogsExtraMissing,
    convert_channel,
    vehicle_log_samples,
)
from clients.python import TwinClient  # noqa: E402

EXAMPLE_MAP = Path(__file__).parents[1] / "bridge" / "signal_maps" / "example.yaml"
EPOCH_S = 1_767_268_800.0  # 2026-01-01 12:00 UTC: CAN loggers write epoch timestamps
TAU = 2.0 * math.pi


def _times(start_s: float, stop_s: float, hz: float) -> np.ndarray:
    """Times from start to stop (inclusive) at hz, on whole microseconds (as CAN logs keep
    them): n / hz computed as one division, so they equal the replay's grid points."""
    count = math.floor((stop_s - start_s) * hz + 1e-9)
    return np.round((start_s + np.arange(count + 1) / hz) * 1e6) / 1e6


def _write_mdf(path: Path, channels: Sequence[tuple[str, np.ndarray, np.ndarray, str]]) -> Path:
    """One channel group per channel: (name, times, values, unit)."""
    mdf = MDF(version="4.10")
    for name, t, v, unit in channels:
        signal = Signal(
            np.asarray(v, dtype=float), np.asarray(t, dtype=float), name=name, unit=unit
        )
        mdf.append([signal], comment=f"{name} logger")
    mdf.save(path, overwrite=True)
    mdf.close()
    return path


def _write_map(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path


def _rows(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    return [{**s.to_wire(), **s.extras} for s in samples]


def _assert_same(a: Sequence[Sample], b: Sequence[Sample], tol: float = 1e-9) -> None:
    """The same samples: fields, motors and extras, numbers to ``tol``."""
    rows_a, rows_b = _rows(a), _rows(b)
    assert len(rows_a) == len(rows_b)
    for i, (x, y) in enumerate(zip(rows_a, rows_b, strict=True)):
        assert x.keys() == y.keys(), (i, x, y)
        for key, value in x.items():
            if key == "motors":
                for m, n in zip(value, y[key], strict=True):
                    assert m["torque_nm"] == pytest.approx(n["torque_nm"], abs=tol), (i, key)
                    assert m["speed_rad_s"] == pytest.approx(n["speed_rad_s"], abs=tol), (i, key)
            elif isinstance(value, bool):
                assert value is y[key], (i, key)
            else:
                assert value == pytest.approx(y[key], abs=tol), (i, key, value, y[key])


# -- the map and its units -------------------------------------------------------------------

UNIT_CASES = [
    ("current", "A", 12.5, 12.5),
    ("current", "mA", 1500.0, 1.5),
    ("current", "kA", 0.2, 200.0),
    ("voltage", "V", 371.2, 371.2),
    ("voltage", "mV", 371_200.0, 371.2),
    ("voltage", "kV", 0.4, 400.0),
    ("temperature", "degC", 25.0, 25.0),
    ("temperature", "°C", -10.0, -10.0),
    ("temperature", "C", 40.0, 40.0),
    ("temperature", "K", 298.15, 25.0),
    ("temperature", "degF", 77.0, 25.0),
    ("temperature", "°F", -40.0, -40.0),
    ("soc", "1", 0.55, 0.55),
    ("soc", "fraction", 0.55, 0.55),
    ("soc", "%", 55.0, 0.55),
    ("torque", "N*m", 120.0, 120.0),
    ("torque", "Nm", 120.0, 120.0),
    ("torque", "N·m", 120.0, 120.0),
    ("torque", "N.m", 120.0, 120.0),
    ("torque", "kN*m", 0.25, 250.0),
    ("torque", "kNm", 0.25, 250.0),
    ("torque", "kN·m", 0.25, 250.0),
    ("angular_speed", "rad/s", 100.0, 100.0),
    ("angular_speed", "rpm", 60.0, TAU),
    ("angular_speed", "1/min", 3000.0, 100.0 * math.pi),
    ("angular_speed", "rev/min", 30.0, math.pi),
    ("angular_speed", "Hz", 1.0, TAU),
    ("angular_speed", "rev/s", 0.5, math.pi),
    ("speed", "m/s", 10.0, 10.0),
    ("speed", "km/h", 36.0, 10.0),
    ("speed", "kph", 72.0, 20.0),
    ("speed", "mph", 1.0, 0.44704),
    ("power", "W", 1500.0, 1.5),
    ("power", "kW", 42.0, 42.0),
]


@pytest.mark.parametrize(("quantity", "unit", "value", "expected"), UNIT_CASES)
def test_unit_table_converts_to_the_sample_fields_units(
    quantity: str, unit: str, value: float, expected: float
) -> None:
    spec = SignalSpec(key="signals.x", quantity=quantity, channel="x", unit=unit)
    _, converted = convert_channel(
        Path("log.mf4"), spec, Channel(np.zeros(1), np.array([value]), None)
    )
    assert converted[0] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # The channel's own unit does the same when the map names none.
    own = SignalSpec(key="signals.x", quantity=quantity, channel="x")
    _, from_log = convert_channel(
        Path("log.mf4"), own, Channel(np.zeros(1), np.array([value]), unit)
    )
    assert from_log[0] == converted[0]


def test_every_unit_of_the_table_is_tested() -> None:
    tested = {(q, u) for q, u, _, _ in UNIT_CASES}
    assert tested == {(q, u) for q, units in UNITS.items() for u in units}


def test_channel_units_in_other_case_and_unknown_ones(caplog: pytest.LogCaptureFixture) -> None:
    assert known_unit("angular_speed", "RPM") == "rpm"
    assert known_unit("speed", " KM/H ") == "km/h"
    assert known_unit("power", "kw") == "kW"
    assert known_unit("current", "Ampere") is None and known_unit("flag", "bool") is None
    spec = SignalSpec(key="signals.pack_current", quantity="current", channel="I")
    with caplog.at_level(logging.INFO, logger="bridge.sources.vehicle_log"):
        _, values = convert_channel(Path("a.mf4"), spec, Channel(np.zeros(1), np.ones(1), "amps"))
    assert values[0] == 1.0  # read as the sample's unit, and said so
    assert "channel 'I' has unit 'amps': read as A" in caplog.text
    # An SOC without a unit above 1.5 is percent, as in CSV logs.
    soc = SignalSpec(key="signals.soc", quantity="soc", channel="SOC")
    _, values = convert_channel(
        Path("a.mf4"), soc, Channel(np.zeros(2), np.array([90, 85.5]), None)
    )
    assert values.tolist() == pytest.approx([0.9, 0.855])


@pytest.mark.parametrize(
    ("entry", "raw", "expected"),
    [
        ({"channel": "I"}, 50.0, 50.0),  # discharge positive by default
        ({"channel": "I", "sign": "discharge_positive"}, 50.0, 50.0),
        ({"channel": "I", "sign": "charge_positive"}, 50.0, -50.0),
        ({"channel": "I", "invert": True}, -20.0, 20.0),
        ({"channel": "I", "unit": "mA", "sign": "charge_positive"}, -2500.0, 2.5),
        # raw * scale + offset first, then the unit, then the sign
        ({"channel": "I", "scale": 0.5, "offset": -1000.0, "unit": "mA"}, 4000.0, 1.0),
        (
            {"channel": "I", "scale": 0.1, "offset": -3200, "sign": "charge_positive"},
            32500.0,
            -50.0,
        ),
    ],
)
def test_sign_scale_and_offset_of_the_pack_current(
    entry: dict[str, Any], raw: float, expected: float
) -> None:
    signal_map = parse_signal_map({"signals": {"pack_current": entry}})
    spec = signal_map.signals["pack_current"]
    _, values = convert_channel(Path("a.mf4"), spec, Channel(np.zeros(1), np.array([raw]), "A"))
    assert values[0] == pytest.approx(expected, abs=1e-12)


def test_map_defaults_and_shorthand(tmp_path: Path) -> None:
    loaded = parse_signal_map({"signals": {"pack_current": "I", "soc": "SOC"}})
    assert loaded.input == "current" and loaded.rate_hz == 10.0 and loaded.dbc is None
    assert loaded.signals["soc"].channel == "SOC" and loaded.signals["soc"].unit is None
    motors = {"motors": [{"torque": "T", "speed": "W"}], "power": "P"}
    assert parse_signal_map({"signals": motors}).input == "motors"
    assert parse_signal_map({"signals": {"power": "P"}}).input == "power"
    (tmp_path / "maps").mkdir()
    path = _write_map(
        tmp_path / "maps" / "m.yaml", {"dbc": "../car.dbc", "signals": {"power": "P"}}
    )
    assert load_signal_map(path).dbc == tmp_path / "maps" / ".." / "car.dbc"  # the map's folder


def test_example_map_loads_and_shows_every_key() -> None:
    example = load_signal_map(EXAMPLE_MAP)
    assert set(example.signals) == set(SIGNALS) and len(example.motors) == 2
    assert example.input == "current" and example.rate_hz == 10.0
    assert example.dbc == EXAMPLE_MAP.parent / "vehicle.dbc"
    assert example.signals["pack_current"].invert  # charge_positive
    assert example.signals["charging"].stale_s == math.inf
    text = EXAMPLE_MAP.read_text()
    for key in ("unit:", "scale:", "offset:", "invert:", "group:", "stale_s:", "sign:"):
        assert key in text, key
    for units in UNITS.values():
        for unit in units:
            assert unit in text, unit


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a mapping"),
        ("signal: {}", "signal: unknown key (did you mean signals?)"),
        ("rate_hz: 10", "signals: missing"),
        (
            "signals: {pack_curent: I}",
            "signals.pack_curent: unknown key (did you mean pack_current",
        ),
        ("signals: {soc: SOC}", "no drive input"),
        ("signals: {pack_current: {unit: A}}", "signals.pack_current: needs a channel"),
        (
            "signals: {pack_current: {channel: I, unit: amp}}",
            "signals.pack_current.unit: unknown unit 'amp' for a current (known: A, mA, kA)",
        ),
        (
            "signals: {pack_voltage: {channel: U, unit: V, sign: charge_positive}, power: P}",
            "signals.pack_voltage.sign: unknown key",
        ),
        (
            "signals: {pack_current: {channel: I, sign: charge}}",
            "signals.pack_current.sign: must be one of discharge_positive, charge_positive",
        ),
        (
            "signals: {pack_current: {channel: I, sign: charge_positive, invert: true}}",
            "sign and invert",
        ),
        ("signals: {pack_current: {channel: I, invert: yes please}}", "invert: must be true"),
        ("signals: {pack_current: {channel: I, scale: x}}", "scale: must be a number"),
        ("signals: {pack_current: {channel: I, group: -1}}", "group: must be ≥ 0"),
        ("signals: {pack_current: {channel: I, group: first}}", "group: must be a channel group"),
        ("signals: {pack_current: {channel: I, stale_s: 0}}", "stale_s: must be a number > 0"),
        ("signals: {charging: {channel: C, unit: V}, power: P}", "unknown unit 'V' for a flag"),
        ("input: motors\nsignals: {pack_current: I}", "input: motors needs signals.motors"),
        ("input: torque\nsignals: {pack_current: I}", "input: must be one of current, motors"),
        ("rate_hz: 0\nsignals: {pack_current: I}", "rate_hz: must be a number > 0"),
        ("rate_hz: .inf\nsignals: {pack_current: I}", "rate_hz: must be at most 1000"),
        ("signals: {motors: [{torque: T}]}", "signals.motors[0]: needs a speed"),
        ("signals: {motors: []}", "signals.motors: must be a list"),
        (
            "signals: {motors: [{torque: T, speed: {channel: W, unit: km/h}}]}",
            "signals.motors[0].speed.unit: unknown unit 'km/h' for a angular speed",
        ),
        ("dbc: [a]\nsignals: {pack_current: I}", "dbc: must be a file name"),
        ("signals: {pack_current: I\n", "not YAML"),
    ],
)
def test_bad_maps_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_signal_map(path)
    assert message in str(error.value)
    assert str(error.value).startswith(f"signal map {path}")


# -- MDF4: units, resampling, errors ---------------------------------------------------------


def _drive(seed: int = 3, seconds: float = 30.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A seeded drive in SI units, each signal at its own rate: name → (times, values)."""
    rng = np.random.default_rng(seed)
    t100, t10, t1 = _times(0.0, seconds, 100), _times(0.05, seconds, 10), _times(0.5, seconds, 1)
    t02 = _times(2.5, seconds, 0.2)
    steps = np.repeat(rng.uniform(-80.0, 250.0, size=int(seconds) + 1), 100)[: t100.size]
    return {
        "current": (t100, steps + rng.normal(0.0, 3.0, t100.size)),
        "voltage": (t10, 370.0 - 0.05 * np.arange(t10.size) + rng.normal(0, 0.2, t10.size)),
        "temperature": (t1, 25.0 + 0.02 * np.arange(t1.size)),
        "soc": (t02, 0.8 - 0.001 * np.arange(t02.size)),
        "ambient": (t1, np.full(t1.size, 18.5)),
        "wheel_speed": (_times(0.0, seconds, 50), 20.0 + rng.normal(0, 0.5, 50 * int(seconds) + 1)),
        "power": (t100, steps * 0.37),
        "charging": (t1, (np.arange(t1.size) > 20).astype(float)),
        "torque0": (t100, steps * 1.1),
        "speed0": (t100, np.full(t100.size, 400.0) + rng.normal(0, 1, t100.size)),
        "torque1": (t100, steps * 0.6),
        "speed1": (t100, np.full(t100.size, 410.0)),
    }


def _si_log(path: Path, drive: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    units = {
        "current": "A",
        "voltage": "V",
        "temperature": "degC",
        "soc": "",
        "ambient": "°C",
        "wheel_speed": "m/s",
        "power": "kW",
        "charging": "",
        "torque0": "Nm",
        "speed0": "rad/s",
        "torque1": "N*m",
        "speed1": "rad/s",
    }
    return _write_mdf(path, [(name, t, v, units[name]) for name, (t, v) in drive.items()])


SI_MAP: dict[str, Any] = {
    "signals": {
        "pack_current": "current",
        "pack_voltage": "voltage",
        "pack_temperature": "temperature",
        "soc": {"channel": "soc", "unit": "1"},
        "ambient": "ambient",
        "wheel_speed": "wheel_speed",
        "power": "power",
        "charging": "charging",
        "motors": [
            {"torque": "torque0", "speed": "speed0"},
            {"torque": "torque1", "speed": "speed1"},
        ],
    }
}


def _other_units_log(path: Path, drive: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """The same drive as a logger in other units and signs would write it."""
    d = drive
    temperature_f = d["temperature"][1] * 1.8 + 32.0
    channels = [
        ("I_chg", d["current"][0], -d["current"][1] * 1000.0, "mA"),  # charge positive, mA
        ("U_pack", d["voltage"][0], d["voltage"][1] * 1000.0, "mV"),
        ("T_raw", d["temperature"][0], (temperature_f + 40.0) * 2.0, ""),  # counts
        ("SOC_pct", d["soc"][0], d["soc"][1] * 100.0, "%"),
        ("T_amb", d["ambient"][0], d["ambient"][1] + 273.15, "K"),
        ("v_kmh", d["wheel_speed"][0], d["wheel_speed"][1] * 3.6, "km/h"),
        ("P_W", d["power"][0], d["power"][1] * 1000.0, "W"),
        ("plug", d["charging"][0], d["charging"][1] * 7.0, ""),  # any nonzero: plugged in
        ("EM_F_Trq", d["torque0"][0], d["torque0"][1] / 1000.0, "kN*m"),
        ("EM_F_Spd", d["speed0"][0], d["speed0"][1] * 30.0 / math.pi, "rpm"),
        ("EM_R_Trq", d["torque1"][0], -d["torque1"][1], "Nm"),  # mounted the other way round
        ("EM_R_Spd", d["speed1"][0], -d["speed1"][1] / TAU, "Hz"),
    ]
    return _write_mdf(path, channels)


OTHER_MAP: dict[str, Any] = {
    "signals": {
        "pack_current": {"channel": "I_chg", "sign": "charge_positive"},  # unit from the file
        "pack_voltage": "U_pack",
        "pack_temperature": {"channel": "T_raw", "scale": 0.5, "offset": -40.0, "unit": "degF"},
        "soc": "SOC_pct",
        "ambient": {"channel": "T_amb", "unit": "K"},
        "wheel_speed": {"channel": "v_kmh", "unit": "km/h"},
        "power": "P_W",
        "charging": "plug",
        "motors": [
            {"torque": "EM_F_Trq", "speed": {"channel": "EM_F_Spd", "unit": "rpm"}},
            {
                "torque": {"channel": "EM_R_Trq", "invert": True},
                "speed": {"channel": "EM_R_Spd", "invert": True},
            },
        ],
    }
}


@pytest.mark.parametrize("drive_input", ["current", "power", "motors"])
def test_mdf_in_other_units_and_signs_gives_the_same_samples(
    tmp_path: Path, drive_input: str
) -> None:
    drive = _drive()
    si = _si_log(tmp_path / "si.mf4", drive)
    other = _other_units_log(tmp_path / "other.mf4", drive)
    si_map = _write_map(tmp_path / "si.yaml", {"input": drive_input, **SI_MAP})
    other_map = _write_map(tmp_path / "other.yaml", {"input": drive_input, **OTHER_MAP})
    a = list(replay_samples([si], signal_map=si_map))
    b = list(replay_samples([other], signal_map=other_map))
    assert len(a) == 300  # 30 s at 10 Hz
    _assert_same(a, b)
    last = a[-1]
    assert last.measured_voltage_v is not None and 300 < last.measured_voltage_v < 400
    assert last.measured_soc is not None and 0.7 < last.measured_soc < 0.8
    assert last.ambient_c == pytest.approx(18.5) and last.charging is True
    assert a[100].charging is False  # 10.1 s: not yet plugged in (from 21.5 s)
    expected = {
        "current": ("current_a", "log_power_kw"),
        "power": ("power_kw", "log_pack_current_a"),
        "motors": ("motors", "log_pack_current_a"),
    }[drive_input]
    wire = a[50].to_wire()
    assert expected[0] in wire and expected[1] in a[50].extras
    assert not ({"current_a", "power_kw", "motors"} - {expected[0]}) & set(wire)


def test_resampling_keeps_the_charge_and_holds_measurements_without_look_ahead(
    tmp_path: Path,
) -> None:
    drive = _drive(seed=11, seconds=60.0)
    t_i, current = drive["current"]
    t_i, current = np.append(t_i, 60.05), np.append(current, 42.0)  # a short last sample
    channels = [("I", t_i, current, "A")] + [
        (name, *drive[name], "") for name in ("voltage", "temperature", "soc")
    ]
    log = _write_mdf(tmp_path / "rates.mf4", channels)
    signal_map = _write_map(
        tmp_path / "m.yaml",
        {
            "signals": {
                "pack_current": "I",
                "pack_voltage": {"channel": "voltage", "unit": "V"},
                "pack_temperature": {"channel": "temperature", "unit": "degC"},
                "soc": {"channel": "soc", "unit": "1"},
            }
        },
    )
    samples = list(replay_samples([log], signal_map=signal_map))
    assert len(samples) == 601 and samples[-1].dt_s == pytest.approx(0.05)
    assert all(s.dt_s == pytest.approx(0.1) for s in samples[:-1])
    ends = np.cumsum([s.dt_s for s in samples])
    assert ends[-1] == pytest.approx(60.05, abs=1e-9)
    # The charge is the logged current's integral (trapezoid rule over the log) exactly.
    charge = sum(s.current_a * s.dt_s for s in samples if s.current_a is not None)
    assert charge == pytest.approx(float(np.trapezoid(current, t_i)), rel=1e-12)
    # Each sample's mean is the integral over its own interval (10 log points per sample).
    k = 123
    inner = float(np.trapezoid(current[10 * k : 10 * k + 11], t_i[10 * k : 10 * k + 11])) / 0.1
    assert samples[k].current_a == pytest.approx(inner, rel=1e-9)
    # Measurements: the latest logged at or before each sample's end, none before the first.
    for name, field in (
        ("voltage", "measured_voltage_v"),
        ("temperature", "measured_temperature_c"),
        ("soc", "measured_soc"),
    ):
        t, v = drive[name]
        for end, sample in zip(ends, samples, strict=True):
            i = bisect.bisect_right(t.tolist(), end + 1e-9) - 1
            expected = float(v[i]) if i >= 0 else None
            assert getattr(sample, field) == expected, (name, end)
    # The SOC logged at 2.5 s first: the sample ending at 2.4 s has none, the one at 2.5 s has it.
    assert samples[23].measured_soc is None and samples[24].measured_soc == drive["soc"][1][0]
    # A 10 Hz voltage logged at x.x5 s: the sample ending at 1.0 s holds the 0.95 s value.
    assert samples[9].measured_voltage_v == drive["voltage"][1][9]
    assert samples[0].measured_voltage_v == drive["voltage"][1][0]  # 0.05 s ≤ 0.1 s


def test_stale_measurements_are_left_out_and_gaps_are_idle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t_on = np.concatenate([_times(0.0, 20.0, 10), _times(50.0, 60.0, 10)])  # off 20..50 s
    current = np.where(t_on < 30, 100.0, 50.0)
    measured_t = _times(0.0, 8.0, 10)  # the BMS goes quiet at 8 s
    log = _write_mdf(
        tmp_path / "gap.mf4",
        [
            ("I", t_on, current, "A"),
            ("U", measured_t, np.full(measured_t.size, 360.0), "V"),
            ("T", measured_t, np.full(measured_t.size, 30.0), "degC"),
            ("plug", np.zeros(1), np.zeros(1), ""),  # logged once, when it changed
        ],
    )
    signal_map = _write_map(
        tmp_path / "m.yaml",
        {
            "signals": {
                "pack_current": "I",
                "pack_voltage": "U",
                "pack_temperature": {"channel": "T", "stale_s": 1.0},
                "charging": {"channel": "plug", "stale_s": math.inf},
            }
        },
    )
    with caplog.at_level(logging.INFO, logger="bridge.sources.vehicle_log"):
        samples = list(replay_samples([log], signal_map=signal_map))
    ends = np.round(np.cumsum([s.dt_s for s in samples]), 6).tolist()
    # Held while at most 5 s old (the default for a 10 Hz channel), then left out.
    voltage = [ends[i] for i, s in enumerate(samples) if s.measured_voltage_v == 360.0]
    assert voltage == pytest.approx([0.1 * k for k in range(1, 131)])  # to 13.0 s
    assert all(s.measured_voltage_v is None for s in samples[130:])
    # The temperature's own stale_s: 1 s.
    temperature = [ends[i] for i, s in enumerate(samples) if s.measured_temperature_c == 30.0]
    assert temperature == pytest.approx([0.1 * k for k in range(1, 91)])  # to 9.0 s
    # stale_s .inf: a value logged once is held for good.
    assert all(s.charging is False for s in samples)
    # The 30 s without current: one idle sample, at zero current, counted in the log.
    assert "1 gaps longer than 5 s in the drive input integrated idle" in caplog.text
    assert len(samples) == 200 + 1 + 100
    idle = samples[200]
    assert idle.dt_s == pytest.approx(30.0) and idle.current_a == 0.0
    assert idle.extras["log_idle_s"] == pytest.approx(30.0) and ends[200] == 50.0
    assert [s.current_a for s in samples[:200]] == pytest.approx([100.0] * 200)
    assert [s.current_a for s in samples[201:]] == pytest.approx([50.0] * 100)
    charge = sum(s.current_a * s.dt_s for s in samples if s.current_a is not None)
    assert charge == pytest.approx(100.0 * 20.0 + 50.0 * 10.0)
    # A gap that starts and ends inside grid intervals: only the logged parts count.
    before, after = _times(0.0, 10.04, 100), _times(40.03, 50.0, 100)
    off_grid = _write_mdf(
        tmp_path / "off_grid.mf4",
        [("I", np.concatenate([before, after]), np.full(before.size + after.size, 80.0), "A")],
    )
    current_only = _write_map(tmp_path / "i.yaml", {"signals": {"pack_current": "I"}})
    pieces = list(replay_samples([off_grid], signal_map=current_only))
    assert [s.dt_s for s in pieces[99:103]] == pytest.approx([0.1, 0.1, 29.9, 0.1])
    assert pieces[100].current_a == pytest.approx(80.0 * 0.4)  # 10.0..10.04 s of 10.0..10.1
    assert pieces[102].current_a == pytest.approx(80.0 * 0.7)  # 40.03..40.1 s of 40.0..40.1
    charge = sum(s.current_a * s.dt_s for s in pieces if s.current_a is not None)
    assert charge == pytest.approx(80.0 * (10.04 + 9.97))
    # A larger --max-gap-s interpolates across the gap instead.
    across = list(replay_samples([log], signal_map=signal_map, max_gap_s=60.0))
    assert len(across) == 600 and all("log_idle_s" not in s.extras for s in across)
    bridged = sum(s.current_a * s.dt_s for s in across if s.current_a is not None)
    assert bridged == pytest.approx(2000.0 + 500.0 + 30.0 * (100.0 + 50.0) / 2)


def test_staleness_default_follows_the_channels_logging_interval(tmp_path: Path) -> None:
    t = _times(0.0, 60.0, 10)
    soc_t = _times(0.0, 60.0, 1 / 12)  # every 12 s: held 36 s (3 intervals), not 5 s
    log = _write_mdf(
        tmp_path / "slow.mf4",
        [
            ("I", t, np.full(t.size, 10.0), "A"),
            ("SOC", soc_t, np.linspace(0.9, 0.88, 6), "%"),
        ],
    )
    signal_map = _write_map(
        tmp_path / "m.yaml",
        {"signals": {"pack_current": "I", "soc": {"channel": "SOC", "unit": "1"}}},
    )
    samples = list(replay_samples([log], signal_map=signal_map))
    assert all(s.measured_soc is not None for s in samples)


def test_mdf_channel_errors_are_clear(tmp_path: Path) -> None:
    t = _times(0.0, 2.0, 10)
    log = _write_mdf(
        tmp_path / "amb.mf4",
        [
            ("BMS_PackCurrent", t, np.ones(t.size), "A"),
            ("BMS_PackVoltage", t, np.ones(t.size), "V"),
            ("BMS_PackVoltage", t, np.ones(t.size), "V"),
        ],
    )
    missing = parse_signal_map({"signals": {"pack_current": "BMS_PackCurent"}})
    with pytest.raises(
        ValueError,
        match=r"no channel 'BMS_PackCurent' in the file \(close: "
        "BMS_PackCurrent",
    ):
        vehicle_log_samples(log, missing)
    ambiguous = {"pack_current": "BMS_PackCurrent", "pack_voltage": "BMS_PackVoltage"}
    with pytest.raises(ValueError) as error:
        vehicle_log_samples(log, parse_signal_map({"signals": ambiguous}))
    assert (
        "channel 'BMS_PackVoltage' is in several places: group 1 (BMS_PackVoltage logger), "
        "group 2 (BMS_PackVoltage logger): set group: N" in str(error.value)
    )
    picked = {**ambiguous, "pack_voltage": {"channel": "BMS_PackVoltage", "group": 2}}
    assert len(vehicle_log_samples(log, parse_signal_map({"signals": picked}))) == 20
    wrong = {**ambiguous, "pack_voltage": {"channel": "BMS_PackVoltage", "group": 0}}
    with pytest.raises(ValueError, match="is not in group 0 \\(it is in group 1, 2\\)"):
        vehicle_log_samples(log, parse_signal_map({"signals": wrong}))
    # An MDF file without a map, and an empty one.
    assert set(VEHICLE_LOG_SUFFIXES) == set(SUFFIXES)  # what replay dispatches, all read
    with pytest.raises(ValueError, match="needs a signal map \\(--signal-map"):
        list(replay_samples([log]))
    empty = MDF(version="4.10")
    empty.save(tmp_path / "empty.mf4", overwrite=True)
    empty.close()
    with pytest.raises(ValueError, match="empty log"):
        vehicle_log_samples(tmp_path / "empty.mf4", missing)
    one = _write_mdf(tmp_path / "one.mf4", [("I", np.zeros(1), np.ones(1), "A")])
    with pytest.raises(ValueError, match="has 1 values: nothing to replay"):
        vehicle_log_samples(one, parse_signal_map({"signals": {"pack_current": "I"}}))


def test_missing_extra_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signal_map = parse_signal_map({"signals": {"pack_current": "I"}})
    for module, suffix in (("asammdf", ".mf4"), ("can", ".blf"), ("cantools", ".asc")):
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, module, None)  # import now fails
            with pytest.raises(LogsExtraMissing, match=r"pip install 'ev-battery-twin\[logs\]'"):
                vehicle_log_samples(tmp_path / f"x{suffix}", signal_map, dbc=tmp_path / "x.dbc")


# -- CAN: BLF and ASC ------------------------------------------------------------------------

DBC = """\
VERSION ""

NS_ :

BS_:

BU_: BMS VCU

BO_ 256 BMS_Current: 8 BMS
 SG_ BMS_PackCurrent : 0|16@1- (0.125,0) [-4096|4095.875] "A" VCU
 SG_ Counter : 16|8@1+ (1,0) [0|255] "" VCU

BO_ 257 BMS_Pack: 8 BMS
 SG_ BMS_PackVoltage : 0|16@1+ (0.015625,0) [0|1023.984375] "V" VCU
 SG_ BMS_SOC : 16|16@1+ (0.0078125,0) [0|100] "%" VCU
 SG_ Counter : 32|8@1+ (1,0) [0|255] "" VCU

BO_ 258 BMS_Temp: 8 BMS
 SG_ BMS_TempAvg : 0|16@1- (0.0078125,0) [-100|200] "degC" VCU

BO_ 2566848513 VCU_Speed: 8 VCU
 SG_ VehSpd : 0|16@1+ (0.0078125,0) [0|500] "km/h" BMS
 SG_ Chg_Active : 16|1@1+ (1,0) [0|1] "" BMS
"""
CAN_MAP: dict[str, Any] = {
    "dbc": "vehicle.dbc",
    "signals": {
        "pack_current": {"channel": "BMS_Current.BMS_PackCurrent", "sign": "charge_positive"},
        "pack_voltage": "BMS_PackVoltage",
        "soc": "BMS_Pack.BMS_SOC",
        "pack_temperature": "BMS_TempAvg",
        "wheel_speed": "VCU_Speed.VehSpd",
        "charging": "Chg_Active",
    },
}
#: DBC message → (signal → MDF channel name of the equivalent MDF4 log).
_CAN_CHANNELS = {
    "BMS_Current": {"BMS_PackCurrent": "BMS_Current.BMS_PackCurrent"},
    "BMS_Pack": {"BMS_PackVoltage": "BMS_PackVoltage", "BMS_SOC": "BMS_Pack.BMS_SOC"},
    "BMS_Temp": {"BMS_TempAvg": "BMS_TempAvg"},
    "VCU_Speed": {"VehSpd": "VCU_Speed.VehSpd", "Chg_Active": "Chg_Active"},
}


def _can_signals(seed: int = 5, seconds: float = 20.0) -> dict[str, dict[str, Any]]:
    """message → {"t": times, signal: values}: values on the DBC's resolution (exact after
    encoding), each message at its own rate."""
    rng = np.random.default_rng(seed)
    t100 = _times(0.0, seconds, 100)
    t10, t1, t50 = _times(0.005, seconds, 10), _times(0.5, seconds, 1), _times(0.002, seconds, 50)
    steps = np.repeat(rng.integers(-2000, 800, size=int(seconds) + 1), 100)[: t100.size]
    return {
        "BMS_Current": {
            "t": t100,
            "BMS_PackCurrent": (steps + rng.integers(-8, 9, t100.size)) * 0.125,
            "Counter": np.arange(t100.size) % 256,
        },  # charge positive
        "BMS_Pack": {
            "t": t10,
            "BMS_PackVoltage": 23_000 * 0.015625 - np.arange(t10.size) * 0.015625,
            "BMS_SOC": 80.0 - np.arange(t10.size) * 0.0078125,
            "Counter": np.arange(t10.size) % 256,
        },
        "BMS_Temp": {"t": t1, "BMS_TempAvg": 25.0 + np.arange(t1.size) * 0.0078125},
        "VCU_Speed": {
            "t": t50,
            "VehSpd": 60.0 + rng.integers(-64, 64, t50.size) * 0.0078125,
            "Chg_Active": (np.arange(t50.size) > 800).astype(float),
        },
    }


def _can_frames(signals: dict[str, dict[str, Any]], database: Any) -> list[Any]:
    frames = []
    for name, columns in signals.items():
        message = database.get_message_by_name(name)
        names = [s.name for s in message.signals]
        for i, t in enumerate(columns["t"]):
            data = message.encode({n: float(columns[n][i]) for n in names})
            frames.append(
                can.Message(
                    timestamp=EPOCH_S + float(t),
                    data=data,
                    arbitration_id=message.frame_id,
                    is_extended_id=message.is_extended_frame,
                )
            )
    # A frame the DBC does not know, at 20 Hz.
    for t in _times(0.001, 19.9, 20):
        frames.append(
            can.Message(
                timestamp=EPOCH_S + float(t),
                arbitration_id=0x7FF,
                data=bytes(8),
                is_extended_id=False,
            )
        )
    frames.sort(key=lambda frame: frame.timestamp)
    return frames


def _write_can(path: Path, frames: list[Any]) -> Path:
    writer = can.Logger(str(path))
    for frame in frames:
        writer.on_message_received(frame)
    writer.stop()
    return path


def _equivalent_mdf(path: Path, signals: dict[str, dict[str, Any]], database: Any) -> Path:
    """The CAN log's signals as MDF4 channels (named as the map names them)."""
    channels = []
    for name, columns in signals.items():
        message = database.get_message_by_name(name)
        for signal_name, channel in _CAN_CHANNELS[name].items():
            unit = message.get_signal_by_name(signal_name).unit or ""
            channels.append((channel, columns["t"], columns[signal_name], unit))
    return _write_mdf(path, channels)


@pytest.fixture
def can_setup(tmp_path: Path) -> Iterator[tuple[Path, Any, dict[str, dict[str, Any]]]]:
    (tmp_path / "vehicle.dbc").write_text(DBC)
    database = cantools.database.load_string(DBC)
    yield _write_map(tmp_path / "can.yaml", CAN_MAP), database, _can_signals()


@pytest.mark.parametrize("suffix", [".blf", ".asc"])
def test_can_log_decodes_to_the_samples_of_the_equivalent_mdf(
    tmp_path: Path,
    can_setup: tuple[Path, Any, dict[str, dict[str, Any]]],
    suffix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    signal_map, database, signals = can_setup
    frames = _can_frames(signals, database)
    log = _write_can(tmp_path / f"trace{suffix}", frames)
    mdf = _equivalent_mdf(tmp_path / "trace.mf4", signals, database)
    with caplog.at_level(logging.INFO, logger="bridge.sources.vehicle_log"):
        from_can = list(replay_samples([log], signal_map=signal_map))
    from_mdf = list(replay_samples([mdf], signal_map=signal_map))
    assert len(from_can) == 200
    _assert_same(from_can, from_mdf)
    unknown = sum(frame.arbitration_id == 0x7FF for frame in frames)
    assert unknown == 398
    assert (
        f"trace{suffix}: {len(frames)} CAN frames, {unknown} with IDs not in vehicle.dbc "
        "(skipped)" in caplog.text
    )
    # Units from the DBC, the sign from the map: discharge positive, SOC 0..1, km/h → m/s.
    last = from_can[-1]
    logged = -signals["BMS_Current"]["BMS_PackCurrent"]
    assert last.current_a == pytest.approx(
        (logged[-11] + logged[-1]) / 2 / 10 + logged[-10:-1].sum() / 10
    )
    assert last.measured_soc == pytest.approx(signals["BMS_Pack"]["BMS_SOC"][-1] / 100.0)
    assert last.measured_voltage_v == signals["BMS_Pack"]["BMS_PackVoltage"][-1]
    assert last.wheel_speed_m_s is not None and 16 < last.wheel_speed_m_s < 17.5
    assert last.charging is True and from_can[100].charging is False


def test_can_errors_and_the_dbc_option(
    tmp_path: Path, can_setup: tuple[Path, Any, dict[str, dict[str, Any]]]
) -> None:
    signal_map, database, signals = can_setup
    log = _write_can(tmp_path / "t.blf", _can_frames(signals, database))
    bare = {k: v for k, v in CAN_MAP.items() if k != "dbc"}
    no_dbc = _write_map(tmp_path / "no_dbc.yaml", bare)
    with pytest.raises(ValueError, match="a CAN log needs a DBC.*--dbc FILE"):
        list(replay_samples([log], signal_map=no_dbc))
    # --dbc gives it (and overrides the map's).
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    (elsewhere / "car.dbc").write_text(DBC)
    assert len(list(replay_samples([log], signal_map=no_dbc, dbc=elsewhere / "car.dbc"))) == 200
    counter = {"signals": {**bare["signals"], "soc": "Counter"}}
    with pytest.raises(
        ValueError,
        match="signal 'Counter' is in several messages: write one of "
        "BMS_Current.Counter, BMS_Pack.Counter",
    ):
        vehicle_log_samples(log, parse_signal_map(counter), dbc=elsewhere / "car.dbc")
    typo = {"signals": {**bare["signals"], "pack_voltage": "BMS_Pack.BMS_PackVolt"}}
    with pytest.raises(
        ValueError,
        match=r"no signal 'BMS_Pack.BMS_PackVolt' in the DBC \(close: "
        "BMS_Pack.BMS_PackVoltage",
    ):
        vehicle_log_samples(log, parse_signal_map(typo), dbc=elsewhere / "car.dbc")
    empty = _write_can(tmp_path / "empty.asc", [])
    with pytest.raises(ValueError, match="empty log: no CAN frames"):
        list(replay_samples([empty], signal_map=signal_map))


def test_two_motors_become_the_motors_input(tmp_path: Path) -> None:
    t = _times(0.0, 5.0, 100)
    torque_f = np.where(t < 2.5, 150.0, -40.0)
    log = _write_mdf(
        tmp_path / "motors.mf4",
        [
            ("EM_F_Torque", t, torque_f, "Nm"),
            ("EM_F_Speed", t, np.full(t.size, 6000.0), "rpm"),
            ("EM_R_Torque", t, -torque_f / 1000.0, "kN*m"),
            ("EM_R_Speed", t, 2 * t * 60, "1/min"),
            ("I", t, np.full(t.size, 12.0), "A"),
        ],
    )
    signal_map = _write_map(
        tmp_path / "m.yaml",
        {
            "input": "motors",
            "rate_hz": 2,
            "signals": {
                "pack_current": "I",
                "motors": [
                    {"torque": "EM_F_Torque", "speed": "EM_F_Speed"},
                    {"torque": {"channel": "EM_R_Torque", "invert": True}, "speed": "EM_R_Speed"},
                ],
            },
        },
    )
    samples = list(replay_samples([log], signal_map=signal_map))
    assert len(samples) == 10 and all(s.dt_s == pytest.approx(0.5) for s in samples)
    first, last = samples[0], samples[-1]
    assert first.current_a is None and first.extras["log_pack_current_a"] == pytest.approx(12.0)
    assert first.motors is not None and last.motors is not None and len(first.motors) == 2
    front, rear = first.motors
    assert front.torque_nm == pytest.approx(150.0) and front.speed_rad_s == pytest.approx(
        200 * math.pi
    )
    assert rear.torque_nm == pytest.approx(150.0)  # kN*m, inverted
    assert rear.speed_rad_s == pytest.approx(TAU * 2 * 0.25)  # the mean of 0..0.5 s of 2 t rev/s
    assert last.motors[0].torque_nm == pytest.approx(-40.0)
    assert last.motors[1].speed_rad_s == pytest.approx(TAU * 2 * 4.75)
    # (2.0, 2.5]: 150 N·m, then the logged step to -40 N·m at 2.5 s, a ramp over 10 ms.
    assert samples[4].motors is not None
    assert samples[4].motors[0].torque_nm == pytest.approx((150.0 * 0.49 + 0.55) / 0.5)


# -- end to end: the twin's own pack, logged, replayed and calibrated ------------------------

TRUTH_S = 60
TRUTH_SOC = 0.8


@pytest.fixture(scope="module")
def truth(twin: ServiceProcess) -> dict[str, np.ndarray]:
    """The sv1ev3 pack's course over a seeded 60 s current profile (10 Hz samples): what a
    BMS would log. Currents on 1/8 A so that a CAN log holds them exactly."""
    rng = np.random.default_rng(21)
    current = np.repeat(rng.integers(-600, 2000, TRUTH_S) * 0.125, 10)
    samples = [{"dt_s": 0.1, "current_a": float(c)} for c in current]
    with TwinClient(twin.url) as client:
        reply = client.step(
            samples,
            vehicle_id="truth",
            vehicle="sv1ev3",
            state={"soc": TRUTH_SOC, "temperature_c": 25.0},
            options={"trace": True, "store": False, "estimate": False},
        )
    trace = reply["trace"]
    assert isinstance(trace, list) and len(trace) == current.size
    return {
        key: np.array([row[key] for row in trace])
        for key in ("current", "voltage", "temperature", "soc")
    }


def _truth_channels(truth: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The truth as a logger samples it: current 100 Hz, voltage 10 Hz, temperature 1 Hz, SOC
    0.2 Hz; sample k of the truth covers ((k-1)/10, k/10]."""
    t100 = _times(0.0, TRUTH_S, 100)
    sample = np.maximum(np.ceil(np.round(t100 * 10, 6)).astype(int), 1) - 1
    t10, t1, t02 = _times(0.1, TRUTH_S, 10), _times(1.0, TRUTH_S, 1), _times(5.0, TRUTH_S, 0.2)
    return {
        "current": (t100, truth["current"][sample]),
        "voltage": (t10, truth["voltage"]),
        "temperature": (t1, truth["temperature"][9::10]),
        "soc": (t02, truth["soc"][49::50]),
    }


@pytest.fixture(scope="module")
def logs(truth: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The truth as an MDF4 log (charge-positive mA, mV, degF, %) and as a BLF trace."""
    root = tmp_path_factory.mktemp("vehicle_logs")
    c = _truth_channels(truth)
    mdf = _write_mdf(
        root / "sv1ev3_drive_20260101.mf4",
        [
            ("BMS_I", c["current"][0], -c["current"][1] * 1000.0, "mA"),
            ("BMS_U", c["voltage"][0], c["voltage"][1] * 1000.0, "mV"),
            ("BMS_T", c["temperature"][0], c["temperature"][1] * 1.8 + 32.0, "°F"),
            ("BMS_SOC", c["soc"][0], c["soc"][1] * 100.0, "%"),
        ],
    )
    mdf_map = _write_map(
        root / "mdf.yaml",
        {
            "signals": {
                "pack_current": {"channel": "BMS_I", "sign": "charge_positive"},
                "pack_voltage": "BMS_U",
                "pack_temperature": {"channel": "BMS_T", "unit": "degF"},
                "soc": {"channel": "BMS_SOC", "unit": "%"},
            }
        },
    )
    (root / "vehicle.dbc").write_text(DBC)
    database = cantools.database.load_string(DBC)
    columns = {
        "BMS_Current": {
            "t": c["current"][0],
            "BMS_PackCurrent": -c["current"][1],
            "Counter": np.zeros(c["current"][0].size),
        },
        "BMS_Pack": {
            "t": c["voltage"][0],
            "BMS_PackVoltage": c["voltage"][1],
            "BMS_SOC": np.interp(c["voltage"][0], c["soc"][0], c["soc"][1]) * 100.0,
            "Counter": np.zeros(c["voltage"][0].size),
        },
        "BMS_Temp": {"t": c["temperature"][0], "BMS_TempAvg": c["temperature"][1]},
    }
    frames = _can_frames(columns, database)
    blf = _write_can(root / "sv1ev3_drive_20260101.blf", frames)
    can_map = _write_map(
        root / "can.yaml",
        {
            "dbc": "vehicle.dbc",
            "signals": {
                k: v for k, v in CAN_MAP["signals"].items() if k not in ("wheel_speed", "charging")
            },
        },
    )
    return {"mdf": mdf, "mdf_map": mdf_map, "blf": blf, "blf_map": can_map}


def _replay(twin: ServiceProcess, tmp_path: Path, vehicle_id: str, *args: str) -> list[Any]:
    sent = tmp_path / f"{vehicle_id}.jsonl"
    code = main(
        ["replay", *args, "--twin-url", twin.url, "--vehicle-id", vehicle_id, "--vehicle",
         "sv1ev3", "--initial-soc", str(TRUTH_SOC), "--no-progress", "--sample-log", str(sent)]
    )  # fmt: skip
    assert code == 0
    return [json.loads(line) for line in sent.read_text().splitlines()]


# (the BLF's SOC rides in the 10 Hz pack message, the MDF4's is logged at 0.2 Hz from 5 s)
@pytest.mark.parametrize(
    ("kind", "voltage_tol", "first_soc"), [("mdf", 1e-6, 49), ("blf", 0.008, 0)]
)
def test_replay_of_a_vehicle_log_reaches_the_twin_in_its_units(
    twin: ServiceProcess,
    truth: dict[str, np.ndarray],
    logs: dict[str, Path],
    tmp_path: Path,
    kind: str,
    voltage_tol: float,
    first_soc: int,
) -> None:
    vehicle_id = f"{kind}-log"
    sent = _replay(
        twin, tmp_path, vehicle_id, str(logs[kind]), "--signal-map", str(logs[f"{kind}_map"])
    )
    assert len(sent) == TRUTH_S * 10
    assert sum(row["dt_s"] for row in sent) == pytest.approx(TRUTH_S)
    # The pack current as logged: discharge positive, the same charge (the 100 Hz log's steps
    # are ramps over 10 ms, so single samples differ by up to 5 % of a step).
    logged_as = sum(row["current_a"] * row["dt_s"] for row in sent)
    t, current = _truth_channels(truth)["current"]
    assert logged_as == pytest.approx(float(np.trapezoid(current, t)), rel=1e-9)
    assert logged_as == pytest.approx(float(truth["current"].sum() * 0.1), rel=0.01)
    # Volts, degC and 0..1 in every sample, each the latest logged at or before its end.
    volts = np.array([row["measured_voltage_v"] for row in sent])
    assert np.abs(volts - truth["voltage"]).max() <= voltage_tol
    temperatures = [row.get("measured_temperature_c") for row in sent]
    assert temperatures[:9] == [None] * 9
    expected_t = np.repeat(truth["temperature"][9::10], 10)[: TRUTH_S * 10 - 9]
    assert np.abs(np.array(temperatures[9:], dtype=float) - expected_t).max() < 0.005
    socs = [row.get("measured_soc") for row in sent]
    assert socs[:first_soc] == [None] * first_soc
    assert all(0.5 < s < 0.81 for s in socs[first_soc:])
    assert socs[-1] == pytest.approx(truth["soc"][-1], abs=1e-4)
    # The twin took them as such: the telemetry's measured voltage is the logged one, the
    # current the logged current, and the estimator's voltage residual is small (the twin's
    # own pack, replayed).
    with TwinClient(twin.url) as client:
        stored = client.vehicle(vehicle_id)
    telemetry = stored["telemetry"]
    assert telemetry["measured_voltage"] == pytest.approx(
        truth["voltage"][-1], abs=voltage_tol + 1e-3
    )
    assert telemetry["current"] == pytest.approx(truth["current"][-1], abs=0.05)
    assert abs(telemetry["voltage_residual"]) < 0.2
    assert telemetry["measurements_rejected"] == 0
    assert telemetry["soc"] == pytest.approx(truth["soc"][-1] * 100.0, abs=0.3)
    assert telemetry["temperature"] == pytest.approx(truth["temperature"][-1], abs=0.5)
    estimator = stored["state"]["estimator"]
    assert estimator["accepted"] >= TRUTH_S * 10 and estimator["rejected"] == 0
    assert estimator["residual_ms_v2"] < 0.01  # rms below 0.1 V over the whole log
    assert stored["state"]["soc"] == pytest.approx(truth["soc"][-1], abs=2e-3)


def test_calibrate_reads_an_mdf_log_through_the_map(
    twin: ServiceProcess, logs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    samples = load_samples([logs["mdf"]], signal_map=logs["mdf_map"])
    assert len(samples) == TRUTH_S * 10
    assert all(s.measured_voltage_v is not None for s in samples)
    code = main(
        ["calibrate", str(logs["mdf"]), "--signal-map", str(logs["mdf_map"]), "--vehicle",
         "sv1ev3", "--initial-soc", str(TRUTH_SOC), "--parameters", "r0_ohm", "--twin-url",
         twin.url]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "r0_ohm" in printed and f"({TRUTH_S * 10} samples)" in printed


def test_a_bad_map_or_none_exits_2_before_the_service_is_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = _times(0.0, 2.0, 10)
    log = _write_mdf(tmp_path / "drive.mf4", [("BMS_I", t, np.ones(t.size), "A")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("signals: {pack_current: {channel: BMS_I, unit: amps}}\n")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["replay", str(log), "--signal-map", str(bad), "--twin-url", url]) == 2
    assert "signals.pack_current.unit: unknown unit 'amps'" in caplog.text
    assert main(["calibrate", str(log), "--twin-url", url]) == 2  # no map
    assert "needs a signal map" in caplog.text
    assert "service unreachable" not in caplog.text
