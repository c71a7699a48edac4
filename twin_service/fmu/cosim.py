"""The pack as a co-simulation slave: one communication step is one `/step` sample.

`PackCosim` is what the FMU (twin_service/fmu/slave.py) wraps, and it has no FMI import, so it
can be driven from Python directly. Each `step(dt)` validates the held inputs exactly as
`/step` validates a sample (the same bounds and messages), builds the model's drive input with
the same functions and runs the same kernel on the state it keeps in memory. A master stepping
it with step size h over inputs u(t_k) therefore gets what one `/step` batch of samples
``{"dt_s": h, "current_a": u(t_k), ...}`` returns (chained single steps equal batches).

- Steps longer than a sample may be (`MAX_SAMPLE_S`, one day) are cut into equal samples.
- Steps shorter than `MIN_DT_S` (1 µs; a master's rounding at the end of a run) are held and
  added to the next step.
- `get_state()` / `set_state()` copy everything a rollback needs into plain JSON types.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from twin_service.errors import ApiError, pydantic_errors
from twin_service.models import kernel
from twin_service.models.aging import CAPACITY_TERMS, LAYOUT, RESISTANCE_TERMS
from twin_service.models.pack import PackState, simulate
from twin_service.presets import VehiclePreset
from twin_service.schemas import StepEnvelope, StepOptions
from twin_service.settings import Settings
from twin_service.step.samples import (
    MIN_DT_S,
    NUMERIC_FIELDS,
    columns_from_small,
    parse_samples,
    parse_small,
)
from twin_service.step.service import (
    aging_settings,
    check_continuable,
    drive_input,
    preset_params,
    resolve_vehicle,
    state_from_wire,
    state_to_wire,
)

MAX_SAMPLE_S = NUMERIC_FIELDS["dt_s"][1]
# input_mode -> the sample field it drives (the field's own name is accepted as the mode too)
INPUT_MODES = {"current": "current_a", "power": "power_kw"}
_MODE_OF = {**{m: m for m in INPUT_MODES}, **{f: m for m, f in INPUT_MODES.items()}}
STATE_FORMAT = 1


class CosimError(ValueError):
    """A parameter or input the model refuses; the message says which and why."""


def _message(exc: ApiError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'input'}: {e['msg']}" for e in exc.errors
    )


def load_vehicle(ref: str, default_vehicle: str | None = None) -> VehiclePreset:
    """A preset id, an inline vehicle as JSON text (as `bridge calibrate` writes it), or the
    path of a JSON file holding one."""
    text = ref.strip()
    value: Any = text or None
    if text.startswith("{"):
        value = _json(text, "vehicle")
    elif text.endswith(".json") and Path(text).is_file():
        value = _json(Path(text).read_text(), text)
    default = default_vehicle or Settings().default_vehicle
    try:
        env = StepEnvelope.model_validate({"vehicle": value})
        return resolve_vehicle(env.vehicle, default)
    except ValidationError as exc:
        raise CosimError(_message(ApiError(422, pydantic_errors(exc, ["body"])))) from None
    except ApiError as exc:
        raise CosimError(_message(exc)) from None


def _json(text: str, where: str) -> Any:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CosimError(f"{where}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("vehicle"), dict):
        return data["vehicle"]  # a calibration result: {"vehicle": {...}, ...}
    return data


@dataclass
class Outputs:
    """The model's outputs after the last step (at the initial state before the first)."""

    soc: float
    voltage_v: float
    current_a: float
    power_kw: float
    temperature_c: float
    soh: float
    resistance_factor: float
    max_discharge_kw: float
    max_regen_kw: float
    tms_kw: float
    power_limited: bool


@dataclass
class PackCosim:
    """One pack stepped by a co-simulation master (see the module docstring).

    Inputs are attributes the master sets between steps: `current_a` (A, discharge > 0) or
    `power_kw` (kW at the terminals, discharge > 0) as `input_mode` says, `ambient_c` (°C) and
    `charging` (plugged in: thermal management may cool or heat for the charger).
    """

    vehicle: str = ""
    input_mode: str = "current"
    initial_soc: float = 0.85  # as /step seeds a pack
    initial_soh: float = 1.0
    initial_resistance_factor: float = 1.0
    aging_model: str = ""  # "": the preset's
    time_multiplier: float = 1.0
    current_a: float = 0.0
    power_kw: float = 0.0
    ambient_c: float = 25.0
    charging: bool = False
    held_s: float = 0.0  # a step too short to take, added to the next
    outputs: Outputs | None = None
    _state: PackState | None = field(default=None, repr=False)

    def start(self) -> Outputs:
        """Check the parameters and make the initial pack (as `/step` seeds one from
        {soc, soh, resistance_factor} at the first sample's ambient)."""
        mode = _MODE_OF.get(self.input_mode.strip())
        if mode is None:
            known = ", ".join(repr(m) for m in _MODE_OF)
            raise CosimError(f"input_mode must be one of {known}, got {self.input_mode!r}")
        self.input_mode = mode
        self._preset = load_vehicle(self.vehicle)
        try:
            options = StepOptions(
                aging_model=self.aging_model or None, time_multiplier=self.time_multiplier
            )
        except ValidationError as exc:
            raise CosimError(_message(ApiError(422, pydantic_errors(exc, ["options"])))) from None
        self._aging = aging_settings(options, self._preset)
        self._params = preset_params(self._preset)[1]
        seed: dict[str, Any] = {
            "soc": self.initial_soc,
            "soh": self.initial_soh,
            "resistance_factor": self.initial_resistance_factor,
        }
        self._check_input("ambient_c", self.ambient_c)
        try:
            self._state = state_from_wire(seed, float(self.ambient_c), self._aging.model)
        except ApiError as exc:
            raise CosimError(_message(exc).replace("state.", "initial_")) from None
        self.outputs = self._rest_outputs()
        return self.outputs

    def _check_input(self, name: str, value: float) -> None:
        low, high, _ = NUMERIC_FIELDS[name]
        if not (math.isfinite(value) and low <= value <= high):
            raise CosimError(f"{name} must be a finite number in [{low:g}, {high:g}], got {value}")

    @property
    def time_s(self) -> float:
        """Simulated time since start(), held steps included."""
        return float(self.state.vector[kernel.ELAPSED]) + self.held_s

    @property
    def state(self) -> PackState:
        if self._state is None:
            raise CosimError("start() the model before stepping it")
        return self._state

    def samples(self, dt_s: float) -> list[dict[str, Any]]:
        """The `/step` samples this step sends (the held inputs over dt_s)."""
        total = dt_s + self.held_s
        if total < MIN_DT_S:
            return []
        n = max(1, math.ceil(total / MAX_SAMPLE_S))
        field_name = INPUT_MODES[self.input_mode]
        value = self.current_a if self.input_mode == "current" else self.power_kw
        sample: dict[str, Any] = {"dt_s": float(total / n), field_name: float(value)}
        sample["ambient_c"] = float(self.ambient_c)
        if self.charging:
            sample["charging"] = True
        return [dict(sample) for _ in range(n)]

    def step(self, dt_s: float) -> Outputs:
        """Advance by dt_s with the inputs held; raise CosimError (nothing changed) when the
        inputs are refused or the pack would leave the states the service can continue."""
        state = self.state
        if not (dt_s >= 0.0 and math.isfinite(dt_s)):
            raise CosimError(f"the step size must be finite and >= 0, got {dt_s}")
        samples = self.samples(dt_s)
        if not samples:
            self.held_s += dt_s
            return self._out()
        try:
            small = parse_small(samples, len(samples))
            cols = columns_from_small(small) if small else parse_samples(samples, len(samples))
            drive = drive_input(cols, self._preset, state.ambient_c)
            result = simulate(self._params, state, drive, self._aging)
            check_continuable(result.state)
        except ApiError as exc:
            raise CosimError(_message(exc)) from None
        except ValueError as exc:
            raise CosimError(str(exc)) from None
        self._state = result.state
        self.held_s = 0.0
        self.outputs = Outputs(
            soc=min(1.0, max(0.0, float(result.soc[-1]))),
            voltage_v=float(result.voltage_v[-1]),
            current_a=float(result.current_a[-1]),
            power_kw=float(result.power_w[-1]) / 1000.0,
            temperature_c=float(result.temperature_c[-1]),
            soh=float(result.soh[-1]),
            resistance_factor=float(result.resistance_factor[-1]),
            max_discharge_kw=result.max_discharge_w / 1000.0,
            max_regen_kw=result.max_regen_w / 1000.0,
            tms_kw=float(result.tms_w[-1]) / 1000.0,
            power_limited=bool(result.limited[-1]),
        )
        return self.outputs

    def _out(self) -> Outputs:
        assert self.outputs is not None
        return self.outputs

    def _rest_outputs(self) -> Outputs:
        """Outputs of the initial state: no current, the terminal voltage is the EMF."""
        s = self.state
        p = self._params.kernel_vector
        tab = self._params.kernel_tables
        max_dis, max_reg = kernel.pulse_limits(p, tab, s.vector, CAPACITY_TERMS, RESISTANCE_TERMS)
        return Outputs(
            soc=min(1.0, max(0.0, s.soc)),
            voltage_v=float(kernel.rest_voltage(p, tab, s.vector)),
            current_a=0.0,
            power_kw=0.0,
            temperature_c=s.temperature_c,
            soh=s.soh,
            resistance_factor=s.resistance_factor,
            max_discharge_kw=float(max_dis) / 1000.0,
            max_regen_kw=float(max_reg) / 1000.0,
            tms_kw=0.0,
            power_limited=False,
        )

    def wire_state(self) -> dict[str, Any]:
        """The pack's state as `/step` takes it (to continue the run in the service)."""
        return state_to_wire(self.state, self._params.capacity_ah)

    def get_state(self) -> dict[str, Any]:
        """Everything a rollback restores, as JSON types (copied)."""
        return {
            "format": STATE_FORMAT,
            "vector": self.state.vector.tolist(),
            "held_s": self.held_s,
            "outputs": None if self.outputs is None else dict(self.outputs.__dict__),
        }

    def set_state(self, saved: dict[str, Any]) -> None:
        if saved.get("format") != STATE_FORMAT:
            raise CosimError(f"not a saved state of this model (format {saved.get('format')})")
        vector = np.array(saved["vector"], dtype=np.float64)
        if vector.shape != (LAYOUT.size,):
            raise CosimError(f"saved state has {vector.size} values, the model {LAYOUT.size}")
        self._state = PackState(vector)
        self.held_s = float(saved["held_s"])
        out = saved.get("outputs")
        self.outputs = None if out is None else Outputs(**out)
