"""Invariants of the model core over random drives (hypothesis, derandomized so every run
checks the same drives): charge and energy balance, batch = chained single samples,
sample-rate independence, monotone aging, the state's round trip through the wire, and that
each registered model advances only its own state."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin_service.models import aging
from twin_service.models.aging import LAYOUT, MODEL_IDS, MODEL_NAMES, OFFSETS, REGISTRY
from twin_service.models.pack import (
    AgingSettings,
    DriveInput,
    PackState,
    new_pack_state,
    simulate,
)
from twin_service.models.state import PACK, read_fast, to_wire
from twin_service.presets import PRESETS, pack_params

PARAMS = {name: pack_params(p) for name, p in PRESETS.items()}
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

sample = st.tuples(
    st.sampled_from([0.05, 0.5, 1.0, 7.0, 30.0, 600.0, 5000.0]),  # dt_s
    st.sampled_from(["power", "current", "rest"]),
    st.floats(-1.0, 1.0),  # demand as a fraction of a large power / current
    st.floats(-10.0, 40.0),  # ambient
)
drives = st.lists(sample, min_size=1, max_size=40)


def to_drive(samples: list[tuple[float, str, float, float]]) -> DriveInput:
    dt, power, current, ambient = [], [], [], []
    for dt_s, kind, x, amb in samples:
        dt.append(dt_s)
        power.append(x * 250e3 if kind == "power" else (0.0 if kind == "rest" else math.nan))
        current.append(x * 500.0 if kind == "current" else math.nan)
        ambient.append(amb)
    n = len(dt)
    return DriveInput(np.array(dt), np.array(power), np.array(current), np.array(ambient),
                      np.full(n, 3.0))  # fmt: skip


def start_state(soc: float, model: str) -> PackState:
    return new_pack_state(soc, 20.0, soh=0.97, resistance_factor=1.02, aging_model=model)


COMMITTED = {
    "naumann": (
        "cal_capacity_loss",
        "cal_resistance_increase",
        "loss_sq_start",
        "resistance_start",
    ),
    "seed": ("capacity_loss",),
    "nrel_lfp250": ("cal_capacity_loss", "cyc_capacity_loss"),
}
common = {
    "samples": drives,
    "preset": st.sampled_from(sorted(PRESETS)),
    "model": st.sampled_from(MODEL_NAMES),
    "multiplier": st.sampled_from([1.0, 1000.0]),
    "soc": st.floats(0.05, 0.95),
}


@PROPERTY
@given(**common)
def test_charge_and_energy_balance(samples, preset, model, multiplier, soc) -> None:  # type: ignore[no-untyped-def]
    params = PARAMS[preset]
    start = start_state(soc, model)
    # Samples of one sub-step (the capacity then holds over each sample); sub-stepped ones are
    # the batch-equals-chain property's.
    drive = to_drive([(min(dt, 7.0), kind, x, amb) for dt, kind, x, amb in samples])
    r = simulate(params, start, drive, AgingSettings(model, multiplier))
    charge = np.sum(r.current_a * drive.dt_s)
    moved = np.sum(np.abs(r.current_a * drive.dt_s))
    # Coulomb counting against the aged capacity at each sample's start.
    soh = np.concatenate(([start.soh], r.soh[:-1]))
    d_soc = -np.diff(np.concatenate(([soc], r.soc)))
    from_soc = np.sum(d_soc * np.maximum(soh, 0.05)) * params.capacity_ah * 3600
    assert abs(from_soc - charge) <= 1e-9 * max(moved, 1.0)
    s = r.state
    assert s.throughput_ah - start.throughput_ah == pytest.approx(moved / 3600, rel=1e-9, abs=1e-12)
    net_kwh = np.sum(r.voltage_v * r.current_a * drive.dt_s) / 3.6e6
    counters = s.energy_discharged_kwh - s.energy_charged_kwh
    assert net_kwh == pytest.approx(counters, rel=1e-9, abs=1e-9)
    assert np.all(r.soc >= -1e-12) and np.all(r.soc <= 1 + 1e-12)
    assert np.all(np.isfinite(r.temperature_c)) and np.all(np.isfinite(r.voltage_v))


@PROPERTY
@given(**common)
def test_batch_equals_chained_single_samples(samples, preset, model, multiplier, soc) -> None:  # type: ignore[no-untyped-def]
    params = PARAMS[preset]
    settings_ = AgingSettings(model, multiplier)
    drive = to_drive(samples)
    batch = simulate(params, start_state(soc, model), drive, settings_)
    state = start_state(soc, model)
    for k in range(len(drive)):
        one = DriveInput(
            *(
                getattr(drive, f)[k : k + 1]
                for f in ("dt_s", "power_w", "current_a", "ambient_c", "distance_m")
            )
        )
        state = simulate(params, state, one, settings_).state
    np.testing.assert_allclose(state.vector, batch.state.vector, rtol=1e-9, atol=1e-12)


@PROPERTY
@given(
    preset=st.sampled_from(sorted(PRESETS)),
    model=st.sampled_from(MODEL_NAMES),
    power_kw=st.floats(-60.0, 120.0),
    soc=st.floats(0.3, 0.9),
)
def test_sample_rate_does_not_change_the_result(preset, model, power_kw, soc) -> None:  # type: ignore[no-untyped-def]
    """Ten minutes of constant power at 20 Hz, 1 Hz and in one sample (60 sub-steps of 10 s)
    end within 0.2 % of the SOC swing, 1 % of the temperature rise and 1 % of the capacity
    loss of each other: each sub-step is exact for its current; only the OCV, the resistance
    and the aging rates are held over it."""
    params = PARAMS[preset]
    start = start_state(soc, model)
    results = []
    for dt in (0.05, 1.0, 600.0):
        n = int(round(600.0 / dt))
        drive = DriveInput(np.full(n, dt), np.full(n, power_kw * 1e3), np.full(n, np.nan),
                           np.full(n, 25.0), np.zeros(n))  # fmt: skip
        results.append(simulate(params, start, drive, AgingSettings(model)).state)
    ref = results[0]
    swing = abs(ref.soc - start.soc)
    rise = abs(ref.temperature_c - start.temperature_c)
    loss = start.soh - ref.soh
    for other in results[1:]:
        assert abs(other.soc - ref.soc) <= 2e-3 * swing + 1e-9
        assert abs(other.temperature_c - ref.temperature_c) <= 1e-2 * rise + 1e-6
        assert abs(other.soh - ref.soh) <= 1e-2 * loss + 1e-8


@PROPERTY
@given(**common)
def test_aging_never_heals_and_the_wire_round_trips(
    samples, preset, model, multiplier, soc
) -> None:  # type: ignore[no-untyped-def]
    params = PARAMS[preset]
    start = start_state(soc, model)
    r = simulate(params, start, to_drive(samples), AgingSettings(model, multiplier))
    s = r.state
    # What a model has booked never heals. (The running half-cycle's or stress window's share
    # is re-evaluated at its mean C-rate and may move both ways until it closes.)
    for name, fields in COMMITTED.items():
        for f in fields:
            assert s.field(name, f) >= start.field(name, f) - 1e-15, (name, f)
    if model == "seed":
        assert np.all(np.diff(np.concatenate(([start.soh], r.soh))) <= 1e-15)
    wire = to_wire(LAYOUT, s.vector, s.soh, s.resistance_factor, params.capacity_ah)
    if wire["soh"] > 0.0 and all(  # a pack aged past its end is reported, not continued
        f.low <= v <= f.high for f, v in zip(PACK.fields, s.vector, strict=False)
    ):
        back = read_fast(LAYOUT, wire)
        assert back is not None
        soc_i = PACK.index("soc")
        np.testing.assert_array_equal(np.delete(back, soc_i), np.delete(s.vector, soc_i))


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_each_model_advances_only_its_own_state(model: str) -> None:
    params = PARAMS["sv1ev3"]
    start = start_state(0.8, model)
    drive = to_drive([(60.0, "power", 0.4, 25.0)] * 30 + [(60.0, "current", -0.3, 25.0)] * 30)
    end = simulate(params, start, drive, AgingSettings(model, 100.0)).state
    for block, off in LAYOUT.aging_blocks():
        sl = slice(off, off + len(block))
        changed = not np.array_equal(start.vector[sl], end.vector[sl])
        assert changed == (block.owner == model), block.owner
    assert end.soh < start.soh


def test_capacity_and_resistance_terms_are_each_models_own_fields() -> None:
    """SOH and the resistance factor sum the registered terms in registry order: a loss put
    in one model's term moves SOH by exactly that, and every term is a field of its model."""
    for m in REGISTRY:
        off = LAYOUT.offset(m.name)
        own = range(off, off + len(m.state))
        for f in m.capacity_terms:
            vec = np.zeros(LAYOUT.size)
            vec[off + m.state.index(f)] = 0.25
            assert aging.state_of_health(vec, aging.CAPACITY_TERMS) == 0.75
        for f in m.resistance_terms:
            vec = np.zeros(LAYOUT.size)
            vec[off + m.state.index(f)] = 0.25
            assert aging.resistance_factor(vec, aging.RESISTANCE_TERMS) == 1.25
        assert sum(i in own for i in aging.CAPACITY_TERMS.tolist()) == len(m.capacity_terms)
    assert MODEL_IDS == {m.name: i for i, m in enumerate(REGISTRY)}
    assert OFFSETS.tolist() == [LAYOUT.offset(m.name) for m in REGISTRY]
