"""The BeamNG source: the real beamngpy 1.36 code against a fake simulator that speaks its
TCP/msgpack protocol (tests/fakes/beamng_sim.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.sources.beamng import beamng_samples
from bridge.sources.beamng_adapter import (
    BeamNGSettings,
    BeamNGUnavailable,
    import_beamngpy,
)
from bridge.sources.explore import explore
from bridge.sources.replay import replay_samples

HAVE_BEAMNGPY = importlib.util.find_spec("beamngpy") is not None
needs_beamngpy = pytest.mark.skipif(
    not HAVE_BEAMNGPY, reason="beamngpy not installed (pip install '.[beamng]'); CI installs it"
)

if HAVE_BEAMNGPY:  # the fake simulator needs msgpack, which comes with beamngpy
    try:
        from fakes.beamng_sim import FakeBeamNG
    except ImportError:
        from tests.fakes.beamng_sim import FakeBeamNG


@pytest.fixture
def fake() -> Iterator[FakeBeamNG]:
    if not HAVE_BEAMNGPY:
        pytest.skip("beamngpy not installed")
    with FakeBeamNG() as simulator:
        yield simulator


def _settings(fake: FakeBeamNG, **overrides: object) -> BeamNGSettings:
    values: dict[str, object] = {
        "port": fake.port,
        "model": "Model3_2024",
        "electrics_period_s": 0.002,
        "socket_timeout_s": 0.3,
        "max_stalls": 2,
    }
    return BeamNGSettings(**{**values, **overrides})


def _non_poll(fake: FakeBeamNG) -> list[str]:
    return [t for t in fake.types() if t not in ("PollPowertrainGE", "SensorRequest")]


@needs_beamngpy
def test_attach_takes_the_player_vehicle_and_removes_the_sensor(fake: FakeBeamNG) -> None:
    samples = list(beamng_samples(_settings(fake), launch=False, duration_s=2.0))
    elapsed = sum(s.dt_s for s in samples)
    assert 2.0 - 1e-9 <= elapsed < 2.0 + 0.1 + 1e-9
    assert all(abs(s.dt_s - 0.1) < 1e-9 for s in samples)  # the sensor's physics period
    # Only rearMotor: the disconnected front spindles (no parentName either) are not motors.
    assert all(len(s.motors) == 1 for s in samples)
    reading = fake.reading(1.0)
    at_1s = next(s for s in samples if abs(s.extras["beamng_time_s"] - 1.0) < 1e-9)
    assert at_1s.motors[0].torque_nm == pytest.approx(reading["rearMotor"]["outputTorque1"])
    assert at_1s.motors[0].speed_rad_s == pytest.approx(reading["rearMotor"]["outputAV1"])
    assert 0.8 < at_1s.extras["beamng_fuel"] <= 0.9  # BeamNG's SOC forwarded for the log
    assert at_1s.extras["beamng_capacity_kwh"] == 75.0  # renamed by beamngpy (fuelCapacity)
    assert samples[-1].wheel_speed_m_s == pytest.approx(fake.speed_m_s(fake.time_s))
    calls = _non_poll(fake)
    assert calls[:5] == [
        "Hello",
        "GetSystemInfo",
        "GetEnvironmentPaths",
        "GetPlayerVehicleID",
        "GetCurrentVehicles",
    ]
    assert "SpawnVehicle" not in calls and "CreateScenario" not in calls
    assert calls.index("OpenPowertrain") < calls.index("SetAiMode")
    assert calls[-1] == "ClosePowertrain" and not fake.sensors
    assert fake.ai_mode == "span"


@needs_beamngpy
def test_attach_spawns_a_vehicle_without_a_matching_player() -> None:
    for player in (None, "otherCar"):
        with FakeBeamNG(player_vid=player, model="etk800") as fake:
            list(beamng_samples(_settings(fake), launch=False, duration_s=0.5))
            assert "SpawnVehicle" in fake.types()
            assert fake.vehicles["ev_twin"] == "Model3_2024"
            assert not fake.sensors


@needs_beamngpy
def test_owning_the_simulator_loads_a_scenario(fake: FakeBeamNG) -> None:
    # With beamng_home set, beamngpy first tries the running instance (the fake) and does not
    # start a process; the bridge then builds its own scenario and never sends Quit.
    settings = _settings(fake, beamng_home="/nonexistent/BeamNG.tech")
    samples = list(beamng_samples(settings, launch=True, duration_s=0.5))
    assert samples
    calls = _non_poll(fake)
    for step in ("CreateScenario", "LoadScenario", "StartScenario", "OpenPowertrain"):
        assert step in calls
    assert calls.index("LoadScenario") < calls.index("StartScenario")
    assert "Quit" not in calls and calls[-1] == "ClosePowertrain"


@needs_beamngpy
def test_empty_polls_and_a_gap_in_the_readings(fake: FakeBeamNG) -> None:
    fake.empty_polls = 5
    source = beamng_samples(_settings(fake), launch=False, duration_s=4.0)
    samples = [next(source)]
    fake.jump_s = 3.0  # readings lost between two polls
    samples += list(source)
    gaps = [s for s in samples if s.dt_s > 1.0]
    assert len(gaps) == 1 and gaps[0].dt_s == pytest.approx(3.1)
    assert gaps[0].motors[0].torque_nm == 0.0  # not integrated as driving
    assert sum(s.dt_s for s in samples) >= 4.0 - 1e-9
    assert fake.types().count("PollPowertrainGE") > 5


@needs_beamngpy
def test_frozen_simulator_is_survived(fake: FakeBeamNG) -> None:
    fake.freeze_polls = 1  # one poll never answered: socket timeout
    started = time.monotonic()
    samples = list(beamng_samples(_settings(fake), launch=False, duration_s=1.0))
    assert sum(s.dt_s for s in samples) >= 1.0 - 1e-9
    assert time.monotonic() - started < 10.0
    assert fake.types()[-1] == "ClosePowertrain"


@needs_beamngpy
def test_frozen_simulator_ends_the_run_and_still_removes_the_sensor(fake: FakeBeamNG) -> None:
    fake.freeze_polls = 100
    samples = list(beamng_samples(_settings(fake), launch=False, duration_s=10.0))
    assert samples == []
    assert "ClosePowertrain" in fake.types() and not fake.sensors


@needs_beamngpy
def test_stopping_the_consumer_removes_the_sensor(fake: FakeBeamNG) -> None:
    source = beamng_samples(_settings(fake), launch=False)
    first = [next(source) for _ in range(5)]
    assert len(first) == 5 and fake.sensors
    with pytest.raises(KeyboardInterrupt):
        source.throw(KeyboardInterrupt)  # Ctrl-C while the source is suspended
    assert fake.types()[-1] == "ClosePowertrain" and not fake.sensors


@needs_beamngpy
def test_stepping_the_simulation(fake: FakeBeamNG) -> None:
    samples = list(
        beamng_samples(
            _settings(fake, steps_per_poll=10, ai_mode="disabled"), launch=False, duration_s=1.0
        )
    )
    calls = _non_poll(fake)
    assert "Pause" in calls and "Step" in calls and "SetAiMode" not in calls
    assert sum(s.dt_s for s in samples) == pytest.approx(1.0)


@needs_beamngpy
def test_explorer_files_replay(fake: FakeBeamNG, tmp_path: Path) -> None:
    paths = explore(_settings(fake), out_dir=tmp_path, duration_s=0.2, launch=False)
    assert sorted(paths) == ["analysis", "electrics", "powertrain"]
    for kind, path in paths.items():
        part = "battery_analysis" if kind == "analysis" else kind
        assert path.name.startswith(f"Model3_2024_{part}_") and path.suffix == ".json"
    powertrain = json.loads(paths["powertrain"].read_text())
    assert list(powertrain)[:2] == ["0.0", "1.0"]  # as the recordings the replay reads
    analysis = json.loads(paths["analysis"].read_text())
    assert analysis["motors"] == ["rearMotor"] and analysis["readings"] == len(powertrain)
    assert 0.8 < analysis["beamng_soc"] <= 0.9
    samples = list(replay_samples([paths["powertrain"], paths["electrics"]]))
    assert len(samples) == len(powertrain) - 1
    assert "ClosePowertrain" in fake.types()


def test_settings_from_config_and_overrides(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    config = tmp_path / "config.yaml"
    config.write_text(
        "port: 8008\nbeamng:\n  host: 10.0.0.2\n  port: 4000\n  level: italy\n"
        "  spawn_pos: [1, 2, 3]\n  typo_key: 1\n"
    )
    settings = BeamNGSettings.from_config(config, port=5000, model=None)
    assert (settings.host, settings.port, settings.level) == ("10.0.0.2", 5000, "italy")
    assert settings.model == "sv1ev3" and settings.spawn_pos == (1.0, 2.0, 3.0)
    assert "typo_key" in caplog.text
    with pytest.raises(FileNotFoundError):
        BeamNGSettings.from_config(tmp_path / "missing.yaml")


def test_missing_beamngpy_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "beamngpy", None)  # import fails as if not installed
    with pytest.raises(BeamNGUnavailable, match=r"pip install '\.\[beamng\]'"):
        import_beamngpy()
