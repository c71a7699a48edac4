"""The pack state, declared once.

Every field the step loop integrates is declared here (the pack's own) or in an aging model's
module (its internal states), with its unit, bounds, default and owner. From the declaration
come the kernel's vector layout, the JSON shape of `state` on the wire, its bounds in the
OpenAPI schema, the fast reader and the migration of older schema versions.

On the wire, pack fields sit at the top level and each aging model's fields under
`aging.<model>` (a field's `group` nests it one level deeper, e.g. `half_cycle`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

STATE_SCHEMA_VERSION = 3
# A stored state's `rev` (wire metadata, not physics): an integer a JSON number holds exactly.
MAX_REV = 2**53 - 1
_BIG = 1.7976931348623157e308  # the largest float: "no upper bound", and still rejects inf


@dataclass(frozen=True)
class StateField:
    name: str
    unit: str
    description: str
    low: float = 0.0  # inclusive bounds on the wire
    high: float = _BIG
    default: float | str = 0.0  # a number, or the name of a pack field it starts from
    direction: bool = False  # takes only -1, 0 or 1
    group: str | None = None  # wire sub-object inside the owner's block


@dataclass(frozen=True)
class StateBlock:
    """The fields one owner keeps in the state vector, in vector order."""

    owner: str
    fields: tuple[StateField, ...]

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {f.name: i for i, f in enumerate(self.fields)}

    def index(self, name: str) -> int:
        try:
            return self._positions[name]
        except KeyError:
            raise KeyError(f"{self.owner} has no state field {name!r}") from None

    def __len__(self) -> int:
        return len(self.fields)

    @cached_property
    def wire_keys(self) -> tuple[frozenset[str], tuple[tuple[str, frozenset[str]], ...]]:
        """The keys of the block's wire object, and of each of its groups."""
        groups: dict[str, set[str]] = {}
        plain: set[str] = set()
        for f in self.fields:
            if f.group is None:
                plain.add(f.name)
            else:
                plain.add(f.group)
                groups.setdefault(f.group, set()).add(f.name)
        return frozenset(plain), tuple((g, frozenset(k)) for g, k in groups.items())

    @cached_property
    def wire_fields(self) -> tuple[tuple[str | None, str, float, float, bool], ...]:
        """(group, name, low, high, direction) of each field, in vector order."""
        return tuple((f.group, f.name, f.low, f.high, f.direction) for f in self.fields)


PACK = StateBlock(
    "pack",
    (
        StateField("soc", "1", "state of charge of the aged capacity", 0.0, 1.0, 0.85),
        StateField("temperature_c", "degC", "lumped pack temperature", -60.0, 150.0, 25.0),
        StateField("v_rc_v", "V", "RC-branch voltage", -1e4, 1e4),
        StateField("ambient_c", "degC", "ambient of the last sample", -60.0, 80.0, 25.0),
        StateField("elapsed_s", "s", "simulated time"),
        StateField("aged_s", "s", "aging time (time multiplier applied)"),
        StateField("total_distance_km", "km", "distance driven"),
        StateField("energy_discharged_kwh", "kWh", "terminal energy out"),
        StateField("energy_charged_kwh", "kWh", "terminal energy in (regeneration, charging)"),
        StateField("throughput_ah", "Ah", "charge throughput"),
        StateField("hysteresis_v", "V", "OCV hysteresis per cell (+ after charge)", -1.0, 1.0),
        StateField("tms_energy_kwh", "kWh", "electrical energy used by thermal management"),
    ),
)

# Reported on the wire, derived from the vector; read back only to check their bounds.
DERIVED: dict[str, tuple[float, float, str]] = {
    "soh": (0.0, 1.0, "capacity fraction left (1 - every model's capacity loss)"),
    "resistance_factor": (1.0, _BIG, "resistance relative to new (1 + every model's increase)"),
    "cycle_count": (0.0, _BIG, "equivalent full cycles: throughput / (2 capacity)"),
}


_Span = tuple[int, int, tuple[tuple[int, int], ...]]  # start, stop, (position, pack position)


@dataclass(frozen=True)
class StateLayout:
    """Where each block sits in the state vector (the pack first, at offset 0)."""

    blocks: tuple[StateBlock, ...]
    offsets: np.ndarray = field(init=False, repr=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        assert self.blocks[0] is PACK
        starts = np.cumsum([0] + [len(b) for b in self.blocks[:-1]]).astype(np.int64)
        object.__setattr__(self, "offsets", starts)
        object.__setattr__(self, "size", int(sum(len(b) for b in self.blocks)))

    @cached_property
    def _by_owner(self) -> dict[str, tuple[StateBlock, int]]:
        return {
            b.owner: (b, off) for b, off in zip(self.blocks, self.offsets.tolist(), strict=True)
        }

    def block(self, owner: str) -> StateBlock:
        return self._by_owner[owner][0]

    def offset(self, owner: str) -> int:
        return self._by_owner[owner][1]

    def position(self, owner: str, name: str) -> int:
        """Where `owner`'s field `name` sits in the vector."""
        block, off = self._by_owner[owner]
        return off + block.index(name)

    def positions(self, owner: str, names: Iterable[str]) -> list[int]:
        return [self.position(owner, n) for n in names]

    def aging_blocks(self) -> Iterator[tuple[StateBlock, int]]:
        yield from zip(self.blocks[1:], self.offsets[1:].tolist(), strict=True)

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Low and high bound of every vector entry, and its wire path
        (`aging.naumann.half_cycle.ah`)."""
        low, high, paths = [], [], []
        for b, _ in zip(self.blocks, self.offsets.tolist(), strict=True):
            for f in b.fields:
                low.append(f.low)
                high.append(f.high)
                parts = [] if b is PACK else ["aging", b.owner]
                paths.append(".".join([*parts, *([f.group] if f.group else []), f.name]))
        return np.array(low), np.array(high), tuple(paths)

    @cached_property
    def _check_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high, _ = self.bounds
        low, high = low.copy(), high.copy()
        low[0], high[0] = -1e-6, 1.0 + 1e-6  # SOC: the wire clamps rounding errors
        return low, high

    def out_of_bounds(self, vec: np.ndarray) -> list[tuple[str, float, float, float]]:
        """(wire path, value, low, high) of every entry that is not finite or outside its
        wire bounds: a state the service would refuse to read back. SOC may pass its bounds
        by a rounding error (the wire clamps it)."""
        low, high = self._check_bounds
        bad = ~((vec >= low) & (vec <= high))  # NaN fails both
        if not bad.any():
            return []
        wire_low, wire_high, paths = self.bounds
        return [
            (paths[i], float(vec[i]), float(wire_low[i]), float(wire_high[i]))
            for i in np.flatnonzero(bad).tolist()
        ]

    @cached_property
    def _defaults(self) -> tuple[np.ndarray, dict[str, _Span]]:
        """Every field's constant default (NaN for a field that starts from a pack field), and
        per block its span and (position, pack position) of each such field."""
        constants = np.full(self.size, math.nan)
        spans = {}
        for b, off in zip(self.blocks, self.offsets.tolist(), strict=True):
            copies = []
            for i, f in enumerate(b.fields):
                if isinstance(f.default, str):
                    source = PACK.fields[PACK.index(f.default)]
                    assert b is not PACK and not isinstance(source.default, str)
                    copies.append((off + i, PACK.index(f.default)))
                else:
                    constants[off + i] = float(f.default)
            spans[b.owner] = (off, off + len(b), tuple(copies))
        return constants, spans

    def defaults(self) -> np.ndarray:
        """A new pack: every field at its default (fields that start from a pack field take
        that field's default)."""
        constants, spans = self._defaults
        vec = constants.copy()
        for _, _, copies in spans.values():
            for position, source in copies:
                vec[position] = vec[source]
        return vec

    def fresh_block(self, owner: str, vec: np.ndarray) -> None:
        """Set one aging model's fields in `vec` to a fresh start from the pack's state."""
        constants, spans = self._defaults
        start, stop, copies = spans[owner]
        vec[start:stop] = constants[start:stop]
        for position, source in copies:
            vec[position] = vec[source]


# -- wire ------------------------------------------------------------------------------------


def _block_to_wire(block: StateBlock, values: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (group, name, _, _, direction), v in zip(block.wire_fields, values, strict=True):
        value: float | int = int(v) if direction else v
        if group is None:
            out[name] = value
        else:
            sub = out.get(group)
            if sub is None:
                sub = out[group] = {}
            sub[name] = value
    return out


def to_wire(
    layout: StateLayout, vec: np.ndarray, soh: float, resistance_factor: float, capacity_ah: float
) -> dict[str, Any]:
    """The `state` object of a /step response."""
    v = vec.tolist()  # Python floats
    wire: dict[str, Any] = {"schema_version": STATE_SCHEMA_VERSION}
    wire.update(zip(_PACK_NAMES, v, strict=False))
    # A pack emptied exactly to its limit can end a few ulps below 0.
    wire["soc"] = min(1.0, max(0.0, wire["soc"]))
    wire["soh"] = soh
    wire["resistance_factor"] = resistance_factor
    wire["cycle_count"] = wire["throughput_ah"] / (2.0 * capacity_ah)
    wire["aging"] = {
        block.owner: _block_to_wire(block, v[off : off + len(block)])
        for block, off in layout.aging_blocks()
    }
    return wire


_PACK_NAMES = tuple(f.name for f in PACK.fields)
_TOP_KEYS = frozenset({"schema_version", *_PACK_NAMES, *DERIVED, "aging"})
_TOP_KEYS_REV = _TOP_KEYS | {"rev"}  # a stored state carries its rev (not read here)


def _number_ok(v: Any, low: float, high: float, direction: bool) -> bool:
    """v is a number the field accepts (bool and NaN are not)."""
    t = type(v)
    if direction:
        return t is int and -1 <= v <= 1
    return (t is float or t is int) and low <= v <= high  # False for NaN


def _read_block(block: StateBlock, raw: Any, out: list[float]) -> bool:
    """Append the block's values from its wire object; False if it is not exactly valid."""
    keys, groups = block.wire_keys
    if type(raw) is not dict or raw.keys() != keys:
        return False
    for group_name, group_keys in groups:
        sub = raw[group_name]
        if type(sub) is not dict or sub.keys() != group_keys:
            return False
    for group, name, low, high, direction in block.wire_fields:
        v = (raw if group is None else raw[group])[name]
        if not _number_ok(v, low, high, direction):
            return False
        out.append(float(v))
    return True


def read_fast(layout: StateLayout, raw: dict[str, Any]) -> np.ndarray | None:
    """The vector of a current-version state that the wire schema certainly accepts, read
    without pydantic; None for anything else (the schema then names the errors). A missing
    aging model block (a model newer than the state) starts fresh."""
    version = raw.get("schema_version")
    if type(version) is not int or version != STATE_SCHEMA_VERSION:
        return None
    keys = raw.keys()
    if keys != _TOP_KEYS and not (
        keys == _TOP_KEYS_REV and type(raw["rev"]) is int and 0 <= raw["rev"] <= MAX_REV
    ):
        return None
    values: list[float] = []
    for _, name, low, high, direction in PACK.wire_fields:
        v = raw[name]
        if not _number_ok(v, low, high, direction):
            return None
        values.append(float(v))
    for name, (low, high, _) in DERIVED.items():
        if not _number_ok(raw[name], low, high, False):
            return None
    aging = raw["aging"]
    if type(aging) is not dict:
        return None
    missing = []
    known = 0
    for block, _ in layout.aging_blocks():
        if block.owner not in aging:
            missing.append(block.owner)
            values.extend([math.nan] * len(block))
            continue
        known += 1
        if not _read_block(block, aging[block.owner], values):
            return None
    if known != len(aging):
        return None  # an unknown model
    vec = np.array(values)
    for owner in missing:
        layout.fresh_block(owner, vec)
    return vec


def from_validated(layout: StateLayout, wire: Mapping[str, Any]) -> np.ndarray:
    """The vector of a state the wire schema accepted (as a plain dict, `aging` blocks absent
    or None where the state predates the model)."""
    vec = np.empty(layout.size)
    for i, f in enumerate(PACK.fields):
        vec[i] = float(wire[f.name])
    aging = wire.get("aging") or {}
    for block, off in layout.aging_blocks():
        raw = aging.get(block.owner)
        if raw is None:
            layout.fresh_block(block.owner, vec)
            continue
        for i, f in enumerate(block.fields):
            src = raw if f.group is None else raw[f.group]
            vec[off + i] = float(src[f.name])
    return vec


# -- migrations: each takes a state of version N (as sent) and returns version N + 1 ------------


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept every model's fields flat in `aging`; version 2 nests them by model."""
    out = dict(raw)
    aging = raw.get("aging")
    if isinstance(aging, dict):
        naumann = {
            k: aging[k]
            for k in (
                "cal_capacity_loss",
                "cal_resistance_increase",
                "cyc_capacity_loss",
                "cyc_resistance_increase",
            )
            if k in aging
        }
        half_cycle = aging.get("half_cycle")
        if isinstance(half_cycle, dict):
            half_cycle = {"direction": 0, **half_cycle}  # version 1 allowed it to be omitted
        naumann["half_cycle"] = half_cycle
        new_aging: dict[str, Any] = {"naumann": naumann}
        if "seed_capacity_loss" in aging:
            new_aging["seed"] = {"capacity_loss": aging["seed_capacity_loss"]}
        extra = set(aging) - {*naumann, "seed_capacity_loss", "half_cycle"}
        for k in extra:  # left for the schema to reject by name
            new_aging[k] = aging[k]
        out["aging"] = new_aging
    out["schema_version"] = 2
    return out


def _v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 3 adds the OCV hysteresis and the thermal management's energy, both 0 before."""
    out = {"hysteresis_v": 0.0, "tms_energy_kwh": 0.0, **raw}
    out["schema_version"] = 3
    return out


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A state of an older schema_version brought to the current one (unchanged if current).
    Raises ValueError for a version this service cannot read."""
    version = raw.get("schema_version")
    if type(version) is not int or not 1 <= version <= STATE_SCHEMA_VERSION:
        raise ValueError(
            f"unsupported state schema_version {version!r}; this service reads versions "
            f"1..{STATE_SCHEMA_VERSION}"
        )
    while version < STATE_SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
    return raw
