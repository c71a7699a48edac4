"""The service dies in the middle of a run and comes back on the same port: the run still
delivers every sample, and ends where a run without the outage ends."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from support.processes import ServiceProcess

from bridge.__main__ import main
from bridge.poster import load_state_file

UDDS_SAMPLES = 1369


def _run(url: str, vehicle_id: str, tmp_path: Path, *pace: str) -> tuple[int, dict, int]:
    state_file = tmp_path / f"{vehicle_id}.state.json"
    log = tmp_path / f"{vehicle_id}.jsonl"
    code = main(
        [
            "cycle",
            "--cycle",
            "udds",
            "--vehicle",
            "Model3_2024",
            "--vehicle-id",
            vehicle_id,
            "--twin-url",
            url,
            "--state-file",
            str(state_file),
            "--sample-log",
            str(log),
            "--batch-size",
            "50",
            "--batch-interval-s",
            "0.05",
            "--retry-max-s",
            "0.5",
            "--no-progress",
            *pace,
        ]
    )
    record = load_state_file(state_file)
    assert record is not None
    return code, record["state"], len(log.read_text().splitlines())


def test_outage_mid_run_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    twin = ServiceProcess(log_dir=tmp_path)
    twin.start()
    try:
        code, clean, clean_count = _run(twin.url, "clean", tmp_path, "--fast")
        assert code == 0 and clean_count == UDDS_SAMPLES

        outage_log = tmp_path / "outage.jsonl"
        seen_at_kill: list[int] = []
        errors: list[BaseException] = []

        def outage() -> None:
            try:
                deadline = time.monotonic() + 10.0
                while time.monotonic() < deadline:  # wait until the run is under way
                    if outage_log.exists() and len(outage_log.read_text().splitlines()) >= 200:
                        break
                    time.sleep(0.02)
                seen_at_kill.append(len(outage_log.read_text().splitlines()))
                twin.kill()
                time.sleep(1.0)  # samples keep coming while the service is away
                twin.start()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        killer = threading.Thread(target=outage, daemon=True)
        killer.start()
        # 1369 s of UDDS at 400x: ~3.4 s of wall time, so the outage falls mid-run.
        code, after, count = _run(twin.url, "outage", tmp_path, "--speedup", "400", "--repeat", "1")
        killer.join(30.0)
        assert not errors, errors
        assert code == 0
        assert 0 < seen_at_kill[0] < UDDS_SAMPLES  # the service really died mid-run
        assert "unreachable (" in caplog.text and "samples buffered, retrying in" in caplog.text
        assert count == clean_count
        assert after["total_distance_km"] == pytest.approx(clean["total_distance_km"], rel=1e-12)
        assert after["elapsed_s"] == pytest.approx(clean["elapsed_s"], rel=1e-12)
        assert after["soc"] == pytest.approx(clean["soc"], abs=1e-9)
        assert after["energy_discharged_kwh"] == pytest.approx(
            clean["energy_discharged_kwh"], rel=1e-9
        )
        rows = [json.loads(line) for line in outage_log.read_text().splitlines()]
        assert [r["dt_s"] for r in rows] == [1.0] * UDDS_SAMPLES  # in order, none twice
    finally:
        twin.stop()
