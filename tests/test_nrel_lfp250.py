"""NREL large-format LFP aging (nrel_lfp250) through POST /step and /forecast: the published
check value, the closed forms, the stress windows and the validity flags."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.models.aging import LAYOUT
from twin_service.models.state import read_fast
from twin_service.presets import PRESETS, on_cycler
from twin_service.settings import Settings

MODEL = {"aging_model": "nrel_lfp250"}
CAPACITY_AH = PRESETS["sv1ev3"].pack.capacity_ah


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def step(client: TestClient, **body: Any) -> dict[str, Any]:
    body.setdefault("options", MODEL)
    r = client.post("/step", json=body)
    assert r.status_code == 200, r.text
    return r.json()


# Gasper et al. 2023 as published (BLAST-Lite `Lfp_Gr_250AhPrismatic`), written out here.
def anode_potential(soc: float) -> float:
    xa = 8.5e-3 + soc * (0.78 - 8.5e-3)
    return (0.6379 + 0.5416 * math.exp(-305.5309 * xa) + 0.044 * math.tanh(-(xa - 0.1958) / 0.1088)
            - 0.1978 * math.tanh((xa - 1.0571) / 0.0854)
            - 0.6875 * math.tanh((xa + 0.0117) / 0.0529)
            - 0.0175 * math.tanh((xa - 0.5692) / 0.0875))  # fmt: skip


def k_cal(soc: float, temperature_c: float) -> float:
    t = temperature_c + 273.15
    return 8.37e4 * math.exp(-5.21e3 / t) * math.exp(-3.56e3 * anode_potential(soc) / t)


def daily_windows(k: float, days: int, p: float = 0.526) -> float:
    """The published state update over `days` windows of one day."""
    y = 0.0
    for _ in range(days):
        y += k if y == 0.0 else k * p * (y / k) ** ((p - 1) / p)
    return y


def storage(
    client: TestClient,
    vehicle_id: str,
    soc: float,
    temperature_c: float,
    days: int,
    state: Any = None,
) -> dict[str, Any]:
    return step(
        client,
        vehicle_id=vehicle_id,
        state=state or {"soc": soc, "temperature_c": temperature_c},
        samples=[{"dt_s": 86400, "current_a": 0, "ambient_c": temperature_c}] * days,
    )


def test_check_value_storage_25c_half_charged_one_year(client: TestClient) -> None:
    out = storage(client, "nrel-check", 0.5, 25.0, 365)
    assert out["state"]["soh"] == pytest.approx(0.98896, abs=0.0005)
    assert 1 - out["state"]["soh"] == pytest.approx(daily_windows(k_cal(0.5, 25.0), 365), rel=1e-9)
    # The closed form k t^p differs from the daily state updates by their first-order error
    # (0.2 % of the loss after a year).
    closed = k_cal(0.5, 25.0) * 365**0.526
    assert 1 - out["state"]["soh"] == pytest.approx(closed, rel=3e-3)
    assert out["telemetry"]["aging_model"] == "nrel_lfp250"
    assert out["telemetry"]["aging_out_of_range"] is False  # storage is not cycling


@pytest.mark.parametrize(("soc", "temperature_c"), [(0.1, 10.0), (0.9, 35.0), (1.0, 45.0)])
def test_storage_follows_the_published_equations(
    client: TestClient, soc: float, temperature_c: float
) -> None:
    out = storage(client, f"nrel-{soc}-{temperature_c}", soc, temperature_c, 100)
    expected = daily_windows(k_cal(soc, temperature_c), 100)
    # The pack relaxes to ambient over the first hours; SOC is held (no current).
    assert 1 - out["state"]["soh"] == pytest.approx(expected, rel=2e-4)
    assert out["state"]["aging"]["nrel_lfp250"]["cyc_capacity_loss"] == 0.0


def test_windows_close_after_a_day_and_the_open_one_is_reported(client: TestClient) -> None:
    out = step(
        client,
        vehicle_id="nrel-open",
        state={"soc": 0.5, "temperature_c": 25},
        samples=[{"dt_s": 43200, "current_a": 0, "ambient_c": 25}],
    )
    block = out["state"]["aging"]["nrel_lfp250"]
    assert block["cal_capacity_loss"] == 0.0  # nothing booked yet
    assert block["window"]["aging_s"] == pytest.approx(43200)
    k = k_cal(0.5, 25.0)
    assert block["window_capacity_loss"] == pytest.approx(k * 0.5**0.526, rel=1e-9)
    assert 1 - out["state"]["soh"] == pytest.approx(k * 0.5**0.526, rel=1e-9)
    out = step(
        client,
        vehicle_id="nrel-open",
        state=out["state"],
        samples=[{"dt_s": 43200, "current_a": 0, "ambient_c": 25}],
    )
    block = out["state"]["aging"]["nrel_lfp250"]
    assert block["cal_capacity_loss"] == pytest.approx(k, rel=1e-9)  # one day: y = k * 1^p
    assert block["window_capacity_loss"] == 0.0 and block["window"]["aging_s"] == 0.0


def test_turning_points_cut_windows_and_shallow_cycles_are_flagged(client: TestClient) -> None:
    i = 0.3 * CAPACITY_AH  # 0.3C: inside the fitted rates
    down = [{"dt_s": 60.0, "current_a": i, "ambient_c": 25}] * 60  # 30 % of SOC down
    up = [{"dt_s": 60.0, "current_a": -i, "ambient_c": 25}] * 30
    out = step(
        client, vehicle_id="nrel-cycle", state={"soc": 0.8, "temperature_c": 25}, samples=down + up
    )
    block = out["state"]["aging"]["nrel_lfp250"]
    assert block["cyc_capacity_loss"] > 0.0  # the discharge window was cut at the turn
    assert block["window"]["direction"] == 1
    tel = out["telemetry"]
    assert tel["aging_out_of_range"] is True
    assert tel["aging_out_of_range_stressors"] == ["dod"]  # 0.3 deep, fitted on 0.8-1


def test_fast_charge_cold_is_flagged(client: TestClient) -> None:
    """On a cycler (a vehicle's BMS would refuse this charge), a 1C charge at 0 degC leaves the
    model's fitted range in temperature and charge rate."""
    charge = [{"dt_s": 60.0, "current_a": -CAPACITY_AH, "ambient_c": 0.0}] * 50
    back = [{"dt_s": 60.0, "current_a": 0.3 * CAPACITY_AH, "ambient_c": 0.0}] * 5
    out = step(
        client,
        vehicle=on_cycler(PRESETS["sv1ev3"]).model_dump(exclude_computed_fields=True),
        vehicle_id="nrel-cold",
        state={"soc": 0.1, "temperature_c": 0},
        samples=charge + back,
    )
    stressors = out["telemetry"]["aging_out_of_range_stressors"]
    assert {"temperature", "charge_c_rate"} <= set(stressors)


def test_a_dc_fast_charge_is_flagged_even_when_followed_by_rest(client: TestClient) -> None:
    fast = [{"dt_s": 60.0, "current_a": -1.5 * CAPACITY_AH, "ambient_c": 25}] * 20  # 1.5C
    rest = [{"dt_s": 600.0, "current_a": 0.0, "ambient_c": 25}] * 12
    drive = [{"dt_s": 60.0, "current_a": 0.3 * CAPACITY_AH, "ambient_c": 25}] * 5
    out = step(
        client,
        vehicle_id="nrel-dcfc",
        state={"soc": 0.2, "temperature_c": 25},
        samples=fast + rest + drive,
    )
    assert "charge_c_rate" in out["telemetry"]["aging_out_of_range_stressors"]
    slow = [{"dt_s": 600.0, "current_a": -0.3 * CAPACITY_AH, "ambient_c": 25}] * 10
    out = step(
        client, vehicle_id="nrel-ac", state={"soc": 0.2, "temperature_c": 25}, samples=slow + drive
    )
    assert "charge_c_rate" not in out["telemetry"]["aging_out_of_range_stressors"]


def test_one_efc_cuts_a_window(client: TestClient) -> None:
    """A monotone discharge of 0.9 of the capacity is 0.45 EFC: no cut (no turning point,
    under a day). With aging time x3 it is 1.35 EFC, so a window closes inside the run."""
    run = [{"dt_s": 60.0, "current_a": 0.5 * CAPACITY_AH, "ambient_c": 25}] * 108
    for multiplier, cut in ((1, False), (3, True)):
        out = step(
            client,
            vehicle_id=f"nrel-efc{multiplier}",
            state={"soc": 0.95, "temperature_c": 25},
            samples=run,
            options={**MODEL, "time_multiplier": multiplier},
        )
        block = out["state"]["aging"]["nrel_lfp250"]
        assert block["window"]["direction"] == -1  # still the same half-cycle
        assert (block["cyc_capacity_loss"] > 0.0) == cut
        assert block["window"]["efc"] < 1.0


def test_cycling_follows_the_closed_form(client: TestClient) -> None:
    """Cycles between 90 % and 10 % SOC at 0.5C and 25 degC, the pack held at 25 degC by a
    cooling loop: the cycle loss follows k_cyc * EFC^0.828 with DOD 0.8 and C 0.5/h (the
    window's mean |dSOC/dt|), within the first-order error of the half-cycle updates."""
    vehicle = on_cycler(PRESETS["sv1ev3"], isothermal=True).model_dump(exclude_computed_fields=True)
    i = 0.5 * CAPACITY_AH
    cycle = [{"dt_s": 480.0, "current_a": i, "ambient_c": 25}] * 12 + [
        {"dt_s": 480.0, "current_a": -i, "ambient_c": 25}
    ] * 12
    out = step(
        client,
        vehicle_id="nrel-cyc",
        vehicle=vehicle,
        state={"soc": 0.9, "temperature_c": 25},
        samples=cycle * 50,
    )
    assert not any(out["telemetry"]["aging_out_of_range_stressors"])
    st = out["state"]
    efc = st["throughput_ah"] / (2 * CAPACITY_AH)
    assert efc == pytest.approx(40.0, rel=1e-6)
    t = 298.15
    f_t = math.exp(2.19e3 / t) + math.exp(-1.55e5 / t)
    k_cyc = (4.38e-8 + 1.55e-8 * 0.8 + 1.68e-7 * 0.5) * f_t
    assert st["aging"]["nrel_lfp250"]["cyc_capacity_loss"] == pytest.approx(
        k_cyc * efc**0.828, rel=0.02
    )


def test_a_seeded_pack_continues_on_virtual_time(client: TestClient) -> None:
    fresh = storage(client, "nrel-fresh", 0.5, 25.0, 30)
    seeded = step(
        client,
        vehicle_id="nrel-seeded",
        state={"soc": 0.5, "temperature_c": 25, "soh": 0.98},
        samples=[{"dt_s": 86400, "current_a": 0, "ambient_c": 25}] * 30,
    )
    assert seeded["state"]["aging"]["nrel_lfp250"]["cal_capacity_loss"] > 0.02
    seeded_rate = 0.98 - seeded["state"]["soh"]
    fresh_rate = 1 - fresh["state"]["soh"]
    assert 0 < seeded_rate < fresh_rate  # a power law slows as the loss grows


def test_forecast_storage_matches_step(client: TestClient) -> None:
    stepped = storage(client, "nrel-store", 0.9, 30.0, 365)
    usage = {"daily_km": 0, "soc_min": 0.5, "soc_max": 0.9, "ambient_c": 30.0}
    r = client.post("/forecast", json={"years": 1, "aging_model": "nrel_lfp250", "usage": usage})
    assert r.status_code == 200, r.text
    assert r.json()["aging_model"] == "nrel_lfp250"
    assert r.json()["points"][-1]["soh"] == pytest.approx(stepped["state"]["soh"], abs=5e-4)


def test_compare_models_gives_every_physical_model(client: TestClient) -> None:
    r = client.post("/forecast", json={"years": 10, "compare_models": True})
    assert r.status_code == 200, r.text
    body = r.json()
    models = [m["aging_model"] for m in body["by_model"]]
    assert models == ["naumann", "nrel_lfp250"]  # the demo model is not a physical model
    soh10 = {m["aging_model"]: m["points"][-1]["soh"] for m in body["by_model"]}
    assert soh10["naumann"] != soh10["nrel_lfp250"]
    assert body["points"] == body["by_model"][0]["points"]  # the default model's own run


def test_models_endpoint_describes_it(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/models").json()}
    nrel = models["nrel_lfp250"]
    assert nrel["outputs"] == ["capacity"]
    assert nrel["validity"]["cycling_temperature_c"] == [10.0, 45.0]
    assert nrel["validity"]["max_charge_c_rate"] == 0.65
    assert "doi:10.1016/j.est.2023.109042" in nrel["sources"]
    assert {f["name"] for f in nrel["state"]} >= {"cal_capacity_loss", "cyc_capacity_loss"}


def test_a_bad_window_field_is_declined_by_the_fast_reader(client: TestClient) -> None:
    out = storage(client, "nrel-wire", 0.5, 25.0, 1)
    raw = out["state"]
    assert read_fast(LAYOUT, raw) is not None
    raw["aging"]["nrel_lfp250"]["window"]["efc"] = -1.0
    assert read_fast(LAYOUT, raw) is None
    r = client.post("/step", json={"state": raw, "samples": [{"dt_s": 1, "power_kw": 1}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == [
        "body",
        "state",
        "aging",
        "nrel_lfp250",
        "window",
        "efc",
    ]
