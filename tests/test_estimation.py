"""The state estimator on twin-generated truth: a pack with 12 % less capacity, 40 % more
resistance and another SOC, measured with noisy sensors and a biased current sensor."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support.truth import (
    CAPACITY_AH,
    drive_and_charge_day,
    estimate,
    measure,
    mixed_drive,
    start,
)

from twin_service.app import create_app
from twin_service.models import estimator as E
from twin_service.models.pack import new_pack_state
from twin_service.settings import Settings

TRUE_SOH, TRUE_RF = 0.88, 1.4
# Known limitation: the other states given SOC are Gaussian with a mean linear in SOC. With the
# resistance unknown, the voltage under load ties SOC and resistance along a ridge that
# LFP's OCV bends (flat upper plateau, the 72-78 % step), a line fits it badly, and while
# converging the filter is surer than it should be (an exact posterior on a grid of start SOC
# and resistance, 60 s from 55 % for 85 %: SOC sigma 3.6 %-points, the filter's 0.8).
_RIDGE = "others given SOC are linear in SOC: overconfident on the SOC-resistance ridge"


def _truth(soc: float = 0.55):
    return new_pack_state(soc=soc, soh=TRUE_SOH, resistance_factor=TRUE_RF)


@pytest.mark.parametrize(
    ("true_soc", "start_soc"),
    [
        (0.55, 0.85),
        (0.3, 0.6),
        (0.6, 0.3),
        (0.85, 0.55),
        (0.4, 0.7),
        pytest.param(0.9, 0.6, marks=pytest.mark.xfail(strict=True, reason=_RIDGE)),
        pytest.param(0.8, 0.5, marks=pytest.mark.xfail(strict=True, reason=_RIDGE)),
    ],
)
def test_soc_converges_within_30_minutes_from_30_points_off(true_soc, start_soc) -> None:
    rng = np.random.default_rng(11)
    n = 1800
    t = measure(_truth(true_soc), np.ones(n), mixed_drive(n, rng), rng)
    res = estimate(start(start_soc), t)
    err = res.soc - t.result.soc
    sd = res.estimate[:, E.EO_SOC_STD]
    assert abs(err[-1]) < 0.03, (err[-1], sd[-1])
    # Coulomb counting from the same wrong start with the same biased sensor does worse.
    cc = start_soc - np.cumsum(t.measured_current_a) / (CAPACITY_AH * 3600)
    assert abs(cc[-1] - t.result.soc[-1]) > 5 * abs(err[-1])


@pytest.mark.parametrize(("true_soc", "start_soc"), [(0.85, 0.55), (0.7, 0.4)])
def test_soc_density_covers_the_error_across_the_plateau_step(true_soc, start_soc) -> None:
    """SOC's density (not a Gaussian) while converging from 30 %-points below, across LFP's
    plateau step, the capacity, resistance and current offset known: the true SOC is within
    2 sigma in 99 % and 90 % of the samples (asserted: 85 %); a Gaussian posterior, which the
    plateau re-truncates at every sample, covered 84 % and 75 %."""
    rng = np.random.default_rng(11)
    n = 1800
    t = measure(new_pack_state(soc=true_soc), np.ones(n), mixed_drive(n, rng), rng, bias_a=0.0)
    state = new_pack_state(soc=start_soc)
    state.estimator = E.new_estimator(1.0, 1.0, 0.25, 1e-6, 1e-6, 1e-6, 1.06, 0.01, 2.0)
    res = estimate(state, t)
    err = res.soc - t.result.soc
    assert np.mean(np.abs(err) <= 2 * res.estimate[:, E.EO_SOC_STD]) >= 0.85
    assert abs(err[-1]) < 0.01


@pytest.mark.xfail(strict=True, reason=_RIDGE)
def test_two_sigma_covers_the_soc_error_while_converging() -> None:
    rng = np.random.default_rng(11)
    n = 1800
    t = measure(_truth(0.55), np.ones(n), mixed_drive(n, rng), rng)
    res = estimate(start(0.85), t)
    err = res.soc - t.result.soc
    assert np.mean(np.abs(err) <= 2 * res.estimate[:, E.EO_SOC_STD]) >= 0.9


def test_capacity_and_resistance_after_days_of_drive_and_charge() -> None:
    rng = np.random.default_rng(5)
    truth = _truth()
    state = start(0.85)
    cc = 0.85
    covered = []
    for _ in range(3):
        dt, cur = drive_and_charge_day(rng, truth.soc)
        t = measure(truth, dt, cur, rng)
        truth = t.result.state
        res = estimate(state, t)
        state = res.state
        cc -= float((t.measured_current_a * dt).sum()) / (CAPACITY_AH * 3600)
        err = res.soc - t.result.soc
        covered.append(np.abs(err) <= 2 * res.estimate[:, E.EO_SOC_STD])
    est = state.estimator
    assert abs(est[E.E_SOH] / truth.soh - 1) < 0.03
    assert abs(est[E.E_RF] - truth.resistance_factor) < 0.15
    assert abs(est[E.E_BIAS] - 1.0) < 3 * E.std(est, E.X_BIAS) + 0.2
    assert abs(est[E.E_SOH] - truth.soh) < 3 * E.std(est, E.X_SOH)
    assert np.mean(np.concatenate(covered[1:])) >= 0.9
    assert abs(state.soc - truth.soc) < 0.02
    assert abs(cc - truth.soc) > 0.1  # Coulomb counting drifts with the bias


def test_a_batch_equals_chained_steps_with_estimation() -> None:
    rng = np.random.default_rng(3)
    n = 400
    t = measure(_truth(), np.ones(n), mixed_drive(n, rng), rng)
    whole = estimate(start(0.8), t)
    state = start(0.8)
    for lo, hi in ((0, 1), (1, 137), (137, 138), (138, 400)):
        part = type(t)(t.result, t.dt_s[lo:hi], t.measured_current_a[lo:hi],
                       t.measured_voltage_v[lo:hi], t.measured_temperature_c[lo:hi])  # fmt: skip
        state = estimate(state, part).state
    assert np.array_equal(state.vector, whole.state.vector)
    assert np.array_equal(state.estimator, whole.state.estimator)


def test_a_voltage_spike_is_rejected_and_counted() -> None:
    rng = np.random.default_rng(4)
    n = 900
    t = measure(_truth(), np.ones(n), mixed_drive(n, rng), rng)
    clean = estimate(start(0.55), t)
    t.measured_voltage_v[600] += 40.0
    spiked = estimate(start(0.55), t)
    assert spiked.estimate[600, E.EO_REJECTED] == 1
    assert spiked.estimate[:, E.EO_REJECTED].sum() == clean.estimate[:, E.EO_REJECTED].sum() + 1
    assert abs(spiked.soc[-1] - clean.soc[-1]) < 1e-3


# -- through /step ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings())) as c:
        yield c


def _samples(n: int = 300, seed: int = 1) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    t = measure(_truth(), np.ones(n), mixed_drive(n, rng), rng)
    plain = [{"dt_s": 1.0, "current_a": float(i)} for i in t.measured_current_a]
    measured = [
        {**s, "measured_voltage_v": float(v), "measured_temperature_c": float(c)}
        for s, v, c in zip(plain, t.measured_voltage_v, t.measured_temperature_c, strict=True)
    ]
    return plain, measured


def _step(client, samples, **extra):
    body = {"vehicle_id": "est", "state": {"soc": 0.8}, "samples": samples,
            "options": {"store": False, **extra.pop("options", {})}, **extra}  # fmt: skip
    r = client.post("/step", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_without_measurements_nothing_changes(client) -> None:
    plain, measured = _samples()
    a = _step(client, plain)
    b = _step(client, measured, options={"estimate": False})
    assert a["state"] == b["state"]
    assert "estimate" not in a and "estimator" not in a["state"]
    assert a["telemetry"]["soc_std"] is None and a["telemetry"]["measured_voltage"] is None


def test_step_reports_the_estimate_and_continues_from_its_state(client) -> None:
    _, measured = _samples(600)
    r = _step(client, measured[:300], options={"trace": True})
    est = r["estimate"]
    assert est["accepted"] + est["rejected"] == 600  # voltage and temperature per sample
    assert 0 < est["soc_std"] < 0.25 and est["soh_std"] > 0
    assert est["model_soh"] == r["state"]["soh"]
    tel = r["telemetry"]
    assert tel["soc_std"] == pytest.approx(est["soc_std"] * 100)
    assert tel["measured_voltage"] == measured[299]["measured_voltage_v"]
    row = r["trace"][-1]
    assert row["soc"] == pytest.approx(est["soc"]) and row["soc_std"] == est["soc_std"]
    assert row["voltage_residual"] == pytest.approx(row["measured_voltage"] - row["voltage"])
    assert len(r["state"]["estimator"]["covariance"]) == 28
    # the filter continues from the state: the same as one request of 600
    both = _step(client, measured[300:], state=r["state"])
    whole = _step(client, measured)
    assert both["state"] == whole["state"]
    assert both["estimate"]["soc"] == whole["estimate"]["soc"]


def test_sensor_options_and_reset(client) -> None:
    _, measured = _samples()
    wide = _step(client, measured, options={"sensors": {"voltage_std_v": 5.0}})
    narrow = _step(client, measured)
    assert wide["estimate"]["soc_std"] > narrow["estimate"]["soc_std"]
    temperature_only = [{k: v for k, v in measured[0].items() if k != "measured_voltage_v"}]
    again = _step(client, temperature_only, state=narrow["state"],
                  options={"estimator": {"reset": True, "initial_soc_std": 0.1}})  # fmt: skip
    assert again["estimate"]["soc_std"] == pytest.approx(0.1, rel=0.2)


def test_assimilate_reanchors_the_aging_model(client) -> None:
    rng = np.random.default_rng(5)
    truth, state = _truth(), start(0.85)
    dt, cur = drive_and_charge_day(rng, truth.soc)
    t = measure(truth, dt, cur, rng)
    state = estimate(state, t).state
    from twin_service.step.service import state_to_wire

    wire = state_to_wire(state, CAPACITY_AH)
    sample = [
        {"dt_s": 60.0, "current_a": 0.0, "measured_voltage_v": float(t.measured_voltage_v[-1])}
    ]
    plain = _step(client, sample, state=wire)
    assert plain["estimate"]["model_soh"] > 0.99 and not plain["estimate"]["assimilated"]
    merged = _step(client, sample, state=wire, options={"assimilate": True})
    assert merged["estimate"]["assimilated"]
    assert merged["estimate"]["model_soh"] == pytest.approx(merged["estimate"]["soh"], abs=1e-9)
    assert merged["state"]["soh"] == pytest.approx(merged["estimate"]["soh"], abs=1e-9)


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"covariance": [1.0] * 27}, "covariance"),
        ({"covariance": [-1.0] * 28}, "covariance"),
        ({"soh": 3.0}, "soh"),
        ({"accepted": 1.5}, "accepted"),
        ({"extra": 1}, "extra"),
        (
            {
                "soc_density": {
                    "offset": -0.1,
                    "step": 0.01,
                    "variance": 1e-3,
                    "weights": [0.5] * 32,
                }
            },
            "soc_density",
        ),
        ({"soc_density": {"offset": -0.1, "step": 0.01}}, "soc_density"),
    ],
)
def test_a_bad_estimator_state_gets_422(client, patch, where) -> None:
    _, measured = _samples(5)
    state = _step(client, measured)["state"]
    state["estimator"] = {**state["estimator"], **patch}
    r = client.post("/step", json={"vehicle_id": "est", "state": state, "samples": measured,
                                   "options": {"store": False}})  # fmt: skip
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:4] == ["body", "state", "estimator", where]


def test_bad_measurements_get_422_naming_the_sample(client) -> None:
    _, measured = _samples(5)
    measured[3]["measured_soc"] = 1.5
    r = client.post("/step", json={"vehicle_id": "est", "samples": measured,
                                   "options": {"store": False}})  # fmt: skip
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "samples", 3, "measured_soc"]


def test_a_state_without_a_density_continues_from_a_gaussian(client) -> None:
    _, measured = _samples(20)
    state = _step(client, measured[:10])["state"]
    density = state["estimator"].pop("soc_density")
    assert len(density["weights"]) == E.GRID_N and abs(sum(density["weights"]) - 1) < 1e-9
    r = _step(client, measured[10:], state=state)
    assert 0 < r["estimate"]["soc_std"] < 0.25
    assert len(r["state"]["estimator"]["soc_density"]["weights"]) == E.GRID_N


def test_grid_update_matches_monte_carlo() -> None:
    """One voltage update from a random correlated Gaussian prior on LFP's plateau: the mean
    and covariance of the point-mass update against importance-weighted Monte Carlo."""
    from support.truth import PARAMS

    from twin_service.models.laws import cell_ocv

    rng = np.random.default_rng(7)
    a = rng.normal(size=(E.NX, E.NX))
    stds = np.array([0.08, 0.3, 0.005, 1.0, 0.05, 0.2, 0.5])
    corr = np.corrcoef(a @ a.T + 4 * np.eye(E.NX))
    cov = corr * np.outer(stds, stds)
    m_s = 0.62
    ns = PARAMS.cells_series
    tab = np.array(PARAMS.tables.ocv_soc), np.array(PARAMS.tables.ocv_v)
    h = np.array([-2.0, -1.0, ns, 0.05, 0.0, -8.0, 0.1])
    r_var = 0.25
    x = rng.multivariate_normal(np.zeros(E.NX), cov, 400_000)
    soc = m_s + x[:, 0]
    inside = (soc >= 0) & (soc <= 1)
    x, soc = x[inside], soc[inside]
    ocv = np.interp(soc, *tab)
    z = ns * cell_ocv(0.66, *tab) + 0.3  # a voltage that puts SOC above the prior's mean
    pred = ns * ocv + x[:, 1:] @ h[1:] + h[0] * x[:, 0]
    w = np.exp(-0.5 * (z - pred) ** 2 / r_var)
    w /= w.sum()
    mc_mean = w @ x
    mc_cov = (x - mc_mean).T @ ((x - mc_mean) * w[:, None])

    est = E.new_estimator(1.0, 1.0, *stds)
    est[E.E_COV : E.E_COV + E.N_COV] = [cov[i, j] for i in range(E.NX) for j in range(i, E.NX)]
    E.density_init(est, cov[0, 0])
    c = cov.copy()
    dx = np.zeros(E.NX)
    ok = E.grid_update(c, est, h, z, ns, r_var, *tab, m_s, 0.0, 50.0, 0.0, False, dx,
                       np.zeros((E.W_ROWS, E.GRID_N)), np.zeros((E.NX, E.NX)))  # fmt: skip
    assert ok
    assert np.all(np.abs(dx - mc_mean) < 0.03 * stds), (dx, mc_mean)
    sd, mc_sd = np.sqrt(np.diag(c)), np.sqrt(np.diag(mc_cov))
    assert np.all(np.abs(sd - mc_sd) < 0.03 * stds), (sd, mc_sd)
