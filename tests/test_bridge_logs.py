"""Logs with measurements: CSV/JSONL aliases, percent SOC, Battery Data Format files (readers),
then replayed into a real service."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.processes import ServiceProcess

from bridge.__main__ import main
from bridge.poster import load_state_file
from bridge.sources.bdf import bdf_samples, is_bdf_file, is_bdf_header
from bridge.sources.replay import replay_samples

LOGS = Path(__file__).parent / "fixtures" / "logs"
BDF_FIXTURE = LOGS / "sv1ev3_drive_20260101.bdf.csv"
BDF_HEADER = "Test Time / s,Voltage / V,Current / A,Surface Temperature T1 / degC"


def _make_bdf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bdf", LOGS / "make_bdf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _measured(samples: list[Any]) -> list[tuple[Any, Any, Any]]:
    return [(s.measured_voltage_v, s.measured_temperature_c, s.measured_soc) for s in samples]


# -- CSV and JSONL ---------------------------------------------------------------------------


def test_csv_measurements_by_field_name_and_by_alias(tmp_path: Path) -> None:
    own = _write(
        tmp_path / "own.csv",
        "time_s,current_a,measured_voltage_v,measured_temperature_c,measured_soc\n"
        "0,0,380,25,0.9\n1,100,371.5,25.1,0.89\n2,-50,,25.2,\n",
    )
    short = _write(
        tmp_path / "short.csv",
        "time_s,current_a,voltage_v,temperature_c,soc\n0,0,380,25,0.9\n1,100,371.5,25.1,0.89\n"
        "2,-50,,25.2,\n",
    )
    pack = _write(
        tmp_path / "pack.csv",
        "time_s,current_a,pack_voltage_v,pack_temperature_c,bms_soc\n0,0,380,25,0.9\n"
        "1,100,371.5,25.1,0.89\n2,-50,,25.2,\n",
    )
    expected = [(371.5, 25.1, 0.89), (None, 25.2, None)]
    for path in (own, short, pack):
        samples = list(replay_samples([path]))
        assert _measured(samples) == expected, path.name
        assert [s.current_a for s in samples] == [100.0, -50.0]  # discharge > 0, as logged
        wire = samples[0].to_wire()
        assert wire["measured_voltage_v"] == 371.5 and wire["measured_soc"] == 0.89
        assert "voltage_v" not in wire and "measured_voltage_v" not in samples[1].to_wire()


def test_percent_soc_column_is_scaled_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "bms.csv", "dt_s,current_a,bms_soc\n1,10,85.5\n1,10,85.0\n1,10,1.0\n")
    with caplog.at_level(logging.INFO, logger="bridge.sources.replay"):
        samples = list(replay_samples([path]))
    assert [s.measured_soc for s in samples] == pytest.approx([0.855, 0.85, 0.01])
    assert "'bms_soc' read as percent" in caplog.text
    # A fraction column stays as it is, even with a value above 1 (up to 1.5: still fraction).
    fraction = _write(tmp_path / "f.csv", "dt_s,current_a,soc\n1,10,0.5\n1,10,1.2\n")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bridge.sources.replay"):
        assert [s.measured_soc for s in replay_samples([fraction])] == [0.5, 1.2]
    assert "percent" not in caplog.text


def test_field_name_wins_over_alias_in_a_row(tmp_path: Path) -> None:
    path = _write(tmp_path / "both.csv", "dt_s,current_a,measured_voltage_v,voltage_v\n1,5,370,1\n")
    (sample,) = replay_samples([path])
    assert sample.measured_voltage_v == 370.0
    assert sample.extras["voltage_v"] == "1"  # kept for the sample log only


def test_jsonl_measurements_aliases_and_nulls(tmp_path: Path) -> None:
    rows = [
        {"dt_s": 1.0, "current_a": 20.0, "voltage_v": 372.25, "soc": 91.0, "temperature_c": 24.5},
        {"dt_s": 0.5, "power_kw": -3.0, "voltage_v": None, "soc": 90.5},
    ]
    path = _write(tmp_path / "log.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    samples = list(replay_samples([path]))
    assert _measured(samples) == [(372.25, 24.5, 0.91), (None, None, 0.905)]
    assert samples[1].power_kw == -3.0


# -- Battery Data Format ---------------------------------------------------------------------


def test_bdf_header_forms() -> None:
    assert is_bdf_header(BDF_HEADER.split(","))
    assert is_bdf_header(["test_time_second", "voltage_volt", "current_ampere"])
    assert is_bdf_header(["  test time /  s", "VOLTAGE / V", "Current / A"])  # case, spaces
    assert not is_bdf_header(["Test Time / s", "Voltage / V"])  # no current
    assert not is_bdf_header(["time_s", "current_a", "voltage_v"])  # a replay CSV


def test_bdf_rows_become_samples_with_negated_current(tmp_path: Path) -> None:
    text = (
        f"{BDF_HEADER},Ambient Temperature / degC,Step Count / 1\n"
        "100.0,3.30,0.0,25.0,20.0,1\n"  # the start
        "101.0,3.25,-2.0,25.1,20.0,2\n"  # discharging at 2 A
        "101.5,3.40,1.5,25.2,20.5,3\n"  # charging at 1.5 A
    )
    for name in ("cell.csv", "cell.bdf.csv", "cell.bdf"):
        path = _write(tmp_path / name, text)
        assert is_bdf_file(path)
        samples = list(replay_samples([path]))
        assert [s.dt_s for s in samples] == [1.0, 0.5]
        assert [s.current_a for s in samples] == [2.0, -1.5]
        assert _measured(samples) == [(3.25, 25.1, None), (3.40, 25.2, None)]
        assert [s.ambient_c for s in samples] == [20.0, 20.5]
        assert samples[0].extras == {"bdf_test_time_s": 101.0, "bdf_step_count": 2.0}
        assert [s.position for s in samples] == [{"index": 1}, {"index": 2}]


def test_bdf_machine_readable_header(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.csv",
        "test_time_second,voltage_volt,current_ampere,temperature_t1_celsius,unix_time_second\n"
        "0,3.3,0,25,1700000000\n10,3.2,-3,26,1700000010\n",
    )
    (sample,) = replay_samples([path])
    assert (sample.dt_s, sample.current_a, sample.measured_voltage_v) == (10.0, 3.0, 3.2)
    assert sample.measured_temperature_c == 26.0 and sample.extras["bdf_unix_time_s"] == 1.7e9 + 10


def test_bdf_non_increasing_times_are_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(
        tmp_path / "t.csv",
        f"{BDF_HEADER}\n0,3.3,0,25\n1,3.2,-1,25\n1,3.1,-9,25\n0.5,3.0,-9,25\n2,3.25,-1,25\n",
    )
    with caplog.at_level(logging.WARNING, logger="bridge.sources.bdf"):
        samples = list(bdf_samples(path))
    assert [(s.dt_s, s.current_a) for s in samples] == [(1.0, 1.0), (1.0, 1.0)]
    assert "2 rows without an increasing Test Time / s skipped" in caplog.text


def test_bdf_gap_is_integrated_at_zero_current(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 1 s rows, then 600 s without a row: the rest of the gap idles, the row keeps 1 s.
    path = _write(tmp_path / "g.csv", f"{BDF_HEADER}\n0,3.3,0,25\n1,3.2,-2,25\n601,3.1,-2,24\n")
    with caplog.at_level(logging.WARNING, logger="bridge.sources.bdf"):
        samples = list(bdf_samples(path, max_gap_s=60.0))
    assert [(s.dt_s, s.current_a, s.measured_voltage_v) for s in samples] == [
        (1.0, 2.0, 3.2),
        (599.0, 0.0, None),
        (1.0, 2.0, 3.1),
    ]
    assert sum(s.dt_s for s in samples) == 601.0  # the pack's clock stays right
    assert "1 gaps longer than 60 s" in caplog.text
    # The default for BDF logs keeps sparse logging (60 s rows) as it was logged.
    sparse = _write(tmp_path / "s.csv", f"{BDF_HEADER}\n0,3.3,0,25\n30,3.2,-2,25\n60,3.1,-2,25\n")
    assert [(s.dt_s, s.current_a) for s in replay_samples([sparse])] == [(30.0, 2.0)] * 2
    assert [s.dt_s for s in replay_samples([sparse], max_gap_s=10.0)] == [20.0, 10.0, 20.0, 10.0]


def test_bdf_bad_cells_name_the_line_and_column(tmp_path: Path) -> None:
    bad_voltage = _write(tmp_path / "v.csv", f"{BDF_HEADER}\n0,3.3,0,25\n1,high,-1,25\n")
    with pytest.raises(ValueError, match=r"v.csv: line 3: 'Voltage / V' is not a number"):
        list(replay_samples([bad_voltage]))
    no_current = _write(tmp_path / "c.csv", f"{BDF_HEADER}\n0,3.3,0,25\n1,3.2,,25\n")
    with pytest.raises(ValueError, match=r"c.csv: line 3: no 'Current / A'"):
        list(replay_samples([no_current]))
    # Text in an optional column only means "not logged".
    odd = _write(tmp_path / "o.csv", f"{BDF_HEADER}\n0,3.3,0,25\n1,3.2,-1,n/a\n")
    assert [s.measured_temperature_c for s in replay_samples([odd])] == [None]


def test_bdf_fixture_matches_its_generator() -> None:
    make_bdf = _make_bdf()
    samples = list(replay_samples([BDF_FIXTURE]))
    requested, _ = make_bdf.profile_a()
    assert len(samples) == len(requested) == 1800
    assert sum(s.dt_s for s in samples) == 1800.0
    current = [s.current_a for s in samples if s.current_a is not None]
    assert len(current) == 1800
    # Discharge > 0 again: the profile's discharges as asked, its regen cut at high SOC.
    assert all(c == r for c, r in zip(current, requested, strict=True) if r >= 0)
    assert all(r <= c < 0 for c, r in zip(current, requested, strict=True) if r < 0)
    assert {s.ambient_c for s in samples} == {make_bdf.AMBIENT_C}
    assert BDF_FIXTURE.stat().st_size < 100_000
    # Regenerating gives the same file (to the printed digits).
    rows = make_bdf.rows()[1:]
    assert current == [-r[2] for r in rows]
    assert [s.measured_voltage_v for s in samples] == pytest.approx([r[1] for r in rows], abs=2e-3)
    assert [s.measured_temperature_c for s in samples] == pytest.approx(
        [r[3] for r in rows], abs=2e-2
    )


# -- replayed into the service ---------------------------------------------------------------


def _replay(twin: ServiceProcess, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    tmp_path.mkdir(exist_ok=True)
    state_file = tmp_path / "replay.state.json"
    code = main(
        ["replay", *args, "--twin-url", twin.url, "--no-progress", "--state-file", str(state_file)]
    )
    record = load_state_file(state_file) or {}
    return code, record.get("state") or {}


def test_replay_of_the_bdf_fixture_posts_measurements(twin: ServiceProcess, tmp_path: Path) -> None:
    log = tmp_path / "sent.jsonl"
    code, state = _replay(
        twin, tmp_path, str(BDF_FIXTURE), "--vehicle", "sv1ev3", "--vehicle-id", "bdf-replay",
        "--initial-soc", "0.9", "--sample-log", str(log),
    )  # fmt: skip
    assert code == 0
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(sent) == 1800
    assert all(isinstance(row["measured_voltage_v"], float) for row in sent)
    assert all(isinstance(row["measured_temperature_c"], float) for row in sent)
    assert state["elapsed_s"] == pytest.approx(1800.0)
    # The sign reached the pack: the file's charge-positive current, at 1 s rows, took
    # about 54 Ah net out of the nominal 220 Ah pack.
    with open(BDF_FIXTURE, newline="") as handle:
        logged_ah = sum(float(row["Current / A"]) for row in csv.DictReader(handle)) / 3600.0
    net_ah = sum(row["current_a"] * row["dt_s"] for row in sent) / 3600.0
    assert net_ah == pytest.approx(-logged_ah, abs=1e-9) and net_ah > 50.0
    # The measured voltages went in too: the estimator moved SOC from Coulomb counting on the
    # nominal 220 Ah to the fixture's true pack (8 % less capacity).
    assert state["soc"] == pytest.approx(0.9 - net_ah / (220.0 * 0.92), abs=5e-3)
    assert abs(state["soc"] - (0.9 - net_ah / 220.0)) > 0.015
    assert state["estimator"]["accepted"] > 1000


def test_replay_posts_csv_measurements_the_service_validates(
    twin: ServiceProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _write(
        tmp_path / "bms.csv",
        "time_s,current_a,pack_voltage_v,pack_temperature_c,bms_soc\n"
        "0,0,380,25,90\n1,100,371.5,25.1,89.9\n2,100,371.4,25.1,89.8\n",
    )
    code, state = _replay(twin, tmp_path, str(good), "--vehicle-id", "csv-measured")
    assert code == 0  # the percent SOC was scaled: the service takes 0..1 only
    assert state["elapsed_s"] == pytest.approx(2.0)
    # The measurements do reach the service: one it cannot accept is rejected there.
    bad = _write(tmp_path / "bad.csv", "dt_s,current_a,measured_voltage_v\n1,10,20000\n")
    code, _ = _replay(twin, tmp_path / "bad", str(bad), "--vehicle-id", "csv-bad-voltage")
    assert code == 1
    # (the bridge sends columns: the error names the field, then the sample)
    assert "service rejected sample" in caplog.text
    assert "'samples', 'measured_voltage_v', 0]" in caplog.text
