"""The state-estimation section of the validation report (validation/estimation.py) on short
runs: its schedule, sensors, baseline and scores do what the report says they do, and the
section renders with and without the peers' venv. No matplotlib needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # validation/ is a repository folder, not an installed package
    sys.path.insert(0, str(REPO))

from twin_service.presets import PRESETS, pack_params  # noqa: E402
from validation import common  # noqa: E402
from validation import estimation as V  # noqa: E402
from validation.peers_estimation import RAMP_S  # noqa: E402

PARAMS = pack_params(PRESETS[V.VEHICLE])
SHORT_DAY_S = 6 * 3600.0


@pytest.fixture(scope="module")
def short_case() -> V.TwinCase:
    """One 6 h 'day': a 10 min drive, 30 min parked, the charge to CHARGE_TO, parked."""
    return V.compute_twin(PARAMS, days=1, first_drive_s=600, drive_s=600, day_s=SHORT_DAY_S)


def test_drive_profile_is_seeded_and_mixed() -> None:
    a, b = V.drive_profile(3600, 1), V.drive_profile(3600, 1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, V.drive_profile(3600, 2))
    assert a.min() >= -80.0 and a.max() <= 200.0
    assert (a > 10.0).any() and (a < -5.0).any() and (a == 0.0).any()
    change = np.flatnonzero(np.diff(a)) + 1
    runs = np.diff(np.concatenate([[0], change, [a.shape[0]]]))
    assert runs[:-1].min() >= 5  # segments of at least 5 s (the last may be cut)


def test_coulomb_count_integrates_the_current_over_the_capacity() -> None:
    dt = np.ones(360)
    soc = V.coulomb_count(dt, np.full(360, 10.0), 0.5, 100.0)
    assert soc[-1] == pytest.approx(0.5 - 10.0 * 360 / 3600 / 100.0)
    assert np.all(np.diff(soc) < 0)
    assert V.coulomb_count(dt, np.full(360, -10.0), 0.5, 100.0)[-1] > 0.5


def test_converged_after_is_the_end_of_the_last_sample_outside_the_bound() -> None:
    t = np.arange(1.0, 7.0)
    assert V.converged_after(t, np.array([0.3, 0.1, 0.01, 0.03, 0.01, 0.0])) == 4.0
    assert V.converged_after(t, np.zeros(6)) == 0.0
    assert V.converged_after(t, np.array([0.0, 0, 0, 0, 0, 0.05])) is None


def test_checkpoints_and_coverage() -> None:
    t = np.arange(1.0, 11.0)
    assert V.checkpoint_index(t, 3.0) == 2
    assert V.checkpoint_index(t, 2.5) == 2  # the first sample ending at or after
    assert V.checkpoint_index(t, 11.0) is None
    assert V.checkpoint_index(t, None) == 9
    dt = np.array([1.0] * 9 + [91.0])
    err = np.array([0.0] * 9 + [0.5])
    sc = V.score(np.cumsum(dt), dt, err, np.full(10, 0.1), ((5.0, "a"), (1e9, "b"), (None, "c")))
    assert [label for label, _ in sc.checkpoints] == ["a", "c"]
    assert sc.coverage == pytest.approx(0.9)
    assert sc.coverage_time == pytest.approx(0.09)


def test_measure_adds_the_sensor_noise_and_the_offset_only_while_closed() -> None:
    n = 40_000
    resting = np.zeros(n, dtype=bool)
    resting[: n // 4] = True
    truth = np.linspace(-50.0, 150.0, n)
    m = V.measure(truth, np.full(n, 340.0), np.full(n, 25.0), resting, seed=3)
    assert np.all(m.current_a[resting] == 0.0)
    err = m.current_a[~resting] - truth[~resting]
    assert err.mean() == pytest.approx(V.I_BIAS, abs=0.02)
    assert err.std() == pytest.approx(V.I_STD, rel=0.03)
    assert (m.voltage_v - 340.0).std() == pytest.approx(V.V_STD, rel=0.03)
    assert (m.temperature_c - 25.0).std() == pytest.approx(V.T_STD, rel=0.03)
    again = V.measure(truth, np.full(n, 340.0), np.full(n, 25.0), resting, seed=3)
    assert np.array_equal(again.voltage_v, m.voltage_v)


def test_the_schedule_drives_charges_to_the_target_and_fills_the_day(
    short_case: V.TwinCase,
) -> None:
    tr = short_case.truth
    assert tr.phase == ["drive", "rest", "charge", "rest"]
    assert tr.t_s[-1] == pytest.approx(SHORT_DAY_S, abs=V.REST_DT_S)
    a, b = tr.bounds[2], tr.bounds[3]
    assert tr.soc[b - 1] >= V.CHARGE_TO > tr.soc[b - 2]  # stops at the first sample past it
    assert np.all(tr.current_a[a:b] < 0.0)
    assert np.all(tr.current_a[tr.resting] == 0.0)
    assert np.all(tr.dt_s[tr.resting] == V.REST_DT_S)
    assert tr.soh[0] == pytest.approx(V.TRUE_SOH, abs=1e-3)
    assert tr.resistance_factor[0] == pytest.approx(V.TRUE_RF, abs=1e-3)


def test_the_filter_beats_coulomb_counting_on_the_twin_truth(short_case: V.TwinCase) -> None:
    tr, est = short_case.truth, short_case.estimate
    err = est.soc - tr.soc
    assert abs(err[0]) < abs(V.START_SOC - V.TRUE_SOC0)  # the first voltage already moves it
    assert abs(err[-1]) < V.CONVERGED
    assert abs(short_case.coulomb[-1] - tr.soc[-1]) > 0.2  # the wrong start stays
    assert short_case.scores.converged_s is not None
    assert short_case.scores.coverage > 0.8
    assert np.all(est.soc_std > 0.0) and est.soc_std[-1] < est.soc_std[0]


def test_phase_batches_chain_exactly(short_case: V.TwinCase) -> None:
    tr = short_case.truth
    meas = V.measure(tr.current_a, tr.voltage_v, tr.temperature_c, tr.resting, V.NOISE_SEED)
    one = V.run_filter(PARAMS, tr.dt_s, meas, [0, tr.dt_s.shape[0]])
    assert np.array_equal(one.soc, short_case.estimate.soc)
    assert np.array_equal(one.final, short_case.estimate.final)


def test_render_without_the_peers(
    short_case: V.TwinCase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(common, "PEERS_PY", tmp_path / "missing" / "python")
    dfn = V.compute_dfn(PARAMS, drive_s=60)
    assert "skipped" in dfn.peer and not dfn.runs
    section = V.render(V.EstimationData(short_case, dfn))
    assert section.key == "estimation"
    assert "PyBaMM skipped: the peers' venv is missing" in section.body
    assert [f.filename for f in section.figures] == ["validation_estimation.png"]
    for label in ("5 min", "15 min", "30 min", "60 min", "end"):
        assert f"| {label} (" in section.body
    assert "| 1 d (" not in section.body  # the short run has no day mark
    assert len(section.headline) == 1


def test_the_section_is_registered() -> None:
    from validation import run

    assert "estimation" in run.SECTION_KEYS


def test_mismatch_correlation_and_chosen_row() -> None:
    square = np.tile(np.repeat([18.0, -18.0], 10), 50)  # +-18 mV, 10 s half-period
    case = V.DfnCase({}, dt_s=np.ones(square.shape[0]), open_loop_mv=square)
    # its autocorrelation is a triangle, 1 - lag/5 s: below 1/e from 4 s
    assert case.correlation_s == 4.0
    case.dt_s[:100] = 60.0  # only the 1 Hz samples count
    assert case.correlation_s == 4.0
    rows: Any = {0.0: None, 5.0: None, 20.0: None, 30.0: None}
    case.runs = rows
    assert case.chosen_mv == 20.0


PEERS_PY = common.PEERS_PY


@pytest.mark.slow
@pytest.mark.skipif(not PEERS_PY.exists(), reason="no peers' venv (make bench-peers-venv)")
def test_the_dfn_worker_counts_its_charge() -> None:
    """The worker's SOC falls by its applied current over the pack's capacity, and its
    current is the one asked for (but for the 0.1 s ramp at each step)."""
    cur = np.repeat([100.0, 0.0, -50.0], 20)
    job = {"current_a": cur.tolist(), "dt_s": [1.0] * 60, "capacity_ah": 159.2,
           "cells_series": 106, "soc0": 0.55, "temperature_c": 25.0}  # fmt: skip
    env = {**os.environ, "PYBAMM_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [str(PEERS_PY), "-m", "validation.peers_estimation", "dfn_drive"],
        input=json.dumps(job), cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if out.returncode != 0 and "No module named 'pybamm'" in out.stderr:
        pytest.skip("pybamm is not in the peers' venv")
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    applied = np.asarray(res["current_a"])
    # a step of 100 A ramps over RAMP_S: the sample after it carries half the ramp's shortfall
    assert np.abs(applied - cur).max() <= 0.5 * RAMP_S * 100.0 + 0.01
    soc = np.asarray(res["soc"])
    assert soc[-1] == pytest.approx(0.55 - applied.sum() / 3600.0 / 159.2, abs=1e-6)
    assert res["cells_parallel"] * res["cell_capacity_ah"] == pytest.approx(159.2)
    v = np.asarray(res["voltage_v"]) / 106
    assert 3.0 < v.min() and v.max() < 3.5
    assert v[19] < v[39] < v[59]  # discharging, resting, charging
