"""PowertrainSensor/Electrics parsing and the replay source (no service needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bridge.samples import Sample
from bridge.sources.powertrain import ReadingIntegrator, motor_names, normalize_poll
from bridge.sources.replay import recording_key, replay_samples

FIXTURES = Path(__file__).parent / "fixtures" / "beamng"
RECORDINGS = {
    "Model3_2024": ("20250911_123812", ["rearMotor"]),
    "sv1ev3": ("20251125_233629", ["frontMotor"]),
    "newmacanthenotorious": ("20250916_010357", ["frontMotor", "rearMotor"]),
}


def _files(model: str) -> tuple[Path, Path]:
    stamp = RECORDINGS[model][0]
    return (
        FIXTURES / f"{model}_powertrain_{stamp}.json",
        FIXTURES / f"{model}_electrics_{stamp}.json",
    )


def _reading(time_s: float, torque: float = 10.0, speed: float = 100.0) -> dict:
    return {
        "time": time_s,
        "rearMotor": {"outputTorque1": torque, "outputAV1": speed, "parentOutputIndex": 0.0},
        "spindleFL": {"mode": "disconnected", "outputTorque1": 0.0, "outputAV1": 3.0},
        "differential_R": {"parentName": "rearMotor", "outputTorque1": 79.4, "outputAV1": 12.6},
    }


def test_poll_shapes_int_keys_string_keys_and_empty() -> None:
    readings = [_reading(0.3), _reading(0.1), _reading(0.2)]
    int_keys = {2: readings[0], 0: readings[1], 1: readings[2]}
    str_keys = json.loads(json.dumps(int_keys))  # what json.dump makes of a live poll
    assert set(str_keys) == {"0", "1", "2"}
    float_str_keys = {f"{k}.0": v for k, v in str_keys.items()}  # the recordings' "0.0"
    for poll in (int_keys, str_keys, float_str_keys, readings):
        assert [r["time"] for r in normalize_poll(poll)] == [0.1, 0.2, 0.3]
    assert normalize_poll([]) == []
    assert normalize_poll({}) == []
    assert normalize_poll(None) == []
    assert normalize_poll(_reading(1.0)) == [_reading(1.0)]  # a single reading
    with pytest.raises(ValueError):
        normalize_poll(42)


@pytest.mark.parametrize("model", sorted(RECORDINGS))
def test_motors_of_the_recordings(model: str) -> None:
    powertrain, _ = _files(model)
    first = normalize_poll(json.loads(powertrain.read_text()))[0]
    assert motor_names(first) == RECORDINGS[model][1]


def test_model3_disconnected_spindles_are_not_motors() -> None:
    powertrain, _ = _files("Model3_2024")
    first = normalize_poll(json.loads(powertrain.read_text()))[0]
    roots = [n for n, d in first.items() if isinstance(d, dict) and not d.get("parentName")]
    assert {"spindleFL", "spindleFR", "rearMotor"} <= set(roots)
    assert motor_names(first) == ["rearMotor"]


def test_motor_override_and_unknown_names() -> None:
    reading = _reading(0.0)
    assert motor_names(reading, ["differential_R"]) == ["differential_R"]
    with pytest.raises(ValueError, match="devices: differential_R, rearMotor, spindleFL"):
        motor_names(reading, ["frontMotor"])
    with pytest.raises(ValueError, match="--motors"):
        motor_names({"time": 0.0, "spindleFL": {"mode": "disconnected"}})


def test_integrator_uses_each_readings_own_time() -> None:
    integrator = ReadingIntegrator(ambient_c=21.0)
    integrator.update_electrics({"wheelspeed": -4.0, "throttle": 0.3, "brake": 0.0, "fuel": 0.8})
    times = [3.0, 3.0105, 3.0315, 3.042]
    samples = list(integrator.feed(_reading(t, torque=20.0, speed=50.0) for t in times))
    assert [s.dt_s for s in samples] == pytest.approx([0.0105, 0.021, 0.0105])
    assert integrator.elapsed_s == pytest.approx(0.042)
    first = samples[0]
    assert first.motors[0].torque_nm == 20.0 and first.motors[0].speed_rad_s == 50.0
    assert first.wheel_speed_m_s == 4.0 and first.throttle == 0.3 and first.ambient_c == 21.0
    assert first.extras["beamng_fuel"] == 0.8  # BeamNG's own SOC, for the sample log only
    assert "beamng_fuel" not in first.to_wire()


def test_integrator_gap_and_time_reset() -> None:
    integrator = ReadingIntegrator(max_gap_s=1.0)
    samples = list(
        integrator.feed([_reading(0.0), _reading(0.1), _reading(5.1), _reading(2.0), _reading(2.1)])
    )
    assert [s.dt_s for s in samples] == pytest.approx([0.1, 5.0, 0.1])
    gap = samples[1]
    assert gap.motors[0].torque_nm == 0.0  # not integrated as driving
    assert integrator.gaps == 1 and integrator.resets == 1


@pytest.mark.parametrize("model", sorted(RECORDINGS))
def test_replay_of_each_recording(model: str) -> None:
    powertrain, electrics = _files(model)
    readings = normalize_poll(json.loads(powertrain.read_text()))
    samples = list(replay_samples([powertrain, electrics]))
    assert len(samples) == len(readings) - 1
    span = readings[-1]["time"] - readings[0]["time"]
    assert sum(s.dt_s for s in samples) == pytest.approx(span, rel=1e-12)
    assert all(len(s.motors) == len(RECORDINGS[model][1]) for s in samples)
    fuel = json.loads(electrics.read_text())["fuel"]
    assert all(s.extras["beamng_fuel"] == fuel for s in samples)
    assert samples[0].wheel_speed_m_s == pytest.approx(
        abs(json.loads(electrics.read_text())["wheelspeed"])
    )


def test_recording_pairs_by_key() -> None:
    powertrain, electrics = _files("sv1ev3")
    assert recording_key(powertrain) == recording_key(electrics) == "sv1ev3_20251125_233629"


def test_replay_accepts_int_key_json_and_empty_poll(tmp_path: Path) -> None:
    live = {0: _reading(0.0), 1: _reading(0.5), 2: _reading(1.0)}
    (tmp_path / "live.json").write_text(json.dumps(live))
    (tmp_path / "empty.json").write_text("[]")
    samples = list(replay_samples([tmp_path / "empty.json", tmp_path / "live.json"]))
    assert [s.dt_s for s in samples] == [0.5, 0.5]


def test_lone_electrics_file_is_rejected() -> None:
    _, electrics = _files("sv1ev3")
    with pytest.raises(ValueError, match="no time series"):
        list(replay_samples([electrics]))


def test_csv_log_with_time_and_motor_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "time_s,motor0_torque_nm,motor0_speed_rad_s,motor1_torque_nm,motor1_speed_rad_s,"
        "wheel_speed_m_s,brake\n"
        "10.0,0,0,0,0,0,0\n"
        "10.5,100,200,50,200,8.0,\n"
        "11.5,-40,190,-20,190,7.5,0.2\n"
    )
    samples = list(replay_samples([path], ambient_c=5.0))
    assert [s.dt_s for s in samples] == [0.5, 1.0]
    assert [m.torque_nm for m in samples[1].motors] == [-40.0, -20.0]
    assert samples[1].brake == 0.2 and samples[0].brake is None
    assert samples[0].ambient_c == 5.0


def test_csv_log_with_dt_and_power(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("dt_s,power_kw,charging\n60,-11,true\n1,12.5,\n")
    samples = list(replay_samples([path]))
    assert samples[0].power_kw == -11.0 and samples[0].charging is True
    assert samples[1].to_wire() == {"dt_s": 1.0, "power_kw": 12.5}


def test_jsonl_and_step_body_logs(tmp_path: Path) -> None:
    rows = [
        {"dt_s": 0.1, "motors": [{"torque_nm": 5, "speed_rad_s": 10}], "throttle": 0.2},
        {"dt_s": 0.1, "current_a": -20.0},
    ]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "body.json").write_text(json.dumps({"vehicle_id": "x", "samples": rows}))
    for name in ("log.jsonl", "body.json"):
        samples = list(replay_samples([tmp_path / name]))
        assert [s.to_wire() for s in samples] == [Sample.from_wire(r).to_wire() for r in rows]


def test_bad_rows_name_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"dt_s": 1.0}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: row 0: .*exactly one"):
        list(replay_samples([path]))


def test_fixture_copy_is_self_contained(tmp_path: Path) -> None:
    # The replay reads only what it is given: copying a recording elsewhere changes nothing.
    powertrain, electrics = _files("Model3_2024")
    for path in (powertrain, electrics):
        shutil.copy(path, tmp_path / path.name)
    moved = list(replay_samples([tmp_path / powertrain.name, tmp_path / electrics.name]))
    here = list(replay_samples([powertrain, electrics]))
    assert [s.to_wire() for s in moved] == [s.to_wire() for s in here]
