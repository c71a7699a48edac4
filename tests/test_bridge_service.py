"""The bridge against a real twin service process (``python -m twin_service``)."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.processes import ServiceProcess

from bridge.__main__ import main
from bridge.poster import load_state_file
from bridge.sources.powertrain import normalize_poll

FIXTURES = Path(__file__).parent / "fixtures" / "beamng"
UDDS_KM = 11.990  # shared/data/README.md
FASTSIM_MODEL3_UDDS_WH_PER_KM = 91.1  # REFERENCES.md: NREL FASTSim, battery terminals


def _run(twin: ServiceProcess, *args: str) -> int:
    return main([args[0], *args[1:], "--twin-url", twin.url, "--no-progress"])


def _state(path: Path) -> dict[str, Any]:
    record = load_state_file(path)
    assert record is not None
    return record["state"]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wh_per_km(state: dict[str, Any]) -> float:
    net_kwh = state["energy_discharged_kwh"] - state["energy_charged_kwh"]
    return net_kwh * 1000.0 / state["total_distance_km"]


def test_model3_udds_distance_and_terminal_energy(twin: ServiceProcess, tmp_path: Path) -> None:
    state_file, log = tmp_path / "m3.state.json", tmp_path / "m3.jsonl"
    code = _run(
        twin,
        "cycle",
        "--cycle",
        "udds",
        "--vehicle",
        "Model3_2024",
        "--fast",
        "--vehicle-id",
        "m3-udds",
        "--state-file",
        str(state_file),
        "--sample-log",
        str(log),
    )
    assert code == 0
    state = _state(state_file)
    assert state["total_distance_km"] == pytest.approx(UDDS_KM, rel=0.005)
    assert state["elapsed_s"] == pytest.approx(1369.0)
    assert len(_rows(log)) == 1369
    assert _wh_per_km(state) == pytest.approx(FASTSIM_MODEL3_UDDS_WH_PER_KM, rel=0.10)
    # FASTSim: regeneration returns about 37 % of the discharged energy on UDDS.
    regen_share = state["energy_charged_kwh"] / state["energy_discharged_kwh"]
    assert 0.25 < regen_share < 0.45


@pytest.mark.parametrize(("cycle", "km"), [("hwfet", 16.507), ("us06", 12.888), ("wltc", 23.266)])
def test_other_cycles_distance_and_plausible_energy(
    twin: ServiceProcess, tmp_path: Path, cycle: str, km: float
) -> None:
    state_file = tmp_path / "s.json"
    code = _run(
        twin,
        "cycle",
        "--cycle",
        cycle,
        "--vehicle",
        "Model3_2024",
        "--fast",
        "--sample-hz",
        "10",
        "--vehicle-id",
        f"m3-{cycle}",
        "--state-file",
        str(state_file),
    )
    assert code == 0
    state = _state(state_file)
    assert state["total_distance_km"] == pytest.approx(km, rel=0.005)
    assert 80.0 < _wh_per_km(state) < 150.0


def test_resume_from_state_file_continues_soc_and_soh(twin: ServiceProcess, tmp_path: Path) -> None:
    state_file = tmp_path / "resume.state.json"
    args = (
        "cycle",
        "--cycle",
        "udds",
        "--vehicle",
        "Model3_2024",
        "--fast",
        "--vehicle-id",
        "resume",
        "--state-file",
        str(state_file),
    )
    assert _run(twin, *args) == 0
    first = _state(state_file)
    assert _run(twin, *args) == 0
    second = _state(state_file)
    assert second["total_distance_km"] == pytest.approx(2 * first["total_distance_km"])
    assert second["elapsed_s"] == pytest.approx(2 * 1369.0)
    assert second["soc"] < first["soc"] and second["soh"] <= first["soh"]
    # Same as one uninterrupted run of two cycles.
    once = tmp_path / "once.state.json"
    assert (
        _run(
            twin,
            "cycle",
            "--cycle",
            "udds",
            "--vehicle",
            "Model3_2024",
            "--fast",
            "--repeat",
            "2",
            "--vehicle-id",
            "once",
            "--state-file",
            str(once),
        )
        == 0
    )
    straight = _state(once)
    assert second["soc"] == pytest.approx(straight["soc"], abs=1e-9)
    assert second["soh"] == pytest.approx(straight["soh"], abs=1e-9)
    assert second["temperature_c"] == pytest.approx(straight["temperature_c"], abs=1e-6)


@pytest.mark.parametrize(
    ("model", "stamp", "preset", "motors"),
    [
        ("Model3_2024", "20250911_123812", "Model3_2024", 1),
        ("sv1ev3", "20251125_233629", "sv1ev3", 1),
        ("newmacanthenotorious", "20250916_010357", "sv1ev3", 2),
    ],
)
def test_replay_of_the_recordings(
    twin: ServiceProcess, tmp_path: Path, model: str, stamp: str, preset: str, motors: int
) -> None:
    powertrain = FIXTURES / f"{model}_powertrain_{stamp}.json"
    electrics = FIXTURES / f"{model}_electrics_{stamp}.json"
    state_file, log = tmp_path / "r.state.json", tmp_path / "r.jsonl"
    code = _run(
        twin,
        "replay",
        str(powertrain),
        str(electrics),
        "--vehicle",
        preset,
        "--vehicle-id",
        f"replay-{model}",
        "--state-file",
        str(state_file),
        "--sample-log",
        str(log),
    )
    assert code == 0
    readings = normalize_poll(json.loads(powertrain.read_text()))
    rows = _rows(log)
    assert len(rows) == len(readings) - 1
    assert _state(state_file)["elapsed_s"] == pytest.approx(
        readings[-1]["time"] - readings[0]["time"], rel=1e-9
    )
    fuel = json.loads(electrics.read_text())["fuel"]
    assert all(len(r["motors"]) == motors and r["beamng_fuel"] == fuel for r in rows)


def test_charging_stop_between_cycles(twin: ServiceProcess, tmp_path: Path) -> None:
    state_file, log = tmp_path / "c.state.json", tmp_path / "c.jsonl"
    code = _run(
        twin,
        "cycle",
        "--cycle",
        "us06",
        "--vehicle",
        "Model3_2024",
        "--fast",
        "--repeat",
        "2",
        "--initial-soc",
        "0.36",
        "--charge-below",
        "0.4",
        "--charge-to",
        "0.5",
        "--charge-kw",
        "11",
        "--vehicle-id",
        "charging",
        "--state-file",
        str(state_file),
        "--sample-log",
        str(log),
    )
    assert code == 0
    rows = _rows(log)
    phases = [r.get("phase") for r in rows]
    first_charge = phases.index("charge")
    last_charge = len(phases) - 1 - phases[::-1].index("charge")
    assert phases[:first_charge] == ["drive"] * 600 and phases[last_charge + 1 :] == ["drive"] * 600
    charging = rows[first_charge : last_charge + 1]
    assert all(r["power_kw"] == -11.0 and r["charging"] is True for r in charging)
    assert 50.0 <= charging[-1]["twin_soc_pct"] < 51.5  # stopped at the target
    state = _state(state_file)
    assert state["total_distance_km"] == pytest.approx(2 * 12.888, rel=0.005)
    assert state["energy_charged_kwh"] > 0.13 * 54.0


def test_demo_mode_and_live_file(twin: ServiceProcess, tmp_path: Path) -> None:
    live = tmp_path / "live_data.json"
    code = _run(
        twin,
        "cycle",
        "--cycle",
        "us06",
        "--vehicle",
        "Model3_2024",
        "--fast",
        "--demo",
        "--vehicle-id",
        "demo",
        "--live-file",
        str(live),
    )
    assert code == 0
    telemetry = json.loads(live.read_text())
    assert telemetry["demo_mode"] is True and telemetry["time_multiplier"] == 10000
    seed_keys = {
        "timestamp",
        "elapsed_seconds",
        "simulated_days",
        "simulated_years",
        "soc",
        "soh",
        "temperature",
        "voltage",
        "current",
        "power_kw",
        "total_distance_km",
        "cycle_count",
        "energy_throughput_kwh",
        "is_charging",
        "is_regen",
        "demo_mode",
        "time_multiplier",
        "vehicle_model",
        "simulation_running",
    }
    assert seed_keys <= set(telemetry)
    assert telemetry["total_distance_km"] == pytest.approx(12.888, rel=0.005)


def test_unknown_preset_fails_cleanly(twin: ServiceProcess, tmp_path: Path) -> None:
    assert _run(twin, "cycle", "--cycle", "udds", "--vehicle", "nope", "--fast") == 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_flushes_and_saves(twin: ServiceProcess, tmp_path: Path, signum: int) -> None:
    state_file, log = tmp_path / "i.state.json", tmp_path / "i.jsonl"
    command = [
        sys.executable,
        "-m",
        "bridge",
        "cycle",
        "--cycle",
        "udds",
        "--vehicle",
        "Model3_2024",
        "--speedup",
        "300",
        "--batch-interval-s",
        "0.5",
        "--twin-url",
        twin.url,
        "--vehicle-id",
        f"interrupted-{signum}",
        "--state-file",
        str(state_file),
        "--sample-log",
        str(log),
        "--no-progress",
    ]
    process = subprocess.Popen(
        command,
        cwd=Path(__file__).parents[1],
        stderr=subprocess.PIPE,
        text=True,
        # A shell starts background jobs with SIGINT ignored; the bridge must still stop.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 20.0
    while not state_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first batch went through
    time.sleep(0.3)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted: sending" in stderr
    rows = _rows(log)
    assert 0 < len(rows) < 1369
    # Everything produced before the signal was sent and saved: log and state agree.
    assert _state(state_file)["elapsed_s"] == pytest.approx(len(rows))


@pytest.mark.skipif(
    importlib.util.find_spec("beamngpy") is None,
    reason="beamngpy not installed (pip install '.[beamng]'); CI installs it",
)
def test_bridge_beamng_command_end_to_end(twin: ServiceProcess, tmp_path: Path) -> None:
    """python -m bridge beamng: real beamngpy against the fake simulator, into the service."""
    try:
        from fakes.beamng_sim import FakeBeamNG
    except ImportError:
        from tests.fakes.beamng_sim import FakeBeamNG

    fake = FakeBeamNG().start()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"default_vehicle: sv1ev3\nbeamng:\n  port: {fake.port}\n  model: Model3_2024\n"
        "  electrics_period_s: 0.002\n"
    )
    try:
        state_file, log = tmp_path / "b.state.json", tmp_path / "b.jsonl"
        code = main(
            [
                "beamng",
                "--config",
                str(config),
                "--no-launch",
                "--duration",
                "3",
                "--twin-url",
                twin.url,
                "--vehicle-id",
                "bng",
                "--state-file",
                str(state_file),
                "--sample-log",
                str(log),
                "--no-progress",
            ]
        )
    finally:
        fake.stop()
    assert code == 0
    record = load_state_file(state_file)
    assert record["vehicle"] == "Model3_2024"  # the BeamNG model names the preset
    assert record["state"]["elapsed_s"] == pytest.approx(3.0, abs=0.1 + 1e-9)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == round(record["state"]["elapsed_s"] / 0.1)
    assert all("beamng_fuel" in r and "twin_soc_pct" in r for r in rows)
    distance_km = sum(r["wheel_speed_m_s"] * r["dt_s"] for r in rows) / 1000.0
    assert record["state"]["total_distance_km"] == pytest.approx(distance_km, rel=1e-9)
    assert fake.types()[-1] == "ClosePowertrain"


def test_charge_session_reports_a_tapered_fast_charge(
    twin: ServiceProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bridge charge`: a Model 3 from 10 to 80 % on a 250 kW charger at 35 degC, then a cold
    one at -10 degC that is heated first (the charge takes longer)."""
    minutes = {}
    for amb in ("35", "-10"):
        state_file = tmp_path / f"charge{amb}.state.json"
        code = _run(twin, "charge", "--vehicle", "Model3_2024", "--vehicle-id", f"dcfc{amb}",
                    "--ambient-c", amb, "--state-file", str(state_file))  # fmt: skip
        assert code == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith(f"charge Model3_2024 at 250 kW, {amb} °C: 10->80 % in ")
        minutes[amb] = float(line.split(" in ")[1].split(" min")[0])
        peak_c = float(line.split("peak ")[2].split(" ")[0])
        state = _state(state_file)
        assert 0.8 <= state["soc"] < 0.85
        assert state["tms_energy_kwh"] > 0.0
        if amb == "35":
            assert peak_c - 35.0 <= 20.0
    assert 20.0 <= minutes["35"] <= 40.0
    assert minutes["-10"] > minutes["35"]
