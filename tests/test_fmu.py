"""The FMI 2.0 FMU, built as `make fmu` builds it and run by FMPy (a master we did not write),
against POST /step on the inputs the master applied."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bridge.roadload import RoadLoadParams
from bridge.sources.cycle import cycle_samples
from twin_service.app import create_app
from twin_service.fmu.build import build, validate
from twin_service.fmu.cosim import PackCosim
from twin_service.settings import Settings

fmpy = pytest.importorskip("fmpy")
from fmpy import read_model_description, simulate_fmu  # noqa: E402
from fmpy.fmi1 import FMICallException  # noqa: E402
from fmpy.fmi2 import FMU2Slave  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ["soc", "voltage_v", "pack_current_a", "pack_power_kw", "temperature_c", "soh",
           "resistance_factor", "power_limited"]  # fmt: skip
# FMU output -> /step trace column
TRACE = {"soc": "soc", "voltage_v": "voltage", "pack_current_a": "current",
         "pack_power_kw": "power_kw", "temperature_c": "temperature", "soh": "soh"}  # fmt: skip
TOL = 1e-9


@pytest.fixture(scope="module")
def fmu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("fmu") / "EVBatteryTwin.fmu")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


@pytest.fixture(scope="module")
def udds(client: TestClient) -> dict[str, np.ndarray]:
    """A UDDS pass of the default preset through /step: the terminal current and power it
    drew each second (the FMU's inputs below), with the ambient drifting 18 -> 30 °C."""
    params = RoadLoadParams(1752.0, 0.23, 2.22, 0.007, 0.33435, 7.94)
    samples = [s.to_wire() for s in cycle_samples("udds", params, ambient_c=25.0)]
    body = {"state": {"soc": 0.9}, "samples": samples, "options": {"trace": True, "store": False}}
    trace = client.post("/step", json=body).json()["trace"]
    t = np.array([0.0] + [row["t_s"] for row in trace])
    current = np.array([row["current"] for row in trace] + [0.0])
    power = np.array([row["power_kw"] for row in trace] + [0.0])
    return {"time": t, "current_a": current, "power_kw": power,
            "ambient_c": np.linspace(18.0, 30.0, t.size)}  # fmt: skip


def _signals(table: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    dtype = [("time", np.float64), *((n, np.float64) for n in names)]
    return np.array(list(zip(table["time"], *(table[n] for n in names), strict=True)), dtype)


def _run(fmu: Path, h: float, stop: float, signals: np.ndarray, **start: Any) -> np.ndarray:
    inputs = [n for n in signals.dtype.names if n != "time"]
    return simulate_fmu(
        str(fmu), start_time=0.0, stop_time=stop, output_interval=h, input=signals,
        start_values=start, output=OUTPUTS + inputs,
    )  # fmt: skip


def _step(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    body = {**body, "options": {"trace": True, "store": False, **body.get("options", {})}}
    response = client.post("/step", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _samples_of(res: np.ndarray, field: str, ambient: bool = True) -> list[dict[str, Any]]:
    """The /step samples of a run: step k spans time[k]..time[k+1] with the inputs the master
    set at time[k] (the recorder reads them back after the step, in row k + 1)."""
    dt = np.diff(res["time"])
    rows = []
    for k in range(dt.size):
        row = {"dt_s": float(dt[k]), field: float(res[field][k + 1])}
        if ambient:
            row["ambient_c"] = float(res["ambient_c"][k + 1])
        rows.append(row)
    return rows


def _assert_matches(res: np.ndarray, out: dict[str, Any]) -> None:
    trace = out["trace"]
    assert len(trace) == res.size - 1
    for name, column in TRACE.items():
        ours = res[name][1:]
        theirs = np.array([row[column] for row in trace])
        worst = float(np.max(np.abs(ours - theirs)))
        assert worst <= TOL, f"{name}: {worst:g} off /step"
    assert [bool(v) for v in res["power_limited"][1:]] == [r["power_limited"] for r in trace]
    assert abs(res["resistance_factor"][-1] - out["telemetry"]["resistance_factor"]) <= TOL


def test_model_description_validates_and_declares_the_spec_variables(fmu: Path) -> None:
    assert validate(fmu) == []
    md = read_model_description(str(fmu), validate=True)
    assert md.fmiVersion == "2.0" and md.coSimulation.modelIdentifier == "EVBatteryTwin"
    assert md.coSimulation.canGetAndSetFMUstate and md.coSimulation.canSerializeFMUstate
    assert md.coSimulation.canHandleVariableCommunicationStepSize
    by_name = {v.name: v for v in md.modelVariables}
    for name in ("current_a", "power_kw", "ambient_c"):
        assert by_name[name].causality == "input" and by_name[name].type == "Real"
    for name in ("soc", "voltage_v", "pack_current_a", "temperature_c", "soh",
                 "resistance_factor"):  # fmt: skip
        assert by_name[name].causality == "output"
    for name in ("vehicle", "aging_model", "input_mode"):
        assert by_name[name].causality == "parameter" and by_name[name].type == "String"
    assert by_name["initial_soc"].causality == "parameter"
    units = {name: by_name[name].unit for name in ("current_a", "voltage_v", "temperature_c")}
    assert units == {"current_a": "A", "voltage_v": "V", "temperature_c": "degC"}
    names = zipfile.ZipFile(fmu).namelist()
    assert "binaries/linux64/EVBatteryTwin.so" in names
    assert "binaries/win64/EVBatteryTwin.dll" in names


@pytest.mark.parametrize("h", [0.1, 0.5, 1.0, 2.5, 7.0])
def test_current_input_equals_step_at_any_step_size(
    fmu: Path, client: TestClient, udds: dict[str, np.ndarray], h: float
) -> None:
    stop = 1365.0
    res = _run(fmu, h, stop, _signals(udds, ["current_a", "ambient_c"]), initial_soc=0.9)
    assert math.isclose(res["time"][-1], stop) and res.size == round(stop / h) + 1
    assert res["voltage_v"][0] > 300.0 and res["soc"][0] == 0.9  # the initial pack at rest
    out = _step(client, {"state": {"soc": 0.9}, "samples": _samples_of(res, "current_a")})
    _assert_matches(res, out)
    assert res["soc"][-1] < 0.9 - 0.01  # the cycle discharged the pack


@pytest.mark.parametrize("h", [0.5, 3.0])
def test_power_input_with_other_parameters_equals_step(
    fmu: Path, client: TestClient, udds: dict[str, np.ndarray], h: float
) -> None:
    start = {"input_mode": "power_kw", "vehicle": "Model3_2024", "aging_model": "nrel_lfp250",
             "initial_soc": 0.6, "initial_soh": 0.93, "initial_resistance_factor": 1.2,
             "time_multiplier": 50.0}  # fmt: skip
    res = _run(fmu, h, 1200.0, _signals(udds, ["power_kw", "ambient_c"]), **start)
    body = {
        "vehicle": "Model3_2024",
        "state": {"soc": 0.6, "soh": 0.93, "resistance_factor": 1.2},
        "samples": _samples_of(res, "power_kw"),
        "options": {"aging_model": "nrel_lfp250", "time_multiplier": 50.0},
    }
    out = _step(client, body)
    _assert_matches(res, out)
    assert res["soh"][-1] < 0.93


def test_long_steps_are_cut_into_day_long_samples(fmu: Path, client: TestClient) -> None:
    """A parked week at 3 h and at 2.5-day steps (two 1.25-day /step samples per step)."""
    table = {"time": np.array([0.0, 7 * 86400.0]), "current_a": np.array([2.0, 2.0]),
             "ambient_c": np.array([35.0, 35.0])}  # fmt: skip
    for h, per_step in ((10800.0, 1), (216000.0, 3)):
        res = _run(fmu, h, 6 * 86400.0 + (0 if per_step == 1 else 43200.0),
                   _signals(table, ["current_a", "ambient_c"]), initial_soc=0.5)  # fmt: skip
        samples = [
            {**row, "dt_s": row["dt_s"] / per_step}
            for row in _samples_of(res, "current_a")
            for _ in range(per_step)
        ]
        out = _step(client, {"state": {"soc": 0.5}, "samples": samples})
        trace = out["trace"][per_step - 1 :: per_step]
        assert len(trace) == res.size - 1
        for name, column in TRACE.items():
            worst = float(np.max(np.abs(res[name][1:] - [r[column] for r in trace])))
            assert worst <= TOL, (h, name, worst)
        assert res["soh"][-1] < 1.0  # a hot week ages the pack on the calendar


def _instance(fmu: Path, tmp: Path, name: str, **start: Any) -> tuple[Any, dict[str, int]]:
    md = read_model_description(str(fmu))
    unzipped = tmp / name
    zipfile.ZipFile(fmu).extractall(unzipped)
    vr = {v.name: v.valueReference for v in md.modelVariables}
    slave = FMU2Slave(guid=md.guid, unzipDirectory=str(unzipped),
                      modelIdentifier="EVBatteryTwin", instanceName=name)  # fmt: skip
    slave.instantiate(loggingOn=True)
    slave.setupExperiment(startTime=0.0)
    slave.enterInitializationMode()
    for key, value in start.items():
        if isinstance(value, str):
            slave.setString([vr[key]], [value])
        else:
            slave.setReal([vr[key]], [float(value)])
    slave.exitInitializationMode()
    return slave, vr


def test_get_set_and_serialized_state_roll_back_exactly(fmu: Path, tmp_path: Path) -> None:
    slave, vr = _instance(fmu, tmp_path, "rollback", initial_soc=0.7)
    watch = [vr[n] for n in ("soc", "voltage_v", "temperature_c", "soh", "pack_current_a")]
    rng = np.random.default_rng(7)
    currents = rng.uniform(-150.0, 300.0, 40)

    def run(t0: float) -> list[list[float]]:
        rows = []
        for k, current in enumerate(currents):
            slave.setReal([vr["current_a"]], [float(current)])
            slave.doStep(t0 + k * 0.5, 0.5)
            rows.append(slave.getReal(watch))
        return rows

    slave.setReal([vr["current_a"]], [120.0])
    slave.doStep(0.0, 5.0)
    saved = slave.getFMUstate()
    first = run(5.0)
    blob = slave.serializeFMUstate(saved)
    slave.setFMUstate(saved)
    assert slave.getReal(watch) != first[-1]  # the outputs went back too
    assert run(5.0) == first
    restored = slave.deSerializeFMUstate(blob)
    slave.setFMUstate(restored)
    assert run(5.0) == first
    slave.freeFMUstate(saved)
    slave.freeFMUstate(restored)
    # a second instance in the same process is independent of the first
    other, _ = _instance(fmu, tmp_path, "other", initial_soc=0.3)
    assert other.getReal([vr["soc"]]) == [0.3]
    other.terminate()
    other.freeInstance()
    slave.terminate()
    slave.freeInstance()


def test_refused_inputs_and_parameters_fail_with_the_reason(
    fmu: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    slave, vr = _instance(fmu, tmp_path, "bounds")
    slave.setReal([vr["current_a"]], [2e5])
    with pytest.raises(FMICallException) as info:
        slave.doStep(0.0, 1.0)
    assert info.value.status == 2  # fmi2Discard: the step was not taken
    assert "current_a" in capfd.readouterr().out
    slave.setReal([vr["current_a"]], [10.0])
    slave.doStep(0.0, 1.0)  # the instance goes on with a valid input
    slave.terminate()
    slave.freeInstance()
    with pytest.raises(FMICallException):
        _instance(fmu, tmp_path, "preset", vehicle="no-such-car")
    assert "unknown preset 'no-such-car'" in capfd.readouterr().out


def test_calibrated_inline_vehicle_as_parameter(
    fmu: Path, client: TestClient, udds: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The vehicle parameter takes a .json file of a calibration's inline vehicle."""
    vehicle = {"base": "sv1ev3", "pack": {"cell_capacity_ah": 180.0, "cells_series": 110}}
    path = tmp_path / "calibrated.json"
    path.write_text(json.dumps({"vehicle": vehicle, "note": "from bridge calibrate"}))
    res = _run(fmu, 1.0, 600.0, _signals(udds, ["current_a", "ambient_c"]), vehicle=str(path))
    out = _step(client, {"vehicle": vehicle, "samples": _samples_of(res, "current_a")})
    _assert_matches(res, out)


def test_make_fmu_builds_and_a_fresh_python_runs_it(tmp_path: Path) -> None:
    """What a user does: `make fmu`'s command, then FMPy in a new process elsewhere."""
    out = tmp_path / "dist" / "EVBatteryTwin.fmu"
    build_cmd = [sys.executable, "-m", "twin_service.fmu", "--out", str(out)]
    done = subprocess.run(build_cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "fmpy.validate: no problems" in done.stderr
    script = (
        "import fmpy, sys\n"
        "r = fmpy.simulate_fmu(sys.argv[1], stop_time=60, output_interval=1,\n"
        "    start_values={'initial_soc': 0.5}, input=None)\n"
        "print(r['soc'][-1], r['voltage_v'][-1])\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(out)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    soc, voltage = map(float, run.stdout.split()[-2:])
    assert soc == 0.5 and 300.0 < voltage < 450.0  # no input: the pack rests


def test_a_python_without_the_package_is_told_what_to_install(fmu: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'twin_service':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import fmpy\n"
        "try:\n"
        "    fmpy.simulate_fmu(sys.argv[1], stop_time=1, debug_logging=True)\n"
        "except Exception as exc:\n"
        "    print('failed:', exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(fmu)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "failed: Failed to instantiate model" in run.stdout, run.stdout + run.stderr
    assert "pip install 'ev-battery-twin[fmu]'" in run.stdout


def test_a_c_master_runs_it_as_a_non_python_tool_would(fmu: Path, tmp_path: Path) -> None:
    """OpenModelica and Simulink load the FMU's binary into a process without Python: a C
    master does the same here, with libpython preloaded as docs/fmu.md says, and gets the
    model's numbers and a clean exit."""
    gcc = shutil.which("gcc")
    libdir, library = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if gcc is None or not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        if os.environ.get("CI"):
            pytest.fail("gcc and a shared libpython are needed for the C master")
        pytest.skip("needs gcc and a shared libpython")
    master = tmp_path / "fmi2_master"
    headers = Path(fmpy.__file__).parent / "c-code"
    source = ROOT / "tests" / "support" / "fmi2_master.c"
    subprocess.run([gcc, "-O1", "-o", str(master), str(source), f"-I{headers}", "-ldl"],
                   check=True, timeout=120)  # fmt: skip
    unzipped = tmp_path / "unzipped"
    zipfile.ZipFile(fmu).extractall(unzipped)
    md = read_model_description(str(fmu))
    vr = {v.name: v.valueReference for v in md.modelVariables}
    site = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "LD_PRELOAD": str(Path(libdir) / library),
           "PYTHONPATH": os.pathsep.join([site, str(ROOT)])}  # fmt: skip
    args = [str(master), str(unzipped), md.guid, str(vr["current_a"]), str(vr["soc"]),
            str(vr["voltage_v"]), "100", "1", "600"]  # fmt: skip
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    soc, voltage = map(float, done.stdout.split())
    model = PackCosim()
    model.start()
    model.current_a = 100.0
    for _ in range(600):
        out = model.step(1.0)
    assert (soc, voltage) == (out.soc, out.voltage_v)


def test_model_description_is_fmi_2_schema_ordered(fmu: Path) -> None:
    root = ET.fromstring(zipfile.ZipFile(fmu).read("modelDescription.xml"))
    order = [child.tag for child in root]
    expected = ["CoSimulation", "UnitDefinitions", "LogCategories", "DefaultExperiment",
                "ModelVariables", "ModelStructure"]  # fmt: skip
    assert order == expected
