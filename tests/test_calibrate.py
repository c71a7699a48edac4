"""POST /calibrate: pack parameters fitted to a log's measured voltages.

The logs are made by the twin itself (POST /step with a trace) for a pack that has lost 12 %
of its capacity and gained 40 % resistance, plus voltage noise; the calibration starts from
the nominal preset and must find the truth, within its own standard errors, and say which
parameters a log does not determine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.calibrate import fit as fit_module
from twin_service.calibrate.fit import MIN_MEASURED
from twin_service.presets import PRESETS
from twin_service.settings import Settings

PRESET = "sv1ev3"
SOH, RESISTANCE_FACTOR = 0.88, 1.4  # the truth: -12 % capacity, +40 % resistance
TRUE_START_SOC = 0.92
NOISE_V = 0.2  # measurement noise (pack volts, 1 sigma)
TRUTH_SEED = {"soc": TRUE_START_SOC, "soh": SOH, "resistance_factor": RESISTANCE_FACTOR}
MEASURED = ("measured_voltage_v", "measured_temperature_c", "measured_soc")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as c:
        yield c


def drive_profile(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pack current (A, discharge > 0) at 1 Hz: drives of 5-15 min made of 5-40 s pulses
    (a quarter of them regeneration) between rests of 1-5 min."""
    current = np.zeros(n)
    k, driving = 0, True
    while k < n:
        if driving:
            end = min(n, k + int(rng.integers(300, 900)))
            while k < end:
                d = int(rng.integers(5, 40))
                regen = rng.random() < 0.25
                current[k : k + d] = rng.uniform(-80, 0) if regen else rng.uniform(20, 250)
                k += d
        else:
            d = int(rng.integers(60, 300))
            current[k : k + d] = 0.0
            k += d
        driving = not driving
    return current


def step(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    body = {"vehicle_id": "calibrate", "options": {"store": False, "trace": True}, **body}
    resp = client.post("/step", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def measured_log(
    client: TestClient,
    current: np.ndarray,
    state: dict[str, Any],
    rng: np.random.Generator,
    temperature: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The truth's samples as a logger records them: the current that flowed, the terminal
    voltage with noise and (optionally) the pack temperature; and the /step response."""
    samples = [{"dt_s": 1.0, "current_a": float(c)} for c in current]
    out = step(client, {"vehicle": PRESET, "state": state, "samples": samples})
    noise = rng.normal(0.0, NOISE_V, len(out["trace"]))
    log = []
    for row, e in zip(out["trace"], noise, strict=True):
        voltage = float(row["voltage"] + e)
        sample = {"dt_s": 1.0, "current_a": row["current"], "measured_voltage_v": voltage}
        if temperature:
            sample["measured_temperature_c"] = row["temperature"]
        log.append(sample)
    return log, out


def calibrate(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/calibrate", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def errors(resp: Any) -> list[tuple[list[Any], str]]:
    assert resp.status_code == 422, resp.text
    return [(e["loc"], e["type"]) for e in resp.json()["detail"]]


def replay_rms(client: TestClient, result: dict[str, Any], log: list[dict[str, Any]]) -> float:
    """The rms voltage residual of /step run with the fitted vehicle and state over the log
    (its drive inputs only)."""
    plain = [{k: v for k, v in s.items() if k not in MEASURED} for s in log]
    out = step(client, {"vehicle": result["vehicle"], "state": result["state"], "samples": plain})
    model = np.array([row["voltage"] for row in out["trace"]])
    measured = np.array([s["measured_voltage_v"] for s in log])
    return float(np.sqrt(np.mean((model - measured) ** 2)))


@pytest.fixture(scope="module")
def two_hours(client: TestClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A 2-hour 1 Hz log of the aged pack and its calibration from the nominal preset."""
    rng = np.random.default_rng(20240611)
    log, _ = measured_log(client, drive_profile(rng, 7200), TRUTH_SEED, rng)
    return log, calibrate(client, {"vehicle": PRESET, "samples": log})


def test_a_two_hour_log_recovers_capacity_and_resistances(
    two_hours: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    _, result = two_hours
    fit = result["fit"]
    p = fit["parameters"]
    assert fit["samples"] == 7200
    assert fit["warnings"] == []
    assert all(e["identified"] for e in p.values())
    nominal_ah = PRESETS[PRESET].pack.capacity_ah
    assert p["capacity_ah"]["nominal"] == pytest.approx(nominal_ah)
    assert p["capacity_ah"]["value"] == pytest.approx(SOH * nominal_ah, rel=0.03)
    for name in ("r0_ohm", "r1_ohm"):
        assert p[name]["value"] == pytest.approx(RESISTANCE_FACTOR * p[name]["nominal"], rel=0.15)
        assert p[name]["unit"] == "ohm"
    # The residual falls to the measurement noise, from far above it.
    assert fit["rms_after_v"] == pytest.approx(NOISE_V, rel=0.1)
    assert fit["rms_before_v"] > 5 * NOISE_V


def test_the_standard_errors_cover_the_truth(
    two_hours: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    p = two_hours[1]["fit"]["parameters"]
    truth = {
        "capacity_ah": SOH * PRESETS[PRESET].pack.capacity_ah,
        "r0_ohm": RESISTANCE_FACTOR * p["r0_ohm"]["nominal"],
        "r1_ohm": RESISTANCE_FACTOR * p["r1_ohm"]["nominal"],
        "tau1_s": PRESETS[PRESET].pack.tau1_s,
        "ocv_offset_v": 0.0,
        "initial_soc": TRUE_START_SOC,
    }
    for name, value in truth.items():
        e = p[name]
        assert e["std"] > 0, name
        assert abs(e["value"] - value) <= 3 * e["std"], (name, e, value)
        # and the errors are not absurdly wide either: the log determines each well
        assert e["std"] < 0.05 * max(abs(value), 0.01), (name, e)


def test_the_fitted_vehicle_replays_the_log_in_step(
    client: TestClient, two_hours: tuple[list[dict[str, Any]], dict[str, Any]]
) -> None:
    log, result = two_hours
    vehicle = result["vehicle"]
    assert vehicle["base"] == PRESET
    assert set(vehicle["pack"]) == {"cell_capacity_ah", "cell_resistance", "r0_fraction",
                                    "tau1_s", "ocv"}  # fmt: skip
    assert result["state"]["soc"] == result["fit"]["parameters"]["initial_soc"]["value"]
    rms = replay_rms(client, result, log)
    assert rms == pytest.approx(result["fit"]["rms_after_v"], rel=0.02)


def test_a_constant_current_log_leaves_tau1_and_capacity_unidentified(
    client: TestClient,
) -> None:
    """Ten minutes at a constant 0.2 C, the RC branch already settled: no current step shows
    tau1, and 3 % of SOC does not show the capacity. Both stay nominal, with a warning."""
    rng = np.random.default_rng(7)
    settle = step(client, {"vehicle": PRESET, "state": {**TRUTH_SEED, "soc": 0.6},
                           "samples": [{"dt_s": 1.0, "current_a": 44.0}] * 1800})  # fmt: skip
    state = settle["state"]
    log, _ = measured_log(client, np.full(600, 44.0), state, rng, temperature=False)
    result = calibrate(client, {"vehicle": PRESET, "state": state, "samples": log})
    p, warnings = result["fit"]["parameters"], result["fit"]["warnings"]
    for name in ("tau1_s", "capacity_ah"):
        assert p[name]["identified"] is False, name
        assert p[name]["std"] is None
        assert p[name]["value"] == p[name]["nominal"]
        assert any(w.startswith(f"{name} not identified") for w in warnings), warnings
    assert any("moves the SOC by only" in w for w in warnings)
    assert "tau1_s" not in result["vehicle"]["pack"]
    assert "cell_capacity_ah" not in result["vehicle"]["pack"]
    # A full state in, the same full state out, with the fitted SOC (if it was fitted).
    assert result["state"]["schema_version"] == state["schema_version"]
    assert result["state"]["soc"] == p["initial_soc"]["value"]
    assert result["fit"]["rms_after_v"] == pytest.approx(NOISE_V, rel=0.15)


@pytest.fixture(scope="module")
def short_log(client: TestClient) -> list[dict[str, Any]]:
    """20 minutes of driving of the aged pack, without temperatures."""
    rng = np.random.default_rng(11)
    return measured_log(client, drive_profile(rng, 1200), TRUTH_SEED, rng, temperature=False)[0]


def test_parameters_limits_the_fit_to_the_named_ones(
    client: TestClient, short_log: list[dict[str, Any]]
) -> None:
    body = {"vehicle": PRESET, "samples": short_log, "parameters": ["r0_ohm", "initial_soc"]}
    result = calibrate(client, body)
    p = result["fit"]["parameters"]
    assert {n for n, e in p.items() if e["identified"]} == {"r0_ohm", "initial_soc"}
    for name in ("capacity_ah", "r1_ohm", "tau1_s", "ocv_offset_v"):
        assert p[name]["std"] is None and p[name]["value"] == p[name]["nominal"]
    # R0 alone takes up the whole resistance rise.
    assert p["r0_ohm"]["value"] > 1.5 * p["r0_ohm"]["nominal"]
    assert set(result["vehicle"]["pack"]) == {"cell_resistance", "r0_fraction"}


def test_an_override_keeps_its_other_fields_and_step_accepts_the_result(
    client: TestClient, short_log: list[dict[str, Any]]
) -> None:
    vehicle = {"base": PRESET, "name": "fleet car 7", "roadload": {"mass_kg": 2100.0},
               "pack": {"hysteresis_v": 0.01}}  # fmt: skip
    result = calibrate(client, {"vehicle": vehicle, "samples": short_log})
    out = result["vehicle"]
    assert out["base"] == PRESET and out["name"] == "fleet car 7"
    assert out["roadload"] == {"mass_kg": 2100.0}
    assert out["pack"]["hysteresis_v"] == 0.01
    assert replay_rms(client, result, short_log) == pytest.approx(
        result["fit"]["rms_after_v"], rel=0.05
    )


def test_a_full_inline_vehicle_comes_back_whole_and_step_accepts_it(
    client: TestClient, short_log: list[dict[str, Any]]
) -> None:
    full = PRESETS[PRESET].model_dump(exclude_computed_fields=True)
    full["id"] = "my-pack"
    result = calibrate(client, {"vehicle": full, "samples": short_log})
    out = result["vehicle"]
    assert out["id"] == "my-pack" and "base" not in out
    assert out["pack"]["cell_capacity_ah"] != full["pack"]["cell_capacity_ah"]
    assert out["pack"]["capacity_ah"] == out["pack"]["cell_capacity_ah"]  # derived, agrees
    assert replay_rms(client, result, short_log) == pytest.approx(
        result["fit"]["rms_after_v"], rel=0.05
    )


# -- bad input ----------------------------------------------------------------------------------


def test_a_log_without_measured_voltages_is_a_422_naming_samples(client: TestClient) -> None:
    samples = [{"dt_s": 1.0, "current_a": 10.0, "measured_temperature_c": 25.0}] * 50
    resp = client.post("/calibrate", json={"samples": samples})
    assert errors(resp) == [(["body", "samples"], "no_measurements")]


def test_too_few_measured_voltages_is_a_422(client: TestClient) -> None:
    unmeasured = [{"dt_s": 1.0, "current_a": 10.0}] * 50
    few = [{"dt_s": 1.0, "current_a": 10.0, "measured_voltage_v": 370.0}] * (MIN_MEASURED - 1)
    resp = client.post("/calibrate", json={"samples": few + unmeasured})
    assert errors(resp) == [(["body", "samples"], "too_few_measurements")]


def test_a_log_too_long_to_fit_is_refused_before_it_runs(client: TestClient) -> None:
    # A day per sample at 10 s sub-steps: 8640 model steps each, far too many for a fit.
    samples = [{"dt_s": 86400.0, "current_a": 0.1, "measured_voltage_v": 370.0}] * 40
    resp = client.post("/calibrate", json={"samples": samples})
    assert errors(resp) == [(["body", "samples"], "too_long")]


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"parameters": ["capacity_ah", "soh"]}, ["body", "parameters", 1], "literal_error"),
        ({"parameters": []}, ["body", "parameters"], "too_short"),
        ({"vehicle": "no-such-car"}, ["body", "vehicle"], "unknown_preset"),
        ({"state": {"soc": 1.5}}, ["body", "state", "soc"], "less_than_equal"),
        ({"extra": 1}, ["body", "extra"], "extra_forbidden"),
    ],
)
def test_bad_fields_are_422s_naming_them(
    client: TestClient, body: dict[str, Any], loc: list[Any], kind: str
) -> None:
    samples = [{"dt_s": 1.0, "current_a": 10.0, "measured_voltage_v": 370.0}] * 30
    resp = client.post("/calibrate", json={"samples": samples, **body})
    assert (loc, kind) in errors(resp)


def test_bad_samples_are_422s_naming_the_sample(client: TestClient) -> None:
    samples: list[dict[str, Any]] = [{"dt_s": 1.0, "current_a": 10.0, "measured_voltage_v": 370.0}]
    samples = samples * 30 + [{"dt_s": 1.0, "current_a": 10.0, "measured_voltage_v": -1.0}]
    resp = client.post("/calibrate", json={"samples": samples})
    assert (["body", "samples", 30, "measured_voltage_v"], "out_of_range") in errors(resp)
    resp = client.post("/calibrate", json={"samples": []})
    assert (["body", "samples"], "too_short") in errors(resp)
    resp = client.post(
        "/calibrate", content=b"[1, 2]", headers={"content-type": "application/json"}
    )
    assert errors(resp) == [(["body"], "dict_type")]


def test_the_model_runs_are_bounded(
    client: TestClient, short_log: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget too small to converge, the fit stops at it, says so and still answers."""
    runs = 0
    simulate = fit_module.simulate

    def counted(*args: Any) -> Any:
        nonlocal runs
        runs += 1
        return simulate(*args)

    monkeypatch.setattr(fit_module, "MAX_RUNS", 30)
    monkeypatch.setattr(fit_module, "simulate", counted)
    result = calibrate(client, {"vehicle": PRESET, "samples": short_log})
    assert runs <= 30
    assert any(w.startswith("the fit stopped after") for w in result["fit"]["warnings"])
    assert result["fit"]["rms_after_v"] <= result["fit"]["rms_before_v"]


def test_calibrate_takes_the_read_key() -> None:
    samples = [{"dt_s": 1.0, "current_a": 10.0}] * 30
    with TestClient(create_app(Settings(read_key="r3ad"))) as c:
        assert c.post("/calibrate", json={"samples": samples}).status_code == 401
        headers = {"Authorization": "Bearer r3ad"}
        resp = c.post("/calibrate", json={"samples": samples}, headers=headers)
        assert errors(resp) == [(["body", "samples"], "no_measurements")]
