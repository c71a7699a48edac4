"""The real bridge CLI against a real service process: `kill -9` at chosen points and a
restart with the same --state-file end exactly where an uninterrupted run ends; two bridges
on one vehicle id meet the service's 409 rev_conflict (SPEC §6)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.live import metric_value
from support.processes import REPO_ROOT, ServiceProcess

from bridge.__main__ import main
from bridge.poster import load_state_file

UDDS_SAMPLES = 1369
BATCH = 20  # 69 batches per UDDS pass
KILL_TIMEOUT_S = 60.0


def _args(twin: ServiceProcess, vehicle_id: str, state_file: Path, *extra: str) -> list[str]:
    return [
        "cycle",
        "--cycle",
        "udds",
        "--vehicle",
        "Model3_2024",
        "--fast",
        "--repeat",
        "1",
        "--batch-size",
        str(BATCH),
        "--twin-url",
        twin.url,
        "--vehicle-id",
        vehicle_id,
        "--state-file",
        str(state_file),
        "--no-progress",
        *extra,
    ]


def _bridge(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _record(path: Path) -> dict[str, Any] | None:
    try:
        return load_state_file(path)  # written by atomic replace: never torn
    except FileNotFoundError:
        return None


def _kill_when(process: subprocess.Popen[str], state_file: Path, rev: int, in_flight: bool) -> int:
    """SIGKILL the bridge once its state file has reached `rev` (and, with `in_flight`, has a
    batch pending: posted, its answer not yet recorded). Returns the rev it was killed at."""
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while time.monotonic() < deadline:
        record = _record(state_file)
        if record is not None and (record.get("rev") or 0) >= rev:
            if not in_flight or record.get("pending"):
                process.kill()
                process.wait(10.0)
                return int(record.get("rev") or 0)
        if process.poll() is not None:
            pytest.fail(f"the bridge ended before rev {rev}: {process.stderr.read()[-2000:]}")
        time.sleep(0.001)
    process.kill()
    pytest.fail(f"state file never reached rev {rev}")


def _totals(record: dict[str, Any]) -> tuple[float, float, float, float]:
    state = record["state"]
    return (
        state["elapsed_s"],
        state["total_distance_km"],
        state["energy_discharged_kwh"],
        state["energy_charged_kwh"],
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "kills",
    [
        [(0, True)],  # the first batch in flight
        [(1, True), (33, False)],
        [(12, True), (13, True), (58, True)],
    ],
    ids=lambda kills: "kill-at-" + "-".join(f"{rev}{'p' if p else ''}" for rev, p in kills),
)
def test_kill_9_and_restart_ends_where_an_uninterrupted_run_ends(
    twin: ServiceProcess, tmp_path: Path, kills: list[tuple[int, bool]]
) -> None:
    reference = tmp_path / "reference.state.json"
    assert main(_args(twin, f"ref-{len(kills)}-{kills[0][0]}", reference)) == 0
    expected = _totals(load_state_file(reference) or {})
    assert expected[0] == pytest.approx(UDDS_SAMPLES)  # 1 Hz: one second per sample

    state_file = tmp_path / "killed.state.json"
    vehicle_id = f"killed-{len(kills)}-{kills[0][0]}"
    before = metric_value(twin.url, "twin_samples_total")
    killed_at = []
    for rev, in_flight in kills:
        process = _bridge(_args(twin, vehicle_id, state_file))
        killed_at.append(_kill_when(process, state_file, rev, in_flight))
        assert process.returncode == -9
    final = _bridge(_args(twin, vehicle_id, state_file))
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    record = load_state_file(state_file)
    assert record is not None and record["finished"] and record["pending"] is None
    assert max(killed_at) < record["rev"]  # every kill fell mid-run
    # Nothing replayed, nothing skipped: the service integrated each sample exactly once ...
    assert metric_value(twin.url, "twin_samples_total") - before == UDDS_SAMPLES
    # ... and the twin ends where the uninterrupted run ended.
    assert _totals(record) == pytest.approx(expected, rel=1e-6)
    stored = httpx.get(f"{twin.url}/vehicles/{vehicle_id}", timeout=5).json()
    assert stored["rev"] == record["rev"]


@pytest.mark.slow
def test_two_bridges_on_one_vehicle(
    twin: ServiceProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vehicle_id = "shared"
    first = tmp_path / "first.state.json"
    assert main(_args(twin, vehicle_id, first, "--batch-size", "200")) == 0
    first_rev = (load_state_file(first) or {})["rev"]

    def stored() -> dict[str, Any]:
        return httpx.get(f"{twin.url}/vehicles/{vehicle_id}", timeout=5).json()

    # A second bridge with a new pack: the service holds a newer twin; it stops and says why.
    second = tmp_path / "second.state.json"
    assert main(_args(twin, vehicle_id, second, "--batch-size", "200")) == 4
    assert f"newer twin of vehicle 'shared' (rev {first_rev})" in caplog.text
    assert "--resume-from-service" in caplog.text and "--replace" in caplog.text
    assert stored()["rev"] == first_rev  # nothing stored

    # --resume-from-service: continues the stored twin (a second UDDS on top of the first).
    follow = tmp_path / "follow.state.json"
    args = _args(twin, vehicle_id, follow, "--batch-size", "200", "--resume-from-service")
    assert main(args) == 0
    after = stored()
    assert after["state"]["elapsed_s"] == pytest.approx(2 * UDDS_SAMPLES)
    assert after["rev"] == 2 * first_rev

    # The first bridge's state file is now stale: 409 again.
    assert main(_args(twin, vehicle_id, first, "--batch-size", "200")) == 4

    # --replace: restarts the twin from this bridge's (new) state; revs keep counting.
    fresh = tmp_path / "fresh.state.json"
    assert main(_args(twin, vehicle_id, fresh, "--batch-size", "200", "--replace")) == 0
    replaced = stored()
    assert replaced["state"]["elapsed_s"] == pytest.approx(UDDS_SAMPLES)
    assert replaced["rev"] == 3 * first_rev
    assert (load_state_file(fresh) or {})["rev"] == replaced["rev"]
