"""What the bridge tells its user: where it posts, an unreachable service while it lasts, the
samples delivered / not delivered / dropped at the end (and the exit code), the preset a replay
picks, and the fix when BeamNG.tech cannot be reached. The bridge runs as a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.processes import ServiceProcess, free_port

from bridge.__main__ import EXAMPLES, build_parser, main
from bridge.presets import match_preset
from bridge.sources.replay import recording_vehicles

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "beamng"
M3_POWERTRAIN = FIXTURES / "Model3_2024_powertrain_20250911_123812.json"
M3_ELECTRICS = FIXTURES / "Model3_2024_electrics_20250911_123812.json"
UDDS_SAMPLES = 1369
LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+): (?P<message>.*)$")
UNREACHABLE = re.compile(
    r"service (?P<url>\S+) unreachable \((?P<reason>[^)]*)\); (?P<buffered>[\d,]+) samples "
    r"buffered, retrying in [\d.]+ s \(POST /step, attempt (?P<attempt>\d+)\)"
)
SUMMARY = re.compile(
    r"done: (?P<sent>[\d,]+) samples delivered in [\d,]+ requests?(?: \([\d,]+ failed attempts\))?"
    r", (?:0 buffered samples left undelivered|(?P<left>[\d,]+) buffered samples NOT delivered "
    r"\((?P<why>[^)]*)\)), (?P<dropped>[\d,]+) dropped(?: \(buffer full\))?;"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "BRIDGE_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _bridge(*args: str, timeout: float = 300.0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _messages(stderr: str) -> list[str]:
    return [m["message"] for m in map(LOG_LINE.match, stderr.splitlines()) if m]


def _count(text: str | None) -> int:
    return int((text or "0").replace(",", ""))


# -- where it posts, and what arrived ------------------------------------------------------


def test_the_first_line_names_url_vehicle_and_preset_the_last_what_arrived(
    twin: ServiceProcess,
) -> None:
    done = _bridge("cycle", "--fast", "--twin-url", twin.url, "--no-progress")
    assert done.returncode == 0, done.stderr
    messages = _messages(done.stderr)
    assert messages[0].startswith(
        f"posting to {twin.url} as vehicle default (preset sv1ev3); --twin-url (env TWIN_URL) "
        "and --vehicle-id change them"
    )
    summary = SUMMARY.search(done.stderr.strip().splitlines()[-1])
    assert summary is not None, done.stderr
    assert _count(summary["sent"]) == UDDS_SAMPLES
    assert summary["left"] is None and summary["dropped"] == "0"
    telemetry = httpx.get(f"{twin.url}/vehicles/default").json()["telemetry"]
    assert telemetry["vehicle_model"] == "sv1ev3"


def test_an_unreachable_service_is_reported_while_it_lasts_and_fails_the_run() -> None:
    port = free_port()  # nothing listens there
    done = _bridge(
        "cycle", "--vehicle", "Model3_2024", "--twin-url", f"http://127.0.0.1:{port}",
        "--vehicle-id", "nowhere", "--speedup", "2000", "--repeat", "1",
        "--retry-max-s", "30", "--flush-timeout-s", "3", "--no-progress",
        BRIDGE_UNREACHABLE_LOG_S="0.3",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    warnings = [m for m in map(UNREACHABLE.search, _messages(done.stderr)) if m]
    assert len(warnings) >= 3, done.stderr
    assert {w["url"] for w in warnings} == {f"http://127.0.0.1:{port}"}
    assert all(w["reason"].startswith("ConnectError") for w in warnings)
    buffered = [_count(w["buffered"]) for w in warnings]
    assert buffered == sorted(buffered) and buffered[-1] == UDDS_SAMPLES
    attempts = [int(w["attempt"]) for w in warnings]
    # Logged by the clock, also while waiting for the next attempt (the backoff grows).
    assert len(set(attempts)) < len(attempts)
    last = done.stderr.strip().splitlines()[-1]
    summary = SUMMARY.search(last)
    assert summary is not None, last
    assert summary["sent"] == "0" and summary["dropped"] == "0"
    assert _count(summary["left"]) == UDDS_SAMPLES and summary["why"] == "service unreachable"
    assert "1,369 buffered samples NOT delivered (service unreachable)" in last


def test_dropped_samples_are_counted_and_fail_the_run(tmp_path: Path) -> None:
    """A paced run with a small buffer while the service is still starting: samples are
    dropped, the rest delivered once it is up; the run says so and exits 1."""
    port = free_port()
    stderr_path = tmp_path / "bridge.err"
    with open(stderr_path, "w") as stderr:
        bridge = subprocess.Popen(
            [sys.executable, "-m", "bridge", "cycle", "--vehicle", "Model3_2024",
             "--twin-url", f"http://127.0.0.1:{port}", "--vehicle-id", "drops",
             "--speedup", "200", "--repeat", "1", "--buffer-size", "50", "--batch-size", "50",
             "--retry-max-s", "0.5", "--no-progress"],
            cwd=REPO, env=_env(), stderr=stderr, text=True,
        )  # fmt: skip
    service = ServiceProcess(port=port, log_dir=tmp_path)
    try:
        deadline = time.monotonic() + 60.0
        while "buffer full" not in stderr_path.read_text() and time.monotonic() < deadline:
            assert bridge.poll() is None, stderr_path.read_text()
            time.sleep(0.05)
        assert "buffer full" in stderr_path.read_text()
        service.start()
        code = bridge.wait(timeout=300)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        service.stop()
    text = stderr_path.read_text()
    assert code == 1, text
    summary = SUMMARY.search(text.strip().splitlines()[-1])
    assert summary is not None, text
    sent, dropped = _count(summary["sent"]), _count(summary["dropped"])
    assert summary["left"] is None and sent > 0 and dropped > 0
    assert sent + dropped == UDDS_SAMPLES
    assert f"{dropped:,} dropped (buffer full)" in text.strip().splitlines()[-1]


# -- replay picks the recording's preset ---------------------------------------------------


def test_recordings_name_their_vehicle(tmp_path: Path) -> None:
    body = tmp_path / "trip.json"
    body.write_text(json.dumps({"vehicle": "Model3_2024", "samples": []}))
    found = list(recording_vehicles([body, M3_POWERTRAIN, tmp_path / "car_log_20250101.csv"]))
    assert found == [
        ("Model3_2024", "the 'vehicle' field of trip.json"),
        ("Model3_2024", f"the file name {M3_POWERTRAIN.name}"),
        ("car", "the file name car_log_20250101.csv"),
    ]
    assert list(recording_vehicles([tmp_path / "drive.jsonl"])) == []
    ids = ["sv1ev3", "Model3_2024"]
    assert match_preset("Model3_2024", ids) == "Model3_2024"
    assert match_preset("model3_2024", ids) == "Model3_2024"
    assert match_preset("model3", ids) is None
    assert match_preset("a", ["A", "a"]) == "a" and match_preset("b", ["B", "b_"]) == "B"


@pytest.mark.parametrize(
    ("prefix", "expected", "why"),
    [
        ("Model3_2024", "Model3_2024", f"from the file name {M3_POWERTRAIN.name}"),
        ("model3_2024", "Model3_2024", "from the file name model3_2024_powertrain_"),
        ("mystery", "sv1ev3", "no preset named 'mystery'"),
    ],
)
def test_replay_without_vehicle_takes_the_recordings_preset(
    twin: ServiceProcess, tmp_path: Path, prefix: str, expected: str, why: str
) -> None:
    files = []
    for fixture in (M3_POWERTRAIN, M3_ELECTRICS):
        files.append(tmp_path / fixture.name.replace("Model3_2024", prefix))
        files[-1].write_text(fixture.read_text())
    vehicle_id = f"replay-{prefix}"
    done = _bridge("replay", *map(str, files), "--twin-url", twin.url, "--vehicle-id",
                   vehicle_id, "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert why in done.stderr
    telemetry = httpx.get(f"{twin.url}/vehicles/{vehicle_id}").json()["telemetry"]
    assert telemetry["vehicle_model"] == expected


def test_a_step_body_log_names_its_vehicle(twin: ServiceProcess, tmp_path: Path) -> None:
    log = tmp_path / "trip.json"
    samples = [{"dt_s": 1.0, "power_kw": 20.0, "wheel_speed_m_s": 10.0}] * 30
    log.write_text(json.dumps({"vehicle": "model3_2024", "samples": samples}))
    code = main(["replay", str(log), "--twin-url", twin.url, "--vehicle-id", "body-log",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    telemetry = httpx.get(f"{twin.url}/vehicles/body-log").json()["telemetry"]
    assert telemetry["vehicle_model"] == "Model3_2024"


# -- BeamNG.tech that is not there ---------------------------------------------------------

needs_beamngpy = pytest.mark.skipif(
    importlib.util.find_spec("beamngpy") is None,
    reason="beamngpy not installed (pip install '.[beamng]'); CI installs it",
)
FIX = (
    "--beamng-home (or beamng_home in config.yaml beamng:) to launch, or --no-launch to attach "
    "to a running simulator at 127.0.0.1:{port}"
)


def _beamng_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"default_vehicle: sv1ev3\nbeamng:\n  beamng_home: null\n  port: {port}\n"
        "  model: Model3_2024\n  electrics_period_s: 0.002\n"
    )
    return config


@needs_beamngpy
def test_beamng_without_a_simulator_names_the_fix(twin: ServiceProcess, tmp_path: Path) -> None:
    try:
        from fakes.beamng_sim import FakeBeamNG
    except ImportError:
        from tests.fakes.beamng_sim import FakeBeamNG

    fake = FakeBeamNG().start()
    port = fake.port
    config = _beamng_config(tmp_path, port)
    args = ("beamng", "--config", str(config), "--duration", "1", "--twin-url", twin.url,
            "--vehicle-id", "bng-missing", "--no-progress")  # fmt: skip
    try:
        present = _bridge(*args)  # no --beamng-home: attaches to the running (fake) simulator
    finally:
        fake.stop()
    assert present.returncode == 0, present.stderr
    gone = _bridge(*args)
    assert gone.returncode == 3, gone.stderr
    assert f"BeamNG.tech is not running at 127.0.0.1:{port}" in gone.stderr
    assert FIX.format(port=port) in gone.stderr
    assert SUMMARY.search(gone.stderr.strip().splitlines()[-1]) is not None

    attach = _bridge(*args, "--no-launch")
    assert attach.returncode == 3, attach.stderr
    assert f"cannot attach to BeamNG.tech at 127.0.0.1:{port}" in attach.stderr
    assert FIX.format(port=port) in attach.stderr


@needs_beamngpy
def test_explore_with_a_wrong_beamng_home_names_the_fix(tmp_path: Path) -> None:
    port = free_port()
    config = _beamng_config(tmp_path, port)
    missing = tmp_path / "no-BeamNG.tech"
    done = _bridge("explore", "--config", str(config), "--beamng-home", str(missing),
                   "--out-dir", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert f"cannot launch BeamNG.tech from {missing}" in done.stderr
    assert FIX.format(port=port) in done.stderr


# -- examples show where the twin is -------------------------------------------------------


def _commands(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = (line.strip() for line in joined.splitlines())
    return [line for line in lines if line.startswith("python -m bridge ")]


def test_every_example_names_twin_url_and_vehicle_id(capsys: pytest.CaptureFixture[str]) -> None:
    helps = [build_parser().format_help()]
    for command in EXAMPLES:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        helps.append(capsys.readouterr().out)
    docs = (REPO / "docs" / "bridge.md").read_text()
    blocks = "\n".join(re.findall(r"```sh\n(.*?)```", docs, flags=re.S))
    commands = _commands("\n".join(helps)) + _commands(blocks)
    assert {c.split()[3] for c in commands} == set(EXAMPLES)
    for command in commands:
        if command.split()[3] == "explore":  # posts nothing: no twin options
            continue
        assert "--twin-url" in command and "--vehicle-id" in command, command
    for helptext in helps[:-1]:
        assert "exit codes:" in helptext and "130  interrupted" in helptext
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |"):
        assert code in docs
