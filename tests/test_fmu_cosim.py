"""`PackCosim`, the model side of the FMU, against /step's service function on random runs:
any step sizes (sub-microsecond steps held, steps over a day cut), inputs and modes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin_service.fmu.cosim import MAX_SAMPLE_S, CosimError, PackCosim, load_vehicle
from twin_service.step.service import run_step

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

steps = st.lists(
    st.tuples(
        st.one_of(st.floats(1e-3, 30.0), st.sampled_from([1e-9, 3600.0, 2.5 * 86400.0])),
        st.floats(-250.0, 400.0),  # current (A) or power (kW / 2)
        st.floats(-20.0, 45.0),  # ambient
        st.booleans(),  # charging
    ),
    min_size=1,
    max_size=25,
)


@PROPERTY
@given(
    steps=steps,
    mode=st.sampled_from(["current", "power"]),
    vehicle=st.sampled_from(["sv1ev3", "Model3_2024"]),
    soc=st.floats(0.1, 1.0),
    aging=st.sampled_from(["", "naumann", "nrel_lfp250", "seed"]),
)
def test_chained_steps_equal_one_step_batch(
    steps: list[tuple[float, float, float, bool]], mode: str, vehicle: str, soc: float, aging: str
) -> None:
    # /step seeds the pack at its first sample's ambient, the FMU at the ambient it starts
    # with: the first step is a taken one so that the two are the same
    steps = [(max(steps[0][0], 1e-3), *steps[0][1:]), *steps[1:]]
    model = PackCosim(vehicle=vehicle, input_mode=mode, initial_soc=soc, aging_model=aging)
    model.ambient_c = steps[0][2]
    model.start()
    samples: list[dict[str, Any]] = []
    ends: list[int] = []  # the sample after which each taken step ends
    for dt, value, ambient, charging in steps:
        model.current_a, model.power_kw = value, value / 2.0
        model.ambient_c, model.charging = ambient, charging
        samples += model.samples(dt)
        model.step(dt)
        ends.append(len(samples))
    body = {"vehicle": vehicle, "state": {"soc": soc}, "samples": samples,
            "options": {"trace": True, "store": False, "aging_model": aging or None}}  # fmt: skip
    out = run_step(body, "sv1ev3", 10_000)
    assert out.trace is not None and isinstance(out.trace, list)
    last = out.trace[-1]
    o = model.outputs
    assert o is not None
    for ours, theirs in ((o.soc, last["soc"]), (o.voltage_v, last["voltage"]),
                         (o.current_a, last["current"]), (o.temperature_c, last["temperature"]),
                         (o.soh, last["soh"]), (o.power_kw, last["power_kw"])):  # fmt: skip
        assert abs(ours - theirs) <= 1e-9
    assert model.wire_state() == out.state
    assert all(s["dt_s"] <= MAX_SAMPLE_S for s in samples)


def test_tiny_steps_are_held_for_the_next_one() -> None:
    model = PackCosim(initial_soc=0.5)
    model.start()
    model.current_a = 100.0
    before = model.get_state()
    model.step(4e-7)
    model.step(4e-7)
    assert model.get_state()["vector"] == before["vector"] and model.held_s == pytest.approx(8e-7)
    assert model.samples(0.5) == [{"dt_s": 0.5 + 8e-7, "current_a": 100.0, "ambient_c": 25.0}]
    model.step(0.5)
    assert model.held_s == 0.0 and model.time_s == pytest.approx(0.5 + 8e-7)


def test_state_round_trip_and_refusals() -> None:
    model = PackCosim(initial_soc=0.6)
    model.start()
    model.current_a = 200.0
    model.step(10.0)
    saved = model.get_state()
    first = model.step(10.0)
    model.set_state(saved)
    assert model.step(10.0) == first
    with pytest.raises(CosimError, match="format"):
        model.set_state({"format": 99})
    before = model.get_state()
    model.current_a = 1e6
    with pytest.raises(CosimError, match="current_a"):
        model.step(1.0)
    assert model.get_state() == before  # a refused step changes nothing
    model.current_a = 0.0
    assert model.step(1.0).current_a == 0.0
    with pytest.raises(CosimError, match="input_mode"):
        PackCosim(input_mode="torque").start()
    for alias, mode in (("current_a", "current"), ("power_kw", "power")):
        aliased = PackCosim(input_mode=alias)
        aliased.start()
        assert aliased.input_mode == mode
    with pytest.raises(CosimError, match="aging_model"):
        PackCosim(aging_model="wrong").start()
    with pytest.raises(CosimError, match="initial_soc|soc"):
        PackCosim(initial_soc=1.5).start()
    with pytest.raises(CosimError, match="ambient_c"):
        PackCosim(ambient_c=200.0).start()


def test_vehicle_references() -> None:
    assert load_vehicle("").id == "sv1ev3"
    assert load_vehicle("Model3_2024").id == "Model3_2024"
    inline = load_vehicle('{"base": "sv1ev3", "pack": {"cells_series": 100}}')
    assert inline.pack.cells_series == 100
    with pytest.raises(CosimError, match="unknown preset"):
        load_vehicle("nope")
    with pytest.raises(CosimError, match="not valid JSON"):
        load_vehicle("{nope")
