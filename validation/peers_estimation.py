"""Peer run for the state-estimation section, executed in the peers' venv (.venv-peers, `make
bench-peers-venv`): `.venv-peers/bin/python -m validation.peers_estimation WORKER` with a JSON
job on stdin and a JSON answer on stdout. Imports only the standard library, numpy and the peer.

Workers
  dfn_drive   PyBaMM's DFN with the Prada2013 parameter set (A123-type 2.3 Ah LFP cell),
              isothermal, scaled to a pack: `cells_series` cells in series and as many in
              parallel as make `capacity_ah` (the cell's capacity between its cut-offs, from
              the set's stoichiometry window); driven by a pack current held over each sample
              (`dt_s`). Answers the pack voltage, the applied pack current (mean over each
              sample) and PyBaMM's SOC at the end of every sample.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

KELVIN = 273.15
RAMP_S = 0.1  # each step of the held current is a ramp this long (the solver needs it continuous)


def dfn_drive(job: dict[str, Any]) -> dict[str, Any]:
    import pybamm

    pv = pybamm.ParameterValues("Prada2013")
    param = pybamm.LithiumIonParameters()
    x0, x100, _, _ = pybamm.lithium_ion.get_min_max_stoichiometries(pv, param)
    # PyBaMM's SOC is linear in the negative electrode's stoichiometry over [x0, x100], so the
    # cell's capacity between its cut-offs is the electrode's lithium capacity over that window.
    cell_ah = float(pv.evaluate(param.n.Q_init)) * float(x100 - x0)
    parallel = job["capacity_ah"] / cell_ah
    cell_i = np.asarray(job["current_a"], dtype=float) / parallel
    grid = np.concatenate([[0.0], np.cumsum(np.asarray(job["dt_s"], dtype=float))])
    # The held current as a piecewise-linear function: steps become RAMP_S ramps starting on
    # the sample boundary (so the voltage at a sample's end is that of the sample's current),
    # and every ramp is a solver stop (else the adaptive step can stride over a short pulse).
    t_pts, i_pts = [0.0], [float(cell_i[0])]
    for k in np.flatnonzero(np.diff(cell_i)) + 1:
        t_pts += [float(grid[k]), float(grid[k]) + RAMP_S]
        i_pts += [float(cell_i[k - 1]), float(cell_i[k])]
    t_pts.append(float(grid[-1]))
    i_pts.append(float(cell_i[-1]))
    temperature_k = job["temperature_c"] + KELVIN
    pv["Ambient temperature [K]"] = temperature_k
    pv["Initial temperature [K]"] = temperature_k
    pv["Current function [A]"] = pybamm.Interpolant(
        np.array(t_pts), np.array(i_pts), pybamm.t, interpolator="linear"
    )
    sim = pybamm.Simulation(
        pybamm.lithium_ion.DFN(), parameter_values=pv, solver=pybamm.IDAKLUSolver()
    )
    sol = sim.solve(t_eval=np.unique(t_pts), t_interp=grid, initial_soc=job["soc0"])
    t = np.asarray(sol["Time [s]"].entries, dtype=float)
    if t[-1] < grid[-1] - 1e-6:
        raise RuntimeError(f"the DFN stopped at {t[-1]:.0f} s of {grid[-1]:.0f} (a cut-off)")
    v = np.interp(grid, t, np.asarray(sol["Voltage [V]"].entries, dtype=float))
    q_ah = np.interp(grid, t, np.asarray(sol["Discharge capacity [A.h]"].entries, dtype=float))
    soc = job["soc0"] - q_ah / cell_ah
    return {
        "voltage_v": (v[1:] * job["cells_series"]).tolist(),
        "current_a": (np.diff(q_ah) * 3600.0 * parallel / np.diff(grid)).tolist(),
        "soc": soc[1:].tolist(),
        "cell_capacity_ah": cell_ah,
        "cells_parallel": parallel,
        "version": f"pybamm {pybamm.__version__}",
    }


WORKERS = {"dfn_drive": dfn_drive}


def main() -> None:
    job = json.loads(sys.stdin.read())
    print(json.dumps(WORKERS[sys.argv[1]](job)))


if __name__ == "__main__":
    main()
