"""Write the golden /step fixtures from today's model: `python -m tests.golden.generate`.

Request bodies are built deterministically (numpy default_rng with fixed seeds, no clock) and
run in-process through `twin_service.step.service.run_step`; each case stores the request and
the response (state, telemetry without its timestamp, trace). tests/test_golden.py replays the
requests and compares.

Outputs
  tests/fixtures/golden_steps.json.gz   all cases (gzip JSON, sorted keys, byte-reproducible)
  tests/fixtures/state_v1_*.json        three v1 states, each inside a request that continues it,
                                        with today's response to that request (same case format)

Chains: request k+1 of a chain carries the state returned by request k, written into the stored
request body, so every stored case replays on its own.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import math
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin_service.models import pack
from twin_service.presets import PRESETS
from twin_service.step.service import run_step

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN_PATH = FIXTURES / "golden_steps.json.gz"
STATE_PATHS = {
    "naumann_after_drive": FIXTURES / "state_v1_naumann_after_drive.json",
    "seed_demo": FIXTURES / "state_v1_seed_demo.json",
    "many_half_cycles": FIXTURES / "state_v1_many_half_cycles.json",
}
STATE_DESCRIPTIONS = {
    "naumann_after_drive": "request.state: a v1 state from 100 samples of naumann driving "
    "from a fresh sv1ev3 pack; request continues it, response is today's",
    "seed_demo": "request.state: a v1 state from 100 demo-mode (seed model, x10000) samples on "
    "Model3_2024; request continues it, response is today's",
    "many_half_cycles": "request.state: a v1 state after 2000 samples of alternating current "
    "(hundreds of completed half-cycles, naumann x50) on sv1ev3; request "
    "continues it, response is today's",
}
DEFAULT_VEHICLE = "sv1ev3"
MAX_SAMPLES = 200_000
FORMAT_VERSION = 1
BASE_SEED = 20_251_201
MAX_FIXTURE_BYTES = 3_000_000

CHAIN = "<state returned by the previous request>"  # placeholder, replaced before running


# ---------------------------------------------------------------------------------------------
# Building blocks


def inline_vehicle() -> dict[str, Any]:
    """sv1ev3 with other resistance, thermal mass, cooling and drivetrain figures."""
    v = PRESETS["sv1ev3"].model_dump(exclude_computed_fields=True)
    v["id"] = "golden-inline"
    v["name"] = "sv1ev3 variant for the golden tests"
    v["pack"]["cell_r0_ohm"] = 0.0011
    v["pack"]["heat_capacity_j_k"] = 60000.0
    v["pack"]["cooling_w_k"] = 40.0
    v["drivetrain"]["motor_peak_kw"] = 120.0
    v["drivetrain"]["aux_kw"] = 1.2
    return v


INLINE = inline_vehicle()
VEHICLES: dict[str, Any] = {"sv1": "sv1ev3", "m3": "Model3_2024", "inline": INLINE}


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, zlib.crc32(name.encode())])


def num(x: float, digits: int = 5) -> float:
    """A short decimal (inputs need not be full precision; short numbers keep the file small)."""
    return float(f"{float(x):.{digits}g}")


def log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def options(
    aging: str | None = None, demo: bool | None = None, multiplier: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"trace": True}
    if aging is not None:
        out["aging_model"] = aging
    if demo is not None:
        out["demo_mode"] = demo
    if multiplier is not None:
        out["time_multiplier"] = multiplier
    return out


def body(
    vehicle: str | None,
    samples: list[dict[str, Any]],
    *,
    state: Any = None,
    opts: dict[str, Any] | None = None,
    vehicle_id: str | None = None,
    omit_state: bool = False,
) -> dict[str, Any]:
    """A request body; `vehicle` is a VEHICLES key, None to leave it out (default preset)."""
    b: dict[str, Any] = {}
    if vehicle_id is not None:
        b["vehicle_id"] = vehicle_id
    if vehicle is not None:
        b["vehicle"] = copy.deepcopy(VEHICLES[vehicle])
    if not omit_state:
        b["state"] = state
    b["samples"] = samples
    b["options"] = opts if opts is not None else options()
    return b


def motors(
    rng: np.random.Generator, count: int, torque: tuple[float, float], speed: tuple[float, float]
) -> list[dict[str, float]]:
    return [
        {"torque_nm": num(rng.uniform(*torque)), "speed_rad_s": num(rng.uniform(*speed))}
        for _ in range(count)
    ]


def drive(
    rng: np.random.Generator,
    n: int,
    *,
    kinds: tuple[str, ...] = ("power",),
    dt: tuple[float, float] = (0.1, 2.0),
    power: tuple[float, float] = (-80.0, 150.0),
    current: tuple[float, float] = (-300.0, 500.0),
    torque: tuple[float, float] = (-400.0, 400.0),
    speed: tuple[float, float] = (0.0, 1500.0),
    aux: float = 0.0,
    ambient: str | None = None,
    ambient_range: tuple[float, float] = (-10.0, 40.0),
    wheel: float = 0.0,
    charging: float = 0.0,
    rest: float = 0.0,
    pedals: float = 0.0,
) -> list[dict[str, Any]]:
    """Random samples. kinds: "power", "current", "motors1", "motors2"; aux, wheel,
    charging, rest and pedals are per-sample probabilities; ambient None (never), "first",
    "some" (a changing value in about a fifth of the samples) or "all"."""
    dts = log_uniform(rng, dt[0], dt[1], n) if dt[0] < dt[1] else np.full(n, dt[0])
    amb = rng.uniform(*ambient_range)
    out = []
    for i in range(n):
        s: dict[str, Any] = {"dt_s": num(min(max(dts[i], 0.01), 86400.0), 4)}
        kind = kinds[int(rng.integers(len(kinds)))]
        is_rest = rng.random() < rest
        if kind == "power" or is_rest:
            p = 0.0 if is_rest else num(rng.uniform(*power))
            if not is_rest and rng.random() < charging:
                p = -abs(p) if p != 0.0 else -1.0
                s["charging"] = True
            s["power_kw"] = p
        elif kind == "current":
            c = num(rng.uniform(*current))
            if rng.random() < charging:
                c = -abs(c)
                s["charging"] = True
            s["current_a"] = c
        else:
            s["motors"] = motors(rng, 1 if kind == "motors1" else 2, torque, speed)
        if "current_a" not in s and rng.random() < aux:
            s["aux_kw"] = num(rng.uniform(0.0, 8.0), 3)
        if rng.random() < wheel:
            s["wheel_speed_m_s"] = num(rng.uniform(-5.0, 45.0), 4)
        if rng.random() < pedals:
            s["throttle"] = num(rng.uniform(0.0, 1.0), 3)
            s["brake"] = num(rng.uniform(0.0, 1.0), 3)
        if "charging" not in s and rng.random() < charging / 4:
            s["charging"] = False
        if (
            ambient == "all"
            or (ambient == "first" and i == 0)
            or (ambient == "some" and rng.random() < 0.2)
        ):
            amb = float(np.clip(amb + rng.normal(0.0, 3.0), -60.0, 80.0))
            s["ambient_c"] = num(amb, 4)
        out.append(s)
    return out


def seed_state(
    rng: np.random.Generator,
    fields: tuple[str, ...] = ("soc", "temperature_c", "soh", "resistance_factor"),
) -> dict[str, float]:
    ranges = {
        "soc": (0.05, 0.98),
        "temperature_c": (-20.0, 50.0),
        "soh": (0.7, 1.0),
        "resistance_factor": (1.0, 1.8),
    }
    return {k: num(rng.uniform(*ranges[k]), 4) for k in fields}


def substeps(samples: list[dict[str, Any]]) -> int:
    """Upper estimate of the kernel's sub-steps (any non-zero drive input counts as active)."""
    total = 0
    for s in samples:
        rest = s.get("power_kw") == 0.0 or s.get("current_a") == 0.0
        total += max(
            math.ceil(s["dt_s"] / (pack.MAX_REST_SUBSTEP_S if rest else pack.MAX_ACTIVE_SUBSTEP_S)),
            1,
        )
    return total


# ---------------------------------------------------------------------------------------------
# The cases


@dataclass
class Spec:
    name: str
    bodies: list[dict[str, Any]]  # one, or a chain (later bodies have state=CHAIN)


def single_cases() -> list[Spec]:
    specs: list[Spec] = []

    def add(name: str, b: dict[str, Any]) -> None:
        specs.append(Spec(name, [b]))

    # Mixed drive inputs per vehicle and batch size (1/2/5/16 take the small-batch path,
    # 17/100 the column path).
    for vk in ("sv1", "m3", "inline"):
        for n in (1, 2, 5, 16, 17, 100):
            name = f"mixed_{vk}_n{n}"
            rng = rng_for(name)
            samples = drive(
                rng,
                n,
                kinds=("power", "current", "motors1", "motors2"),
                dt=(0.05, 5.0),
                aux=0.3,
                wheel=0.5,
                ambient="some",
                charging=0.1,
            )
            add(name, body(vk, samples, vehicle_id=f"g-{vk}-{n}"))

    # Demands far beyond the pack limits.
    for vk in ("sv1", "m3", "inline"):
        for n in (5, 17):
            name = f"extreme_power_{vk}_n{n}"
            rng = rng_for(name)
            samples = drive(rng, n, power=(-2000.0, 2000.0), dt=(0.5, 10.0))
            for i, s in enumerate(samples[:4]):
                s["power_kw"] = (2000.0, -2000.0, 10000.0, -10000.0)[i]
            add(name, body(vk, samples))

    # Current demands, short and long samples.
    for vk in ("sv1", "m3", "inline"):
        name = f"current_{vk}_n16"
        rng = rng_for(name)
        add(
            name,
            body(
                vk,
                drive(
                    rng, 16, kinds=("current",), current=(-700.0, 1000.0), dt=(0.01, 3.0), wheel=0.3
                ),
            ),
        )
        name = f"current_long_{vk}_n100"
        rng = rng_for(name)
        add(
            name,
            body(
                vk,
                drive(
                    rng,
                    100,
                    kinds=("current",),
                    current=(-200.0, 250.0),
                    dt=(5.0, 600.0),
                    rest=0.2,
                    ambient="some",
                ),
                state=seed_state(rng, ("soc",)),
            ),
        )

    # Motors: one or two, with and without aux_kw.
    for vk in ("sv1", "m3", "inline"):
        for count in (1, 2):
            for aux in (0.0, 1.0):
                n = 17 if aux else 16
                name = f"motors{count}_{vk}_{'aux' if aux else 'noaux'}"
                rng = rng_for(name)
                samples = drive(
                    rng, n, kinds=(f"motors{count}",), dt=(0.02, 2.0), aux=aux, wheel=0.7
                )
                add(name, body(vk, samples))
    name = "motors_zero_torque_and_speed"
    samples = [
        {"dt_s": 1.0, "motors": [{"torque_nm": 0.0, "speed_rad_s": 0.0}]},
        {"dt_s": 1.0, "motors": [{"torque_nm": 0.0, "speed_rad_s": 900.0}], "aux_kw": 0.0},
        {"dt_s": 1.0, "motors": [{"torque_nm": 300.0, "speed_rad_s": 0.0}]},
        {
            "dt_s": 1.0,
            "motors": [
                {"torque_nm": -400.0, "speed_rad_s": 1500.0},
                {"torque_nm": 400.0, "speed_rad_s": 1500.0},
            ],
        },
        {"dt_s": 30.0, "motors": [{"torque_nm": 100.0, "speed_rad_s": -500.0}], "aux_kw": 3.5},
        {"dt_s": 1.0, "motors": []},
    ]
    add(name, body("m3", samples))

    # Plug charging (negative power or current with charging: true), short and long samples.
    for vk in ("sv1", "m3", "inline"):
        name = f"plug_charge_{vk}"
        rng = rng_for(name)
        samples = [
            {
                "dt_s": num(rng.uniform(300.0, 3600.0), 4),
                "power_kw": num(-rng.uniform(3.0, 250.0)),
                "charging": True,
            }
            for _ in range(5)
        ]
        samples.append({"dt_s": 600.0, "current_a": -150.0, "charging": True})
        samples.append({"dt_s": 10.0, "power_kw": 20.0, "charging": True})  # not charging
        add(name, body(vk, samples, state={"soc": 0.2}))
    name = "plug_charge_ends_charging"
    add(
        name,
        body(
            "sv1",
            [{"dt_s": 1800.0, "power_kw": -11.0, "charging": True}] * 3,
            state={"soc": 0.5, "temperature_c": 18.0},
        ),
    )
    name = "regen_not_charging"
    add(name, body("sv1", [{"dt_s": 2.0, "power_kw": -40.0, "wheel_speed_m_s": 20.0}] * 2))

    # Ambient given in some samples only (carried forward), or changing in every sample.
    name = "ambient_sparse_small"
    samples = [{"dt_s": 1.0, "power_kw": 30.0} for _ in range(12)]
    samples[3]["ambient_c"] = -15.0
    samples[9]["ambient_c"] = 38.5
    add(name, body("sv1", samples))
    name = "ambient_sparse_column"
    samples = [{"dt_s": 60.0, "power_kw": 15.0} for _ in range(40)]
    samples[5]["ambient_c"] = 42.0
    samples[30]["ambient_c"] = -5.0
    add(name, body("m3", samples))
    for n in (5, 100):
        name = f"ambient_every_sample_n{n}"
        rng = rng_for(name)
        add(
            name,
            body(
                "inline",
                drive(
                    rng, n, dt=(10.0, 900.0), ambient="all", ambient_range=(-40.0, 60.0), rest=0.3
                ),
            ),
        )
    name = "ambient_only_first"
    rng = rng_for(name)
    add(
        name,
        body("sv1", drive(rng, 17, dt=(1.0, 30.0), ambient="first", ambient_range=(-30.0, -20.0))),
    )
    name = "ambient_extremes"
    add(
        name,
        body(
            "m3",
            [
                {"dt_s": 3600.0, "power_kw": 5.0, "ambient_c": -60.0},
                {"dt_s": 3600.0, "power_kw": 5.0, "ambient_c": 80.0},
                {"dt_s": 3600.0, "power_kw": 0.0},
            ],
        ),
    )

    # Sample lengths from 10 ms to a day (long samples are sub-stepped).
    name = "dt_10ms"
    rng = rng_for(name)
    add(name, body("sv1", drive(rng, 16, dt=(0.01, 0.01), power=(-150.0, 300.0))))
    name = "dt_day_rest"
    add(
        name,
        body(
            "sv1",
            [{"dt_s": 86400.0, "power_kw": 0.0}] * 5,
            state={"soc": 0.95, "temperature_c": 40.0},
        ),
    )
    name = "dt_day_active_power"
    add(name, body("m3", [{"dt_s": 86400.0, "power_kw": 0.4}]))
    name = "dt_day_active_current"
    add(
        name,
        body(
            "inline",
            [
                {"dt_s": 86400.0, "current_a": 1.5},
                {"dt_s": 86400.0, "current_a": -1.0, "charging": True},
            ],
        ),
    )
    name = "dt_log_uniform_n17"
    rng = rng_for(name)
    add(name, body("sv1", drive(rng, 17, dt=(0.01, 86400.0), power=(-5.0, 8.0), rest=0.4)))
    name = "dt_odd_substeps"
    add(
        name,
        body(
            "sv1",
            [
                {"dt_s": 10.0, "power_kw": 20.0},
                {"dt_s": 10.000001, "power_kw": 20.0},
                {"dt_s": 9.999999, "power_kw": 20.0},
                {"dt_s": 3600.5, "power_kw": 0.0},
                {"dt_s": 35.5, "current_a": 80.0},
            ],
        ),
    )

    # Hours of rest after a drive.
    for vk in ("sv1", "m3"):
        name = f"rest_hours_{vk}"
        rng = rng_for(name)
        samples = drive(rng, 10, dt=(1.0, 5.0), power=(50.0, 170.0))
        samples += [
            {"dt_s": num(rng.uniform(3600.0, 20000.0), 4), "power_kw": 0.0} for _ in range(4)
        ]
        samples += [{"dt_s": 7200.0, "current_a": 0.0, "ambient_c": 10.0}]
        add(name, body(vk, samples))

    # Integers in the JSON (dt_s, power, current, motors, seed state).
    name = "integer_inputs"
    add(
        name,
        body(
            "sv1",
            [
                {"dt_s": 1, "power_kw": 50},
                {"dt_s": 2, "current_a": -20},
                {"dt_s": 1, "motors": [{"torque_nm": 200, "speed_rad_s": 300}]},
                {"dt_s": 5, "power_kw": 0, "ambient_c": 30},
            ],
            state={"soc": 1, "temperature_c": 20, "soh": 1, "resistance_factor": 1},
        ),
    )
    # Pedal positions are accepted and ignored.
    name = "pedals_n17"
    rng = rng_for(name)
    add(name, body("m3", drive(rng, 17, kinds=("power", "motors1"), pedals=1.0, wheel=1.0)))
    # Envelope variants: no vehicle (default preset), no vehicle_id, no state key.
    name = "default_vehicle_no_state_key"
    rng = rng_for(name)
    add(name, body(None, drive(rng, 5), omit_state=True))
    name = "default_vehicle_id"
    rng = rng_for(name)
    add(name, body("m3", drive(rng, 2), state=None))

    # Seeded states.
    seeds: list[tuple[str, dict[str, float]]] = [
        ("soc_only", {"soc": 0.42}),
        ("temperature_only", {"temperature_c": -18.0}),
        ("soh_only", {"soh": 0.81}),
        ("resistance_only", {"resistance_factor": 1.6}),
        ("all_fields", {"soc": 0.66, "temperature_c": 35.0, "soh": 0.9, "resistance_factor": 1.25}),
        ("hot_worn", {"soc": 0.3, "temperature_c": 58.0, "soh": 0.7, "resistance_factor": 2.5}),
        ("empty_dict", {}),
    ]
    for label, seed in seeds:
        for vk in ("sv1", "m3"):
            name = f"seed_{label}_{vk}"
            rng = rng_for(name)
            samples = drive(
                rng,
                16 if vk == "sv1" else 17,
                kinds=("power", "current"),
                dt=(0.5, 20.0),
                ambient="some",
            )
            add(name, body(vk, samples, state=seed))

    # Aging options.
    option_sets: list[tuple[str, dict[str, Any]]] = [
        ("naumann", options("naumann")),
        ("seed", options("seed")),
        ("demo", options(demo=True)),
        ("demo_naumann", options("naumann", demo=True)),
        ("demo_multiplier_1", options(demo=True, multiplier=1.0)),
        ("naumann_x10", options("naumann", multiplier=10.0)),
        ("naumann_x1000", options("naumann", multiplier=1000.0)),
        ("naumann_x1e6", options("naumann", multiplier=1e6)),
        ("seed_x1e6", options("seed", multiplier=1e6)),
        ("seed_x37", options("seed", multiplier=37.5)),
        ("demo_off_explicit", options(demo=False, multiplier=1.0)),
    ]
    for label, opts in option_sets:
        for vk in ("sv1", "inline"):
            name = f"options_{label}_{vk}"
            rng = rng_for(name)
            samples = drive(
                rng,
                17 if vk == "sv1" else 5,
                kinds=("power", "current", "motors1"),
                dt=(1.0, 600.0),
                rest=0.2,
                charging=0.2,
                ambient="some",
            )
            add(
                name,
                body(
                    vk,
                    samples,
                    state=seed_state(rng, ("soc", "temperature_c")),
                    opts=copy.deepcopy(opts),
                ),
            )

    # SOC driven to 0 and to 1: the limits bind.
    for vk in ("sv1", "m3", "inline"):
        name = f"soc_to_zero_current_{vk}"
        add(name, body(vk, [{"dt_s": 15.0, "current_a": 900.0}] * 40, state={"soc": 0.1}))
        name = f"soc_to_zero_power_{vk}"
        add(
            name,
            body(
                vk,
                [{"dt_s": 10.0, "power_kw": 2000.0}] * 16
                + [{"dt_s": 600.0, "power_kw": 2000.0}] * 3,
                state={"soc": 0.08},
            ),
        )
        name = f"soc_to_one_current_{vk}"
        add(
            name,
            body(
                vk, [{"dt_s": 30.0, "current_a": -600.0, "charging": True}] * 40, state={"soc": 0.9}
            ),
        )
        name = f"soc_to_one_power_{vk}"
        add(
            name,
            body(
                vk,
                [{"dt_s": 10.0, "power_kw": -2000.0}] * 5
                + [{"dt_s": 3600.0, "power_kw": -2000.0, "charging": True}] * 2,
                state={"soc": 0.93},
            ),
        )
    name = "soc_at_zero_seeded"
    add(
        name,
        body(
            "sv1",
            [{"dt_s": 1.0, "power_kw": 100.0}, {"dt_s": 1.0, "power_kw": -100.0}],
            state={"soc": 0.0},
        ),
    )
    name = "soc_at_one_seeded"
    add(
        name,
        body(
            "m3",
            [{"dt_s": 1.0, "power_kw": -100.0}, {"dt_s": 1.0, "power_kw": 100.0}],
            state={"soc": 1.0},
        ),
    )
    name = "soc_sweep_full_range"
    samples = [{"dt_s": 60.0, "current_a": 440.0}] * 45 + [
        {"dt_s": 60.0, "current_a": -330.0, "charging": True}
    ] * 60
    add(name, body("sv1", samples, state={"soc": 1.0}, opts=options("naumann", multiplier=100.0)))

    # Large batches.
    name = "big_drive_sv1_n2000"
    rng = rng_for(name)
    add(
        name,
        body(
            "sv1",
            drive(
                rng,
                2000,
                kinds=("power", "power", "current"),
                dt=(0.05, 2.0),
                ambient="some",
                wheel=0.8,
                aux=0.1,
            ),
            opts=options("naumann"),
        ),
    )
    name = "big_motors_m3_demo_n2000"
    rng = rng_for(name)
    add(
        name,
        body(
            "m3",
            drive(
                rng,
                2000,
                kinds=("motors1", "motors2"),
                dt=(0.1, 0.1),
                aux=0.5,
                wheel=1.0,
                torque=(-300.0, 400.0),
                speed=(0.0, 1200.0),
            ),
            state={"soc": 0.9},
            opts=options(demo=True),
        ),
    )
    return specs


def half_cycle_samples(
    rng: np.random.Generator, n: int, soc: float, capacity_ah: float
) -> list[dict[str, Any]]:
    """Alternating discharge / charge blocks of random length and current, a reversal every
    block; SOC (counted here roughly) is kept within 0.25..0.85."""
    out: list[dict[str, Any]] = []
    sign = 1.0
    while len(out) < n:
        if soc < 0.25:
            sign = -1.0
        elif soc > 0.85:
            sign = 1.0
        block = int(rng.integers(3, 12))
        amps = num(rng.uniform(100.0, 320.0))  # within the 330 A charge limit
        for _ in range(block):
            out.append({"dt_s": 10.0, "current_a": sign * amps})
            soc -= sign * amps * 10.0 / 3600.0 / capacity_ah
        sign = -sign
    return out[:n]


def chain_specs() -> list[Spec]:
    specs: list[Spec] = []
    size_choices = (1, 2, 5, 16, 17, 100)
    dt_choices = ((0.01, 1.0), (0.5, 30.0), (60.0, 86400.0))
    for c in range(30):
        name = f"chain{c:02d}"
        rng = rng_for(name)
        vk = ("sv1", "m3", "inline")[c % 3]
        steps = int(rng.integers(2, 5))
        switch = c < 10  # the first ten chains change aging settings between requests
        bodies = []
        for k in range(steps):
            dt = dt_choices[int(rng.integers(3))]
            n = int(rng.choice(size_choices)) if dt[1] < 1000 else int(rng.integers(1, 6))
            ambient = (None, "first", "some", "all")[int(rng.integers(4))]
            samples = drive(
                rng,
                n,
                kinds=("power", "current", "motors1", "motors2"),
                dt=dt,
                aux=0.3,
                wheel=0.5,
                charging=0.15,
                rest=0.15,
                ambient=ambient,
                power=(-120.0, 180.0) if dt[1] < 1000 else (-6.0, 6.0),
                current=(-300.0, 450.0) if dt[1] < 1000 else (-15.0, 15.0),
            )
            if switch:
                opts = [
                    options("naumann"),
                    options("seed"),
                    options(demo=True),
                    options("naumann", multiplier=float(num(10 ** rng.uniform(0, 4)))),
                ][(k + c) % 4]
            else:
                opts = options()
            if k == 0:
                state: Any = (None, {"soc": 0.5}, seed_state(rng))[c % 3]
            else:
                state = CHAIN
            bodies.append(body(vk, samples, state=state, opts=opts, vehicle_id=f"chain-{c}"))
        specs.append(Spec(name, bodies))

    # Chains with a purpose.
    rng = rng_for("chain_soc_limits")
    specs.append(
        Spec(
            "chain_soc_limits",
            [
                body("sv1", [{"dt_s": 30.0, "current_a": 660.0}] * 30, state={"soc": 0.2}),
                body(
                    "sv1",
                    [{"dt_s": 5.0, "power_kw": 50.0}] * 3 + [{"dt_s": 3600.0, "power_kw": 0.0}],
                    state=CHAIN,
                ),
                body(
                    "sv1",
                    [{"dt_s": 60.0, "current_a": -330.0, "charging": True}] * 100,
                    state=CHAIN,
                ),
            ],
        )
    )
    specs.append(
        Spec(
            "chain_rest_days",
            [
                body(
                    "m3",
                    drive(rng, 16, dt=(1.0, 10.0), ambient="first", ambient_range=(30.0, 35.0)),
                    opts=options("naumann"),
                ),
                body(
                    "m3",
                    [{"dt_s": 86400.0, "power_kw": 0.0}] * 3,
                    state=CHAIN,
                    opts=options("naumann"),
                ),
                body(
                    "m3",
                    [{"dt_s": 86400.0, "power_kw": 0.0, "ambient_c": -5.0}] * 2,
                    state=CHAIN,
                    opts=options("seed", multiplier=1e6),
                ),
            ],
        )
    )
    specs.append(
        Spec(
            "chain_switch_every_model",
            [
                body(
                    "inline",
                    drive(rng, 17, kinds=("power", "motors2"), dt=(0.5, 5.0)),
                    state={"soc": 0.7, "soh": 0.95},
                    opts=options("seed"),
                ),
                body(
                    "inline",
                    drive(rng, 17, kinds=("power", "motors2"), dt=(0.5, 5.0)),
                    state=CHAIN,
                    opts=options("naumann"),
                ),
                body(
                    "inline",
                    drive(rng, 17, kinds=("power", "motors2"), dt=(0.5, 5.0)),
                    state=CHAIN,
                    opts=options(demo=True, multiplier=1e6),
                ),
                body(
                    "inline",
                    drive(rng, 17, kinds=("power", "motors2"), dt=(0.5, 5.0)),
                    state=CHAIN,
                    opts=options("naumann", multiplier=1e6),
                ),
            ],
        )
    )
    return specs


def state_file_specs() -> dict[str, Spec]:
    """Chains whose last request continues one of the representative v1 states."""
    rng = rng_for("state_v1")
    sv1_ah = PRESETS["sv1ev3"].pack.capacity_ah
    return {
        "naumann_after_drive": Spec(
            "state_v1_naumann_after_drive",
            [
                body(
                    "sv1",
                    drive(
                        rng,
                        100,
                        kinds=("power", "current", "motors1"),
                        dt=(0.2, 3.0),
                        ambient="some",
                        wheel=0.8,
                        charging=0.1,
                    ),
                    opts=options("naumann"),
                    vehicle_id="v1-naumann",
                ),
                body(
                    "sv1",
                    drive(rng, 20, kinds=("power", "motors1"), dt=(0.5, 2.0), wheel=0.8),
                    state=CHAIN,
                    opts=options("naumann"),
                    vehicle_id="v1-naumann",
                ),
            ],
        ),
        "seed_demo": Spec(
            "state_v1_seed_demo",
            [
                body(
                    "m3",
                    drive(
                        rng,
                        100,
                        kinds=("motors1", "power"),
                        dt=(0.5, 30.0),
                        ambient="first",
                        aux=0.5,
                        wheel=1.0,
                    ),
                    state={"soc": 0.8, "soh": 0.97},
                    opts=options(demo=True),
                    vehicle_id="v1-demo",
                ),
                body(
                    "m3",
                    drive(rng, 20, kinds=("motors1",), dt=(0.5, 5.0), wheel=1.0),
                    state=CHAIN,
                    opts=options(demo=True),
                    vehicle_id="v1-demo",
                ),
            ],
        ),
        "many_half_cycles": Spec(
            "state_v1_many_half_cycles",
            [
                body(
                    "sv1",
                    half_cycle_samples(rng, 2000, 0.5, sv1_ah),
                    state={"soc": 0.5},
                    opts=options("naumann", multiplier=50.0),
                    vehicle_id="v1-cycles",
                ),
                body(
                    "sv1",
                    half_cycle_samples(rng, 20, 0.5, sv1_ah),
                    state=CHAIN,
                    opts=options("naumann", multiplier=50.0),
                    vehicle_id="v1-cycles",
                ),
            ],
        ),
    }


# ---------------------------------------------------------------------------------------------
# Running and writing


def roundtrip(value: Any) -> Any:
    """What a JSON file gives back (and a check that everything is finite)."""
    return json.loads(json.dumps(value, allow_nan=False))


def run(request: dict[str, Any]) -> dict[str, Any]:
    outcome = run_step(copy.deepcopy(request), DEFAULT_VEHICLE, MAX_SAMPLES)
    telemetry = dict(outcome.telemetry)
    del telemetry["timestamp"]
    return roundtrip({"state": outcome.state, "telemetry": telemetry, "trace": outcome.trace})


def run_spec(spec: Spec) -> list[dict[str, Any]]:
    """Stored cases of a spec: one per request, chained states written into the requests."""
    cases = []
    previous: dict[str, Any] | None = None
    for k, b in enumerate(spec.bodies):
        request = copy.deepcopy(b)
        if request.get("state") == CHAIN:
            assert previous is not None, spec.name
            request["state"] = copy.deepcopy(previous["state"])
        request = roundtrip(request)
        if substeps(request["samples"]) > pack.MAX_SUBSTEPS_PER_REQUEST:
            raise ValueError(f"{spec.name}: too many sub-steps")
        response = run(request)
        if run(request) != response:
            raise RuntimeError(f"{spec.name}: two runs of the same request differ")
        steps = len(spec.bodies)
        name = spec.name if steps == 1 else f"{spec.name}-step{k + 1}of{steps}"
        cases.append({"name": name, "request": request, "response": response})
        previous = response
    return cases


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


MODEL_SOURCES = ("twin_service", "pyproject.toml")


def model_sources_modified() -> list[str]:
    """Tracked model files that differ from HEAD (untracked files are not imported by tracked
    code, so they cannot change today's behaviour)."""
    out = git("diff", "--name-only", "HEAD", "--", *MODEL_SOURCES)
    return out.splitlines() if out else []


def header() -> dict[str, Any]:
    import numba  # noqa: PLC0415  (the kernel needs it; recorded for provenance)

    return {
        "format": FORMAT_VERSION,
        "commit": git("rev-parse", "HEAD"),
        "model_sources_modified": model_sources_modified(),
        "generator": "python -m tests.golden.generate",
        "kernel": pack.DEFAULT_KERNEL,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "default_vehicle": DEFAULT_VEHICLE,
        "max_samples": MAX_SAMPLES,
        "compare": {"rel": 1e-9, "abs": 1e-12},
    }


def gzip_bytes(data: bytes) -> bytes:
    """gzip without a timestamp or file name, so the same content gives the same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(data)
    return buf.getvalue()


def main() -> None:
    allow_modified = "--allow-modified" in sys.argv[1:]
    head = header()
    if head["model_sources_modified"] and not allow_modified:
        raise SystemExit(
            "tracked model sources differ from HEAD: "
            f"{', '.join(head['model_sources_modified'])}; the fixture would not "
            "pin the commit's behaviour (--allow-modified to write it anyway)"
        )
    cases: list[dict[str, Any]] = []
    for spec in single_cases() + chain_specs():
        cases.extend(run_spec(spec))
    state_cases = {}
    for key, spec in state_file_specs().items():
        chain = run_spec(spec)
        cases.extend(chain[:-1])  # the drives that made the states; the continuation is apart
        state_cases[key] = chain[-1]
    if model_sources_modified() != head["model_sources_modified"]:
        raise SystemExit("model sources changed while the cases ran; run again")
    names = [c["name"] for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"

    FIXTURES.mkdir(parents=True, exist_ok=True)
    doc = {**head, "cases": cases}
    data = gzip_bytes(
        json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    )
    if len(data) > MAX_FIXTURE_BYTES:
        raise SystemExit(f"{GOLDEN_PATH.name} would be {len(data)} bytes (> {MAX_FIXTURE_BYTES})")
    GOLDEN_PATH.write_bytes(data)
    for key, case in state_cases.items():
        doc = {**case, "description": STATE_DESCRIPTIONS[key], "commit": head["commit"]}
        text = json.dumps(doc, sort_keys=True, indent=2, allow_nan=False)
        STATE_PATHS[key].write_text(text + "\n")

    samples = sum(len(c["request"]["samples"]) for c in cases)
    print(
        f"{GOLDEN_PATH.relative_to(ROOT)}: {len(cases)} cases, {samples} samples, {len(data)} bytes"
    )
    for key, path in STATE_PATHS.items():
        print(f"{path.relative_to(ROOT)}: {state_cases[key]['name']}")


if __name__ == "__main__":
    main()
