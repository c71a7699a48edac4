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

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # validation/ is a repository folder, not an installed package
    sys.path.insert(0, str(REPO))

from validation import (  # noqa: E402
    calendar_aging,
    cycle_aging,
    demo_timeline,
    forecast_consistency,
    invariants,
    limits,
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
        ref.cycle_capacity_loss(200.0, 1.0, 0.8), rel=1e-12)


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
    runs = cycle_aging.compute(twin, docs=(1.0, 0.6), c_rates=(1.0,), total_fec=200.0,
                               block_fec=50.0)
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
    for phrase in ("No lithium plating", "No low-temperature cycling data", "3 Ah",
                   "DCIR split", "Lumped thermal", "Forecast's assumed daily pattern"):
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
