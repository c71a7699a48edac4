"""The validation report's generator (validation/) agrees with the test suite's own checks.

Runs the cheap parts of each report section through the same public API the report uses and
asserts the numbers the report prints against the tolerances of tests/test_step_physics.py,
tests/test_forecast.py and tests/test_bridge_service.py. No matplotlib needed: figures are
only drawn by `python -m validation.run`.
"""

from __future__ import annotations

import ast
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # validation/ is a repository folder, not an installed package
    sys.path.insert(0, str(REPO))

from validation import (  # noqa: E402
    calendar_aging,
    common,  # noqa: E402
    cycle_aging,
    demo_timeline,
    ev_pack,
    forecast_consistency,
    invariants,
    limits,
    model_comparison,
    nrel_lfp250,
    vehicle_energy,
)
from validation import reference as ref  # noqa: E402
from validation.common import Twin, open_twin  # noqa: E402


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    with open_twin() as t:
        yield t


def test_reference_is_independent_of_the_service_code() -> None:
    tree = ast.parse((REPO / "validation" / "reference.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.startswith("twin_service") for m in imported), imported


def test_reference_closed_forms_give_the_published_check_value() -> None:
    loss = ref.calendar_capacity_loss(ref.CHECK_YEAR_S, 0.5, 25.0)
    res = ref.calendar_resistance_increase(ref.CHECK_YEAR_S, 0.5, 25.0)
    assert 1 - loss == pytest.approx(ref.CHECK_SOH, abs=5e-5)
    assert 1 + res == pytest.approx(ref.CHECK_RESISTANCE_FACTOR, abs=5e-5)
    # Constant stress: the virtual-FEC continuation equals the closed form.
    seq = [(0.8, 1.0)] * 500
    assert ref.cycle_capacity_loss_virtual(seq) == pytest.approx(
        ref.cycle_capacity_loss(200.0, 1.0, 0.8), rel=1e-12
    )


def test_calendar_grid_matches_closed_forms(twin: Twin) -> None:
    points = calendar_aging.compute(twin)
    assert len(points) == 6 * 4 * 2
    assert all(p.simulated_years == pytest.approx(p.years) for p in points)
    worst_soh = calendar_aging.largest(points, "d_soh")
    worst_rf = calendar_aging.largest(points, "d_rf")
    assert abs(worst_soh.d_soh) < 1e-9 and abs(worst_rf.d_rf) < 1e-9
    # tests/test_step_physics.py::test_naumann_calendar_check_value
    cv = calendar_aging.check_value(points)
    assert cv is not None
    assert cv.model_soh == pytest.approx(0.9575, abs=0.002)
    assert cv.model_rf == pytest.approx(1.0168, abs=0.002)
    section = calendar_aging.render(points)
    assert f"{abs(worst_soh.d_soh) * 100:.1e}" in section.headline[0]


def test_cycle_aging_matches_closed_forms(twin: Twin) -> None:
    runs = cycle_aging.compute(
        twin, docs=(1.0, 0.6), c_rates=(1.0,), total_fec=200.0, block_fec=50.0
    )
    by_doc = {r.doc: r for r in runs}
    assert by_doc[0.6].fec[-1] == pytest.approx(200.0, abs=0.6)
    assert abs(by_doc[0.6].end_rel_diff) < 0.005
    for r in runs:
        assert r.temperature_max_c < cycle_aging.AMBIENT_C + 0.5  # climate-chamber pack
        assert r.cyc_loss[-1] == pytest.approx(r.ref_loss_achieved, abs=1e-6)
        assert r.cyc_res[-1] == pytest.approx(r.ref_res_achieved, abs=1e-6)
        assert 0 < r.cal_loss[-1] < r.cyc_loss[-1]  # calendar part present and excluded
    # At DOC 1.0 the voltage limits make the swing shallower than nominal: less loss.
    assert by_doc[1.0].limited_half_cycles > 0
    assert -0.03 < by_doc[1.0].end_rel_diff < 0.0
    assert "cyc_capacity_loss" in cycle_aging.render(runs).body


def test_invariants_agree_with_the_physics_tests(twin: Twin) -> None:
    runs = invariants.compute(twin, rates=(1.0, 10.0), drive_s=600.0)
    for r in runs:
        assert r.charge_rel_err <= invariants.TEST_CHARGE_REL
        assert r.energy_rel_err <= invariants.TEST_ENERGY_REL
        assert r.charge_rel_err_long < 1e-5  # SOH resolution of the trace, see the report
        assert r.limited_samples == 0
    d_soc, d_t = invariants.pair_difference(runs, 10.0, 1.0)
    assert abs(d_soc) < invariants.TEST_SOC_PP and abs(d_t) < invariants.TEST_TEMP_K
    diffs = invariants.differences(runs)
    assert diffs[0].max_soc_pp < invariants.TEST_SOC_PP and diffs[0].max_temp_k < 0.2
    assert invariants.render(runs).headline


def test_demo_timeline_matches_the_seed_check_value(twin: Twin) -> None:
    res = demo_timeline.compute(twin, minutes=(2, 5))
    # tests/test_step_physics.py::test_seed_demo_model_check_value
    assert res.at[2] == pytest.approx(99.82, abs=0.01)
    assert res.time_multiplier == ref.ORIGINAL_DEMO_MULTIPLIER and res.aging_model == "seed"
    for minute in (2, 5):  # the known original entries, to their printed precision
        assert abs(res.at[minute] - ref.ORIGINAL_DEMO_TIMELINE_PCT[minute]) < 0.1
    assert "not available" not in demo_timeline.render(res).body.split("|")[-1]


def test_forecast_agrees_with_step_like_the_forecast_tests(twin: Twin) -> None:
    profiles = {k: v for k, v in forecast_consistency.PROFILES.items() if "long" not in k}
    runs = forecast_consistency.compute(twin, profiles, years=2)
    for r in runs:
        for years in (1.0, 2.0):
            d_soh, d_rf = r.diff_at(years)
            assert abs(d_soh) < forecast_consistency.TEST_TOLERANCE
            assert abs(d_rf) < forecast_consistency.TEST_TOLERANCE
    assert forecast_consistency.render(runs).headline


def test_limits_section_states_the_required_limits(twin: Twin) -> None:
    body = limits.render(limits.compute(twin)).body
    for phrase in (
        "No lithium plating",
        "No low-temperature cycling data",
        "3 Ah",
        "DCIR split",
        "Lumped thermal",
        "Forecast's assumed daily pattern",
    ):
        assert phrase in body


def test_vehicle_energy_through_the_bridge() -> None:
    reason = vehicle_energy.bridge_unavailable_reason()
    if reason:
        pytest.skip(f"bridge not available: {reason}")
    (run,) = vehicle_energy.compute(vehicles=("Model3_2024",), cycles=("udds",))
    # tests/test_bridge_service.py::test_model3_udds_distance_and_terminal_energy
    assert run.distance_km == pytest.approx(11.990, rel=0.005)
    assert run.net_wh_per_km == pytest.approx(ref.FASTSIM_MODEL3_UDDS_WH_PER_KM, rel=0.10)
    assert 0.25 < run.regen_share < 0.45
    assert math.isfinite(run.discharge_wh_per_km)
    assert f"{run.net_wh_per_km:.1f} Wh/km" in vehicle_energy.render([run]).body


def test_missing_bridge_gives_a_pending_line() -> None:
    section = vehicle_energy.render("the `bridge` package is not importable")
    assert "pending: bridge not available" in section.body
    assert section.figures == []


def test_nrel_reference_closed_forms_give_the_published_check_value() -> None:
    k = ref.nrel_k_cal(0.5, 25.0)
    assert 1 - ref.nrel_calendar_capacity_loss(365, 0.5, 25.0) == pytest.approx(
        ref.NREL_CHECK_SOH_CLOSED_FORM, abs=1e-6
    )
    daily = nrel_lfp250.daily_window_loss(0.5, 25.0, ref.NREL_CHECK_DAYS)
    assert 1 - daily[-1] == pytest.approx(ref.NREL_CHECK_SOH, abs=5e-6)
    # The generic window cutter splits one long rest into the same daily windows.
    windows = ref.nrel_windows([(365 * 86400.0, 0.5, 0.5, 0.0, 25.0)], nominal_ah=220.0)
    assert len(windows) == 365 and all(w.k_cal == pytest.approx(k, rel=1e-12) for w in windows)
    assert ref.nrel_windowed_loss(windows)[0][-1] == pytest.approx(daily[-1], rel=1e-12)
    # Exact integration under constant stress is the closed form; the update is one step of it.
    assert ref.nrel_continued_loss(windows)[0] == pytest.approx(
        1 - ref.NREL_CHECK_SOH_CLOSED_FORM, abs=1e-6
    )
    assert ref.nrel_power_state(0.0, 2.0, k, ref.NREL_P_CAL) == pytest.approx(k * 2**0.526)
    # A full cycle at 0.5C: two windows of DOD 1, C 0.5/h, 0.5 EFC each.
    ramp = [(7200.0, 1.0, 0.0, 220.0, 25.0), (7200.0, 0.0, 1.0, 220.0, 25.0)]  # 110 A, 2 h
    w1, w2 = ref.nrel_windows(ramp, nominal_ah=220.0)
    for w in (w1, w2):
        assert (w.dod, w.c_rate, w.efc) == pytest.approx((1.0, 0.5, 0.5))
    assert w1.k_cyc == pytest.approx(ref.nrel_k_cyc(1.0, 0.5, 25.0))


def test_nrel_calendar_points_match_the_published_update(twin: Twin) -> None:
    points = nrel_lfp250.calendar_grid(twin, temperatures=(25.0, 45.0), socs=(0.5, 1.0), years=(1,))
    assert len(points) == 4
    for p in points:
        assert p.simulated_days == pytest.approx(365)
        assert abs(p.d_window) < 1e-12  # one window a day, the published update
        assert abs(p.d_closed - p.euler) < 1e-12  # the closed-form gap is the update's step
        assert -2e-4 < p.d_closed < 0  # the explicit step overestimates the loss a little
        assert p.model_cal_loss == pytest.approx(1 - p.model_soh, abs=1e-15)
    cv = nrel_lfp250.check_value(points)
    assert cv is not None
    assert cv.model_soh == pytest.approx(ref.NREL_CHECK_SOH, abs=5e-6)
    section = nrel_lfp250.render(nrel_lfp250.NrelResult(points, None))
    assert f"{cv.model_soh:.7f}" in section.body and "| 25 | 0.5 |" in section.body


def test_nrel_cycling_matches_the_script_windows(twin: Twin) -> None:
    run = nrel_lfp250.cycling_run(twin, total_efc=100.0, block=50)
    cp = run.checkpoints[-1]
    assert cp.efc == pytest.approx(100.0, abs=1.0)
    assert run.temperature_max_c < nrel_lfp250.CYCLE_AMBIENT_C + 0.01
    assert run.out_of_range == []  # full 0.5C cycles at 25 degC: inside the fitted range
    f = run.final()
    assert f["model_cyc"] == pytest.approx(f["win_cyc"], rel=1e-3)
    assert f["model_cal"] == pytest.approx(f["win_cal"], rel=1e-3)
    assert run.max_total_diff() < 1e-5
    # Early on the SOC-based C-rate is still near nominal: close to the closed form.
    assert f["model_cyc"] == pytest.approx(f["closed_cyc"], rel=0.01)
    text, line = nrel_lfp250._render_cycling(run)
    assert "Agreement" in text and "EFC" in line


def test_model_comparison_storage_forecast_agrees_with_step(twin: Twin) -> None:
    storage = next(d for d in model_comparison.DUTY_CYCLES if d.key == "storage")
    (res,) = model_comparison.compute(twin, (storage,))
    assert set(res.curves) == set(model_comparison.MODELS)
    for c in res.curves.values():
        assert c.step_years[-1] == pytest.approx(10.0)
        for y in model_comparison.CHECK_YEARS:
            assert c.step_at(y) == pytest.approx(c.forecast_at(y), abs=5e-4)
    # Naumann ages faster in storage at high SOC than the NREL large-format cell.
    assert res.curves["naumann"].forecast_at(10) < res.curves["nrel_lfp250"].forecast_at(10)
    body = model_comparison.render([res]).body
    assert "model uncertainty" in body and "20–30 %" in body


def test_model_comparison_uses_the_forecast_assumptions() -> None:
    from twin_service.models import forecast

    assert model_comparison.FORECAST_DRIVE_SPEED_KMH == forecast.DRIVE_SPEED_KMH
    assert model_comparison.FORECAST_DC_FAST_C_RATE == forecast.DC_FAST_C_RATE


@pytest.mark.slow
def test_model_comparison_driving_forecasts_agree_with_step(twin: Twin) -> None:
    duties = tuple(d for d in model_comparison.DUTY_CYCLES if d.key != "storage")
    for res in model_comparison.compute(twin, duties):
        for c in res.curves.values():
            for y in model_comparison.CHECK_YEARS:
                assert c.step_at(y) == pytest.approx(c.forecast_at(y), abs=0.003)


def test_fast_charge_section_before_and_after(twin: Twin) -> None:
    runs = ev_pack.compute_charge(twin)
    now = {(r.vehicle, r.charger_kw, r.ambient_c): r for r in runs if r.model == "now"}
    before = {(r.vehicle, r.charger_kw, r.ambient_c): r for r in runs if r.model == "before"}
    m3 = now[("Model3_2024", 250.0, 25.0)]
    assert m3.minutes is not None and 20.0 <= m3.minutes <= 40.0
    for key, r in now.items():
        assert r.minutes is not None
        if key[2] >= 25.0:
            assert r.peak_c - r.start_c <= 20.0
        assert before[key].peak_c > r.peak_c  # no cooling before
    # the reviewer's case: 150 kW at 35 degC heated the pack to ~74 degC before
    assert before[("Model3_2024", 150.0, 35.0)].peak_c > 70.0
    body = ev_pack.render_charge(runs).body
    assert "TMS kWh" in body and "before" in body


def test_heating_and_pulse_sections_run_without_the_peers(
    twin: Twin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(common, "PEERS_PY", tmp_path / "missing" / "python")
    monkeypatch.setattr(ev_pack, "HEAT_PASSES", 2)
    runs = ev_pack.compute_heating(twin)
    by_amb = {r.ambient_c: r for r in runs}
    assert all("skipped" in r.fastsim for r in runs)
    assert by_amb[35.0].twin["peak_c"] <= 40.0  # the loop cools above 37 degC
    assert by_amb[0.0].twin["tms_kwh"] > 0.0  # and heats below 7 degC
    assert by_amb[0.0].twin["wh_per_km"] > by_amb[25.0].twin["wh_per_km"]
    assert "skipped" in ev_pack.render_heating(runs).body
    cases, peer = ev_pack.compute_pulses(twin)
    assert "skipped" in peer and all(c.dfn is None for c in cases)
    drop = {(c.soc, c.temperature_c): c.drop("now") for c in cases}
    assert drop[(0.15, 25.0)] > drop[(0.5, 25.0)] > drop[(0.5, 40.0)]
    assert "skipped" in ev_pack.render_pulses((cases, peer)).body


def test_a_rerun_with_the_same_results_leaves_the_report_alone(tmp_path: Path) -> None:
    from validation.run import PROVENANCE, write_report

    out = tmp_path / "validation.md"
    first = f"# Validation report\n\n{PROVENANCE} ... on 2026-12-01 10:00 UTC, in 30 s.\n\n| 1 |\n"
    assert write_report(out, first)
    rerun = first.replace("10:00", "11:00").replace("30 s", "31 s")
    assert not write_report(out, rerun) and out.read_text() == first
    changed = rerun.replace("| 1 |", "| 2 |")
    assert write_report(out, changed) and out.read_text() == changed


def test_fleet_section_runs_a_small_fleet() -> None:
    from validation import fleet

    case = fleet.compute(vehicles=12, days=3)
    assert case.vehicle_days == 36 and len(case.simulated) == 12
    assert all(t["vehicle_id"].startswith("fleet-") for t in case.simulated)
    section = fleet.render(case)
    assert "| **fleet** | 12 |" in section.body and "below 70 % at 8 years" in section.body
    for model in fleet.MODELS:
        runs = {p["name"]: p for p in case.projected[model]["policies"]}
        # A lower charge limit never ages the fleet faster on average (and here it helps).
        assert (
            runs["charge to 80 %"]["mean_soh_at_warranty"]
            >= runs["as used"]["mean_soh_at_warranty"]
        )
    fades = fleet._fade(case.projected["naumann"]["results"])
    assert np.all((fades > 0.1) & (fades < 10.0))
