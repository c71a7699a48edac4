"""The state declaration: schema-1 states migrate to the current layout with every number
kept, the wire schema and the registry agree, and the bridge offers the registry's models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.__main__ import build_parser
from twin_service.models.aging import LAYOUT, MODEL_NAMES, REGISTRY
from twin_service.models.state import PACK, STATE_SCHEMA_VERSION, migrate, read_fast
from twin_service.schemas import AgingState, PackStateWire

V1_STATES = sorted((Path(__file__).parent / "fixtures").glob("state_v1_*.json"))


@pytest.mark.parametrize("path", V1_STATES, ids=lambda p: p.stem)
def test_schema_1_state_migrates_with_every_number(path: Path) -> None:
    v1 = json.loads(path.read_text())["request"]["state"]
    assert v1["schema_version"] == 1
    v2 = migrate(v1)
    assert v2["schema_version"] == STATE_SCHEMA_VERSION
    vec = read_fast(LAYOUT, v2)
    assert vec is not None  # the migrated state is a valid current state
    for f in PACK.fields:
        # fields added in schema 3 start from 0 (no hysteresis, no thermal management yet)
        assert vec[PACK.index(f.name)] == v1.get(f.name, 0.0)
    assert {f.name for f in PACK.fields} - set(v1) == {"hysteresis_v", "tms_energy_kwh"}
    old = v1["aging"]
    naumann = LAYOUT.block("naumann")
    off = LAYOUT.offset("naumann")
    for name in ("cal_capacity_loss", "cal_resistance_increase", "cyc_capacity_loss",
                 "cyc_resistance_increase"):  # fmt: skip
        assert vec[off + naumann.index(name)] == old[name]
    for name, value in old["half_cycle"].items():
        assert vec[off + naumann.index(name)] == value
    seed_off = LAYOUT.offset("seed")
    assert vec[seed_off] == old["seed_capacity_loss"]
    PackStateWire.model_validate(v2)


def test_unknown_versions_are_refused() -> None:
    for version in (0, 99, "2", None, True):
        with pytest.raises(ValueError, match="schema_version"):
            migrate({"schema_version": version})


def test_wire_schema_has_a_block_per_registered_model() -> None:
    assert list(AgingState.model_fields) == [m.name for m in REGISTRY]
    for m in REGISTRY:
        assert LAYOUT.block(m.name) is m.state


def test_bridge_offers_the_registry_models(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for name in MODEL_NAMES:
        args = parser.parse_args(["cycle", "--aging-model", name])
        assert args.aging_model == name
    with pytest.raises(SystemExit):
        parser.parse_args(["cycle", "--aging-model", "bogus"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("soc, temperature", [(0.85, 25.0), (0.31, -7.5), (1.0, 44.0)])
def test_new_pack_fields_start_from_their_defaults(soc: float, temperature: float) -> None:
    """Every field of a new pack is its declared default, or the value of the pack field it
    names (a fresh aging block starts from the pack's SOC and temperature)."""
    import numpy as np

    from twin_service.models.pack import new_pack_state

    vec = new_pack_state(soc, temperature).vector
    expected = []
    for block in LAYOUT.blocks:
        for f in block.fields:
            if isinstance(f.default, str):
                expected.append(vec[PACK.index(f.default)])
            elif block is PACK and f.name == "soc":
                expected.append(soc)
            elif block is PACK and f.name in ("temperature_c", "ambient_c"):
                expected.append(temperature)
            else:
                expected.append(float(f.default))
    assert np.array_equal(vec, np.array(expected))
    assert any(isinstance(f.default, str) for b in LAYOUT.blocks for f in b.fields)
