"""The FMI 2.0 co-simulation slave (pythonfmu) around `cosim.PackCosim`.

Variable names follow SPEC §6. FMI names are unique, so the current the pack delivers is the
output `pack_current_a` next to the input `current_a` (the demand, used when `input_mode` is
"current"); likewise `pack_power_kw` next to the input `power_kw`.
"""

from __future__ import annotations

import ctypes
import sys
import traceback
from pathlib import Path
from typing import Any

from pythonfmu import Boolean, Fmi2Causality, Fmi2Slave, Fmi2Variability, Real, String
from pythonfmu.enums import Fmi2Status

from twin_service import __version__
from twin_service.fmu.cosim import CosimError, Outputs, PackCosim
from twin_service.fmu.variables import MODEL_NAME, REAL_OUTPUTS


class EVBatteryTwin(Fmi2Slave):
    """LiFePO4 EV pack of the battery twin: voltage, thermal and aging, as `/step` runs it."""

    author = "EV battery digital twin"
    description = (
        "LiFePO4 EV battery pack (equivalent circuit with hysteresis, lumped thermal model "
        "with thermal management, calendar and cycle aging); doStep equals a POST /step sample"
    )
    version = __version__
    license = "MIT"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        release_runtime_first(self.resources)
        self.model = PackCosim()
        # parameters
        self.vehicle = ""
        self.input_mode = "current"
        self.aging_model = ""
        self.initial_soc = 0.85
        self.initial_soh = 1.0
        self.initial_resistance_factor = 1.0
        self.time_multiplier = 1.0
        # inputs
        self.current_a = 0.0
        self.power_kw = 0.0
        self.ambient_c = 25.0
        self.charging = False
        # outputs
        self.power_limited = False
        for name, _, _, _ in REAL_OUTPUTS:
            setattr(self, name, 0.0)

        param = {"causality": Fmi2Causality.parameter, "variability": Fmi2Variability.fixed}
        strings = (
            ("vehicle", 'preset id (e.g. "sv1ev3"), an inline vehicle as JSON, or a .json '
             'file of one (as bridge calibrate writes); "": the default preset'),
            ("input_mode", '"current" (or "current_a"): drive with current_a; "power" (or '
             '"power_kw"): with power_kw'),
            ("aging_model", 'aging model id (naumann, nrel_lfp250, seed); "": the preset\'s'),
        )  # fmt: skip
        for name, doc in strings:
            self.register_variable(String(name, description=doc, **param))
        reals = (
            ("initial_soc", "state of charge at the start (0..1)"),
            ("initial_soh", "capacity fraction at the start (0..1)"),
            ("initial_resistance_factor", "resistance relative to new at the start"),
            ("time_multiplier", "aging time per simulated second (>= 1)"),
        )
        for name, doc in reals:
            self.register_variable(Real(name, description=doc, **param))
        inputs = {"causality": Fmi2Causality.input, "variability": Fmi2Variability.continuous}
        for name, doc in (
            ("current_a", "pack current demand, discharge > 0 (input_mode current)"),
            ("power_kw", "power demand at the terminals, discharge > 0 (input_mode power)"),
            ("ambient_c", "ambient temperature; the pack starts at its initial value"),
        ):
            self.register_variable(Real(name, description=doc, **inputs))
        self.register_variable(
            Boolean(
                "charging",
                description="plugged in (thermal management may act for the charger)",
                causality=Fmi2Causality.input,
                variability=Fmi2Variability.discrete,
            )
        )
        out = {"causality": Fmi2Causality.output}
        for name, doc, _, _ in REAL_OUTPUTS:
            self.register_variable(
                Real(name, description=doc, variability=Fmi2Variability.continuous, **out)
            )
        self.register_variable(
            Boolean(
                "power_limited",
                description="the pack's limits cut the demand in the last step",
                variability=Fmi2Variability.discrete,
                **out,
            )
        )

    # -- FMI calls -----------------------------------------------------------------------------

    def exit_initialization_mode(self) -> None:
        m = self.model
        m.vehicle, m.input_mode, m.aging_model = self.vehicle, self.input_mode, self.aging_model
        m.initial_soc = self.initial_soc
        m.initial_soh = self.initial_soh
        m.initial_resistance_factor = self.initial_resistance_factor
        m.time_multiplier = self.time_multiplier
        self._inputs()
        try:
            self._publish(m.start())
        except CosimError as exc:
            self.log(f"parameters refused: {exc}", Fmi2Status.error)
            raise

    def do_step(self, current_time: float, step_size: float) -> bool:
        self._inputs()
        try:
            self._publish(self.model.step(step_size))
        except CosimError as exc:
            self.log(f"t={current_time:g} s: {exc}", Fmi2Status.error)
            return False
        except Exception:  # an FMI call must not raise into the master
            self.log(traceback.format_exc(), Fmi2Status.fatal)
            return False
        return True

    def _inputs(self) -> None:
        m = self.model
        m.current_a, m.power_kw = float(self.current_a), float(self.power_kw)
        m.ambient_c, m.charging = float(self.ambient_c), bool(self.charging)

    def _publish(self, out: Outputs) -> None:
        for name, _, _, attr in REAL_OUTPUTS:
            setattr(self, name, getattr(out, attr))
        self.power_limited = out.power_limited

    # -- FMU state (fmi2GetFMUstate / fmi2SetFMUstate / serialization) ------------------------

    def _get_fmu_state(self) -> dict[str, Any]:
        state = super()._get_fmu_state()
        state["model"] = self.model.get_state() if self.model.outputs is not None else None
        return state

    def _set_fmu_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        model = state.pop("model", None)
        super()._set_fmu_state(state)
        if model is not None:
            self.model.set_state(model)


_ENTRY_GLOBALS: list[dict[str, Any]] = []


def hold_entry_globals(namespace: dict[str, Any]) -> None:
    """Called by the FMU's entry module each time its code runs (on import and again on every
    fmi2Instantiate). pythonfmu 0.7's class lookup releases one reference to the entry
    module's globals that it never took, once per instance; without this held reference the
    dict is freed and the second instance in a process fails to instantiate."""
    _ENTRY_GLOBALS.append(namespace)


_RELEASED: set[Path] = set()


def release_runtime_first(resources: str | None) -> None:
    """Have the FMU's native runtime release its Python state at process exit before its own
    static destructors run (Linux).

    pythonfmu 0.7's wrapper keeps that state in a global shared pointer, destroyed at exit by
    its static destructor, and then resets the destroyed pointer again from the library's
    unload hook: a write to freed memory in every process that loaded the FMU. Depending on
    the heap's layout the process then aborts at exit (`free(): corrupted unsorted chunks`,
    status 134; valgrind shows the invalid access in `finalizePythonInterpreter`). Calling
    that same exported function from an `atexit` handler registered now, after the library's
    static destructors were registered, releases the state once while it is alive; the two
    later calls find an empty pointer. The handler is the C function itself, so it runs
    safely after a Python host has finalized its interpreter.
    """
    if sys.platform != "linux" or not resources:
        return
    library = (Path(resources).parent / "binaries" / "linux64" / f"{MODEL_NAME}.so").resolve()
    if library in _RELEASED or not library.is_file():
        return  # each extracted copy of the FMU is a library of its own
    finalize = getattr(ctypes.CDLL(str(library)), "finalizePythonInterpreter", None)
    if finalize is None:
        return  # another wrapper than the one this works around
    # atexit() itself is not exported by glibc; __cxa_atexit with no DSO is what it calls
    register = ctypes.CDLL(None).__cxa_atexit
    register.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    if register(ctypes.cast(finalize, ctypes.c_void_p), None, None) == 0:
        _RELEASED.add(library)
