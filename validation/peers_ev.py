"""Peer runs for the EV pack sections, executed in the peers' venv (.venv-peers, `make
bench-peers-venv`): `.venv-peers/bin/python -m validation.peers_ev WORKER` with a JSON job on
stdin and a JSON answer on stdout. Imports only the standard library, numpy and the peer.

Workers
  dfn_pulses    PyBaMM's DFN with the Prada2013 parameter set (A123-type 2.3 Ah LFP cell),
                isothermal at each case's temperature, a current-pulse protocol from an SOC;
                the cell voltage at every second.
  fastsim_us06  NREL FASTSim 3's `2022 Tesla Model 3 RWD thrml` over a speed trace at an
                ambient temperature, battery starting at ambient: battery temperature, battery
                HVAC electrical energy and terminal energy.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

KELVIN = 273.15


def dfn_pulses(job: dict[str, Any]) -> dict[str, Any]:
    import pybamm

    base = pybamm.ParameterValues("Prada2013")
    model = pybamm.lithium_ion.DFN()
    steps = []
    for seconds, c_rate in job["protocol"]:
        if c_rate > 0:
            steps.append(f"Discharge at {c_rate:g}C for {seconds:g} seconds")
        elif c_rate < 0:
            steps.append(f"Charge at {-c_rate:g}C for {seconds:g} seconds")
        else:
            steps.append(f"Rest for {seconds:g} seconds")
    total = sum(s for s, _ in job["protocol"])
    grid = np.arange(1.0, total + 0.5, 1.0)
    cases = []
    for case in job["cases"]:
        pv = base.copy()
        pv["Ambient temperature [K]"] = case["temperature_c"] + KELVIN
        pv["Initial temperature [K]"] = case["temperature_c"] + KELVIN
        sim = pybamm.Simulation(
            model, parameter_values=pv, experiment=pybamm.Experiment(steps, period="1 second")
        )
        sol = sim.solve(initial_soc=case["soc"])
        t = np.asarray(sol["Time [s]"].entries, dtype=float)
        v = np.asarray(sol["Voltage [V]"].entries, dtype=float)
        t, keep = np.unique(t - t[0], return_index=True)
        cases.append(
            {**case, "t_s": grid.tolist(), "voltage": np.interp(grid, t, v[keep]).tolist()}
        )
    return {"cases": cases, "capacity_ah": float(base["Nominal cell capacity [A.h]"])}


def fastsim_us06(job: dict[str, Any]) -> dict[str, Any]:
    import fastsim as fsim

    speed = np.asarray(job["speed_mps"], dtype=float)
    t = np.arange(len(speed), dtype=float)
    amb_k = job["ambient_c"] + KELVIN
    cyc = fsim.Cycle.from_dict(
        {
            "time_seconds": t.tolist(),
            "speed_meters_per_second": speed.tolist(),
            "temp_amb_air_kelvin": [amb_k] * len(t),
        }
    )
    vd = fsim.Vehicle.from_resource("2022 Tesla Model 3 RWD thrml.yaml").to_dict()
    res = vd["pt_type"]["BEV"]["res"]
    state = res["thrml"]["RESLumpedThermal"]["state"]
    state["temperature_kelvin"] = state["temp_prev_kelvin"] = amb_k
    cabin = vd.get("cabin", {}).get("LumpedCabin")
    if cabin is not None:  # the cabin starts at ambient too
        cabin["state"]["temperature_kelvin"] = cabin["state"]["temp_prev_kelvin"] = amb_k
    res["state"]["soc"] = job["soc0"]
    veh = fsim.Vehicle.from_dict(vd)
    veh.set_save_interval(1)
    sd = fsim.SimDrive(veh, cyc)
    sd.run()
    out = sd.to_dict()["veh"]
    bev = out["pt_type"]["BEV"]["res"]
    temp = np.asarray(bev["thrml"]["RESLumpedThermal"]["history"]["temperature_kelvin"]) - KELVIN
    hvac = out["hvac"]["LumpedCabinAndRES"]["history"]
    res_hvac_j = float(np.sum(hvac["pwr_aux_for_res_hvac_watts"]))  # 1 s steps
    electrical_j = float(np.sum(bev["history"]["pwr_out_electrical_watts"]))
    return {
        "temperature_c": temp[::10].tolist(),
        "peak_c": float(temp.max()),
        "end_c": float(temp[-1]),
        "res_hvac_kwh": res_hvac_j / 3.6e6,
        "terminal_kwh": electrical_j / 3.6e6,
        "distance_km": float(np.sum(speed)) / 1000.0,
        "version": f"fastsim {getattr(fsim, '__version__', '?')}",
    }


WORKERS = {"dfn_pulses": dfn_pulses, "fastsim_us06": fastsim_us06}


def main() -> None:
    job = json.loads(sys.stdin.read())
    print(json.dumps(WORKERS[sys.argv[1]](job)))


if __name__ == "__main__":
    main()
