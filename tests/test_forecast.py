"""POST /forecast: shape, monotonicity, consistency with /step, and bad usage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.models.aging import MODELS, REGISTRY
from twin_service.models.forecast import DRIVE_SPEED_KMH
from twin_service.presets import PRESETS
from twin_service.settings import Settings


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def forecast(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/forecast", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_forecast_shape_and_monotone(client: TestClient) -> None:
    out = forecast(client, years=10, usage={"daily_km": 60, "ambient_c": 30})
    pts = out["points"]
    assert len(pts) == 121 and pts[0]["years"] == 0 and pts[-1]["years"] == pytest.approx(10)
    soh = np.array([p["soh"] for p in pts])
    rf = np.array([p["resistance_factor"] for p in pts])
    assert np.all(np.diff(soh) < 0) and np.all(np.diff(rf) > 0)
    assert out["soh_in_2_years"] == pytest.approx(np.interp(2, [p["years"] for p in pts], soh))
    assert out["fade_pct_per_year"] == pytest.approx((soh[0] - soh[-1]) / 10 * 100)
    assert out["usage"]["source"]["daily_km"] == "request"
    assert out["usage"]["source"]["wh_per_km"] == "default"


def test_years_to_80_consistent_with_points(client: TestClient) -> None:
    out = forecast(client, years=20, usage={"daily_km": 150, "ambient_c": 35})
    t80 = out["years_to_80"]
    assert t80 is not None and 0 < t80 < 20
    years = np.array([p["years"] for p in out["points"]])
    soh = np.array([p["soh"] for p in out["points"]])
    assert np.all(soh[years < t80 - 1 / 12] > 0.8) and np.all(soh[years > t80 + 1 / 12] < 0.8)
    mild = forecast(client, years=5, usage={"daily_km": 10, "ambient_c": 10})
    assert mild["years_to_80"] is None or mild["years_to_80"] > t80


def test_harsher_use_fades_faster(client: TestClient) -> None:
    base = forecast(client, years=5)["soh_in_2_years"]
    assert forecast(client, years=5, usage={"ambient_c": 40})["soh_in_2_years"] < base
    assert forecast(client, years=5, usage={"daily_km": 200})["soh_in_2_years"] < base
    assert forecast(client, years=5, usage={"dc_fast_share": 1.0})["soh_in_2_years"] < base


def test_storage_forecast_matches_step(client: TestClient) -> None:
    """Constant conditions: parked at SOC 0.9 and 35 degC for two years."""
    stepped = client.post(
        "/step",
        json={
            "vehicle_id": "parked",
            "state": {"soc": 0.9, "temperature_c": 35},
            "samples": [{"dt_s": 86400, "current_a": 0, "ambient_c": 35}] * 730,
        },
    ).json()
    out = forecast(
        client, vehicle_id="parked", years=2, usage={"daily_km": 0, "soc_max": 0.9, "ambient_c": 35}
    )
    fresh = forecast(client, years=2, usage={"daily_km": 0, "soc_max": 0.9, "ambient_c": 35})
    assert fresh["points"][-1]["soh"] == pytest.approx(stepped["state"]["soh"], abs=0.005)
    assert fresh["points"][-1]["resistance_factor"] == pytest.approx(
        stepped["state"]["resistance_factor"], abs=0.005
    )
    # Continuing from the stepped vehicle starts where /step ended.
    assert out["points"][0]["soh"] == pytest.approx(stepped["state"]["soh"], abs=1e-12)


def daily_samples(usage: dict[str, float], capacity_ah: float, pack_kwh: float) -> list[dict]:
    """One day as the forecast assumes it: drive, rest low, charge back the same charge, rest
    high. Currents are used so the day is charge-neutral."""
    drive_h = usage["daily_km"] / DRIVE_SPEED_KMH
    drive_c = usage["wh_per_km"] * DRIVE_SPEED_KMH / 1000.0 / pack_kwh
    charge_c = usage["charge_c_rate"]
    charge_h = drive_h * drive_c / charge_c
    rest_s = (24 - drive_h - charge_h) * 3600 / 2
    amb = usage["ambient_c"]
    return [
        {"dt_s": drive_h * 3600, "current_a": drive_c * capacity_ah, "ambient_c": amb},
        {"dt_s": rest_s, "current_a": 0.0, "ambient_c": amb},
        {
            "dt_s": charge_h * 3600,
            "current_a": -charge_c * capacity_ah,
            "ambient_c": amb,
            "charging": True,
        },
        {"dt_s": rest_s, "current_a": 0.0, "ambient_c": amb},
    ]


@pytest.mark.slow
def test_daily_use_forecast_matches_step(client: TestClient) -> None:
    preset = PRESETS["sv1ev3"]
    usage = {
        "daily_km": 120.0,
        "wh_per_km": 170.0,
        "soc_min": 0.5,
        "soc_max": 0.9,
        "ambient_c": 25.0,
        "charge_c_rate": 0.2,
        "dc_fast_share": 0.0,
    }
    day = daily_samples(usage, preset.pack.capacity_ah, preset.pack.nominal_energy_kwh)
    stepped = client.post(
        "/step",
        json={
            "vehicle_id": "commuter",
            "state": {"soc": 0.9, "temperature_c": 25},
            "samples": day * 365,
        },
    )
    assert stepped.status_code == 200, stepped.text
    st = stepped.json()["state"]
    assert st["aging"]["naumann"]["cyc_capacity_loss"] > 0.002  # cycling matters in this comparison
    out = forecast(client, years=1, usage=usage)
    assert out["points"][-1]["soh"] == pytest.approx(st["soh"], abs=0.005)


def test_history_supplies_usage_defaults_in_simulated_days(client: TestClient) -> None:
    """20 minutes of driving say nothing about a day (it once became 1,728 km/day); after a
    week of simulated time, the distance per day is what was driven over it."""
    drive = [{"dt_s": 1.0, "power_kw": 15.0, "wheel_speed_m_s": 20.0, "ambient_c": 12.0}] * 1200
    first = client.post("/step", json={"vehicle_id": "observed", "samples": drive,
                                       "options": {"replace": True}})  # fmt: skip
    assert first.status_code == 200, first.text
    out = forecast(client, vehicle_id="observed", years=3)
    src = out["usage"]["source"]
    assert src["daily_km"] == "default" and src["ambient_c"] == "history"
    assert src["soc_min"] == src["soc_max"] == "default"  # no charge seen: no window yet
    assert out["usage"]["ambient_c"] == pytest.approx(12.0)
    assert src["wh_per_km"] == "history"
    assert out["usage"]["wh_per_km"] == pytest.approx(15000 / 72, rel=0.05)

    def park(state: dict, seconds: float) -> dict:
        days, rest = divmod(seconds, 86400.0)
        dts = [86400.0] * int(days) + ([rest] if rest else [])
        samples = [{"dt_s": dt, "power_kw": 0.0, "ambient_c": 12.0} for dt in dts]
        body = {"vehicle_id": "observed", "state": state, "samples": samples}
        resp = client.post("/step", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()["state"]

    state = park(first.json()["state"], 86400.0 - 1200.0)  # a day: not a week of evidence
    assert forecast(client, vehicle_id="observed")["usage"]["source"]["daily_km"] == "default"
    park(state, 6 * 86400.0)  # a week: 24 km in 7 days
    out = forecast(client, vehicle_id="observed", years=3)
    assert out["usage"]["source"]["daily_km"] == "history"
    assert out["usage"]["daily_km"] == pytest.approx(24.0 / 7, rel=1e-6)


def test_charging_habits_come_from_the_charging_records(client: TestClient) -> None:
    state = None
    for _ in range(12):  # 12 records of plugged-in charging at 11 kW
        body = {"vehicle_id": "charger", "state": state, "options": {"replace": state is None},
                "samples": [{"dt_s": 60.0, "power_kw": -11.0, "charging": True}]}  # fmt: skip
        resp = client.post("/step", json=body)
        assert resp.status_code == 200, resp.text
        state = resp.json()["state"]
        current = resp.json()["telemetry"]["current"]
    out = forecast(client, vehicle_id="charger", years=3)
    capacity_ah = client.get("/vehicles/presets").json()["sv1ev3"]["pack"]["capacity_ah"]
    assert out["usage"]["source"]["charge_c_rate"] == "history"
    assert out["usage"]["charge_c_rate"] == pytest.approx(-current / capacity_ah, rel=0.05)
    assert out["usage"]["dc_fast_share"] == 0.0
    history = client.get("/vehicles/charger/history").json()
    assert out["usage"]["source"]["soc_max"] == "history"
    assert out["usage"]["soc_max"] == pytest.approx(max(r["soc"] for r in history) / 100)


def test_the_band_spans_the_physical_models(client: TestClient) -> None:
    out = forecast(client, years=10, compare_models=True)
    fades = [m["fade_pct_per_year"] for m in out["by_model"]]
    assert out["band"]["fade_pct_per_year"] == [min(fades), max(fades)]
    assert min(fades) < max(fades)
    soh2 = [m["soh_in_2_years"] for m in out["by_model"]]
    assert out["band"]["soh_in_2_years"] == [min(soh2), max(soh2)]
    years = [m["years_to_80"] for m in out["by_model"]]
    low, high = out["band"]["years_to_80"]
    assert low == min(y for y in years if y is not None)
    assert high == (None if None in years else max(years))
    assert forecast(client, years=10)["band"] is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"usage": {"daily_km": -5}}, ["body", "usage", "daily_km"]),
        ({"usage": {"soc_min": 0.8, "soc_max": 0.6}}, ["body", "usage", "soc_min"]),
        ({"usage": {"soc_min": 0.7, "soc_max": 0.7}}, ["body", "usage", "soc_min"]),
        ({"years": 0}, ["body", "years"]),
        ({"years": -1}, ["body", "years"]),
        ({"years": 51}, ["body", "years"]),
        ({"usage": {"wh_per_km": "lots"}}, ["body", "usage", "wh_per_km"]),
        ({"state": {"soc": 3}}, ["body", "state", "soc"]),
        ({"vehicle": "nope"}, ["body", "vehicle"]),
    ],
)
def test_impossible_usage_is_rejected(client: TestClient, body: dict, loc: list) -> None:
    r = client.post("/forecast", json=body)
    assert r.status_code == 422, r.text
    assert any(e["loc"][: len(loc)] == loc for e in r.json()["detail"]), r.json()


def test_unknown_vehicle_is_404(client: TestClient) -> None:
    r = client.post("/forecast", json={"vehicle_id": "never-seen"})
    assert r.status_code == 404
    assert r.json()["detail"][0]["loc"] == ["body", "vehicle_id"]


def test_fleet_forecast_matches_single(client: TestClient) -> None:
    usages = [{"daily_km": km, "ambient_c": t} for km in (0, 50, 150) for t in (10, 25, 40)]
    fleet = client.post(
        "/forecast/fleet",
        json={
            "years": 10,
            "items": [{"usage": u} for u in usages],
            "include_points": True,
        },
    ).json()["results"]
    for u, res in zip(usages, fleet, strict=True):
        single = forecast(client, years=10, usage=u)
        assert res["soh_in_2_years"] == pytest.approx(single["soh_in_2_years"], abs=1e-12)
        assert res["points"][-1]["soh"] == pytest.approx(single["points"][-1]["soh"], abs=1e-12)


@pytest.mark.parametrize("model", [m.name for m in REGISTRY])
def test_vehicle_blocks_do_not_change_results(model: str) -> None:
    from twin_service.models.aging.base import ForecastStart
    from twin_service.models.forecast import Usage, block_vehicles

    forecast_fn = MODELS[model].forecast
    block = block_vehicles(5.0)
    n = block * 2 + 17
    rng = np.random.default_rng(5)
    usage = Usage(
        rng.uniform(0, 200, n),
        rng.uniform(120, 250, n),
        np.full(n, 0.1),
        rng.uniform(0.6, 1.0, n),
        rng.uniform(-5, 40, n),
        np.full(n, 0.2),
        rng.uniform(0, 1, n),
    )
    states = np.zeros((n, len(MODELS[model].state)))
    states[:, 0] = rng.uniform(0, 0.05, n)  # each model's first field is a capacity loss
    start = ForecastStart(states, rng.uniform(0, 0.01, n), np.zeros(n))
    cap = rng.uniform(40, 100, n)
    fleet = forecast_fn(start, usage, cap, 5.0)
    assert fleet.soh.shape[0] == n
    for i in (0, block, n - 1):
        sl = slice(i, i + 1)
        one = forecast_fn(
            ForecastStart(
                states[sl], start.other_capacity_loss[sl], start.other_resistance_increase[sl]
            ),
            Usage(*(np.asarray(v)[sl] for v in vars(usage).values())),
            cap[sl],
            5.0,
        )
        np.testing.assert_allclose(fleet.soh[i], one.soh[0], rtol=1e-12)
        np.testing.assert_allclose(fleet.resistance_factor[i], one.resistance_factor[0], rtol=1e-12)


def test_forecast_follows_the_vehicles_aging_model(client: TestClient) -> None:
    client.post(
        "/step",
        json={
            "vehicle_id": "demo-car",
            "options": {"demo_mode": True},
            "samples": [{"dt_s": 1.0, "power_kw": 10.0}],
        },
    )
    assert forecast(client, vehicle_id="demo-car")["aging_model"] == "seed"
    explicit = forecast(client, vehicle_id="demo-car", aging_model="naumann")
    assert explicit["aging_model"] == "naumann"
    assert forecast(client)["aging_model"] == "naumann"


def test_long_horizons_take_smaller_blocks() -> None:
    """A block's compiled laws hold the GIL: its cells are bounded, whatever the horizon."""
    from twin_service.models.forecast import (
        BLOCK_CELLS,
        VEHICLE_BLOCK,
        block_vehicles,
        forecast_steps,
    )

    assert block_vehicles(1.0) == VEHICLE_BLOCK
    for years in (10.0, 50.0):
        assert block_vehicles(years) * forecast_steps(years) <= BLOCK_CELLS
    assert block_vehicles(50.0) < block_vehicles(10.0) < VEHICLE_BLOCK


def test_fleet_in_chunks_matches_one_run(client: TestClient) -> None:
    """Items run FLEET_CHUNK at a time, grouped by model within a chunk: the same numbers as one
    vectorised run of all of them."""
    from twin_service.api.forecast import FLEET_CHUNK
    from twin_service.forecast.service import resolve_usage, run_forecast, start_state, summarise
    from twin_service.schemas import ForecastItem, UsageProfile

    client.post("/step", json={"vehicle_id": "chunk-demo", "options": {"demo_mode": True},
                               "samples": [{"dt_s": 1.0, "power_kw": 10.0}]})  # fmt: skip
    n = FLEET_CHUNK + 40
    usages = [{"daily_km": float(i % 97), "ambient_c": float(i % 31)} for i in range(n)]
    items: list[dict[str, Any]] = [{"usage": u} for u in usages]
    items[FLEET_CHUNK - 1] = {"vehicle_id": "chunk-demo"}  # a seed-model vehicle in chunk 1
    resp = client.post("/forecast/fleet", json={"years": 3, "items": items})
    assert resp.status_code == 200, resp.text[:300]
    results = resp.json()["results"]
    assert results[FLEET_CHUNK - 1]["aging_model"] == "seed"
    idx = [i for i in range(n) if i != FLEET_CHUNK - 1]
    preset = PRESETS["sv1ev3"]
    fc = run_forecast(
        [start_state(ForecastItem(), None, []) for _ in idx],
        [resolve_usage(UsageProfile(**usages[i]), {}, []) for i in idx],
        [preset] * len(idx),
        3.0,
        preset.pack.aging_model,
    )
    expected = summarise(fc, 3.0)["soh_in_2_years"]
    got = [results[i]["soh_in_2_years"] for i in idx]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_fleet_errors_name_the_item(client: TestClient) -> None:
    """Items are validated in chunks; an error still names its item's index."""
    items: list[dict[str, Any]] = [{}] * 600
    items[555] = {"usage": {"daily_km": -1}}
    resp = client.post("/forecast/fleet", json={"years": 0, "items": items})
    assert resp.status_code == 422, resp.text
    locs = [e["loc"] for e in resp.json()["detail"]]
    assert ["body", "years"] in locs and ["body", "items", 555, "usage", "daily_km"] in locs


def test_a_vehicle_stepped_inline_asks_for_its_vehicle(client: TestClient) -> None:
    vehicle = {"base": "sv1ev3", "pack": {"cells_series": 100}}
    body = {"vehicle_id": "inline-fc", "vehicle": vehicle, "options": {"replace": True},
            "samples": [{"dt_s": 1.0, "power_kw": 10.0}]}  # fmt: skip
    assert client.post("/step", json=body).status_code == 200
    resp = client.post("/forecast", json={"vehicle_id": "inline-fc"})
    assert resp.status_code == 422, resp.text
    (error,) = resp.json()["detail"]
    assert error["loc"] == ["body", "vehicle"] and error["type"] == "vehicle_required"
    out = forecast(client, vehicle_id="inline-fc", vehicle=vehicle)
    assert out["usage"]["source"]["ambient_c"] == "history"
