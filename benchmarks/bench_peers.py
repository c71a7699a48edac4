"""Peers: PyBaMM (Thevenin ECM, SPM on LFP) and NREL FASTSim 3 on the same one-hour 1 Hz drive,
seconds of wall time per simulated hour, against our pack model measured in the same run.

The peers live in their own venv (.venv-peers, see benchmarks/peers_requirements.txt) so they
never touch the service's dependencies. This file runs from the main venv and re-runs itself as
`.venv-peers/bin/python -m benchmarks.bench_peers --worker NAME` for each peer, one subprocess per
peer with a wall-time cap, the drive profile passed as JSON on stdin. A missing venv or package
gives a "skipped" row; the table is printed regardless.

Only solve/run time is timed, after one warm-up run that builds and compiles (PyBaMM's
discretisation and CasADi set-up, numba's compilation), best of a few repeats. Module-level
imports are the standard library and numpy only, because the worker side has neither httpx nor
twin_service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
HOUR_S = 3600
BUDGET_S = 110.0  # the whole benchmark, with the peers' caps cut to what is left of it
INSTALL_HINT = "make bench-peers-venv"

# The same drive scaled to one cell at the same C-rate: cell power = pack power x (cell nominal
# energy / pack nominal energy). Nominal cell voltages: ECM_Example is a 100 Ah cell with a
# 3.2-4.2 V window (NMC-like, 3.7 V); Prada2013 is A123's 2.3 Ah LFP 26650 (3.3 V).
ECM_CELL_WH = 100.0 * 3.7
LFP_CELL_WH = 2.3 * 3.3


# ----------------------------------------------------------------------------- worker side
def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _pybamm_result(sol, elapsed: float, extra: dict) -> dict:
    v = np.asarray(sol["Voltage [V]"].entries)
    return {
        "seconds": elapsed,
        "simulated_s": float(sol.t[-1] - sol.t[0]),
        "points": int(len(sol.t)),
        "check": f"V {v.min():.3f}..{v.max():.3f}, end {v[-1]:.3f} V",
        **extra,
    }


def worker_pybamm_thevenin(profile: dict, mode: str) -> dict:
    import pybamm

    t = np.asarray(profile["t_s"], dtype=float)
    p_cell = np.asarray(profile["power_w"]) * ECM_CELL_WH / profile["pack_wh"]
    model = pybamm.equivalent_circuit.Thevenin()
    pv = model.default_parameter_values  # "ECM_Example"
    pv["Initial SoC"] = profile["soc0"]
    if mode == "power":
        # Documented drive-cycle route for a power demand: an Experiment with a drive-cycle step
        # (a two-column [t, P] array); period 1 s so the solution is reported at every sample.
        step = pybamm.step.power(np.column_stack([t, p_cell]))
        exp = pybamm.Experiment([step], period="1 second")
        sim = pybamm.Simulation(model, parameter_values=pv, experiment=exp)

        def solve():
            return sim.solve()
    else:
        # Documented drive-cycle route for a current demand: an Interpolant over pybamm.t as the
        # "Current function [A]", output at every sample.
        i_cell = p_cell / 3.7
        pv["Current function [A]"] = pybamm.Interpolant(t, i_cell, pybamm.t)
        sim = pybamm.Simulation(model, parameter_values=pv)

        def solve():
            return sim.solve(t_eval=[t[0], t[-1]], t_interp=t)

    solve()  # warm-up: build, discretise, set up the solver
    elapsed, sol = _best(solve, profile["repeat"])
    return _pybamm_result(sol, elapsed, {"solver": type(sim.solver).__name__})


def worker_pybamm_spm(profile: dict) -> dict:
    import pybamm

    t = np.asarray(profile["t_s"], dtype=float)
    p_cell = np.asarray(profile["power_w"]) * LFP_CELL_WH / profile["pack_wh"]
    model = pybamm.lithium_ion.SPM()
    pv = pybamm.ParameterValues("Prada2013")
    exp = pybamm.Experiment([pybamm.step.power(np.column_stack([t, p_cell]))], period="1 second")
    sim = pybamm.Simulation(model, parameter_values=pv, experiment=exp)

    def solve():
        return sim.solve(initial_soc=profile["soc0"])

    solve()
    elapsed, sol = _best(solve, profile["repeat"])
    return _pybamm_result(sol, elapsed, {"solver": type(sim.solver).__name__})


def worker_fastsim(profile: dict) -> dict:
    import fastsim as fsim

    speed = np.asarray(profile["speed_mps"], dtype=float)
    t = np.arange(len(speed), dtype=float)
    cyc = fsim.Cycle.from_dict(
        {"time_seconds": t.tolist(), "speed_meters_per_second": speed.tolist()}
    )
    veh = fsim.Vehicle.from_resource("2022 Tesla Model 3 RWD thrml.yaml")
    veh.set_save_interval(1)  # per-step history, as ours and PyBaMM return per-sample outputs

    def run():
        sd = fsim.SimDrive(veh, cyc)  # fresh copies, built outside the timed section
        t0 = time.perf_counter()
        sd.run()
        return time.perf_counter() - t0, sd

    run()  # warm-up
    elapsed, sd = float("inf"), None
    for _ in range(profile["repeat"]):
        el, sd = run()
        elapsed = min(elapsed, el)
    res = sd.to_dict()["veh"]["pt_type"]["BEV"]["res"]["state"]
    return {
        "seconds": elapsed,
        "simulated_s": float(t[-1] - t[0]),
        "points": len(t),
        "check": f"BEV SOC end {res['soc']:.3f}, {float(np.sum(speed[1:])) / 1000:.1f} km",
        "solver": "SimDrive.run",
    }


WORKERS = {
    "pybamm-thevenin-power": lambda p: worker_pybamm_thevenin(p, "power"),
    "pybamm-thevenin-current": lambda p: worker_pybamm_thevenin(p, "current"),
    "pybamm-spm": worker_pybamm_spm,
    "fastsim": worker_fastsim,
}
WORKER_PACKAGE = {"fastsim": "fastsim"}  # others: pybamm


def worker_main(name: str) -> None:
    profile = json.loads(sys.stdin.read())
    package = WORKER_PACKAGE.get(name, "pybamm")
    try:
        mod = __import__(package)
    except ImportError as e:
        print(json.dumps({"skipped": f"{package} not installed ({e})"}))
        return
    out = WORKERS[name](profile)
    out["version"] = f"{package} {getattr(mod, '__version__', '?')}"
    if package == "pybamm":
        import casadi

        out["version"] += f", casadi {casadi.__version__}"
    print(json.dumps(out))


# ----------------------------------------------------------------------------- main side
def run_peer(name: str, profile: dict, cap_s: float) -> dict:
    """Run one peer worker in the peers venv; a dict with seconds/… or skipped/error."""
    package = WORKER_PACKAGE.get(name, "pybamm")
    if not PEERS_PY.exists():
        return {"skipped": f"skipped: {package} not installed ({INSTALL_HINT})"}
    env = {**os.environ, "PYBAMM_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run(
            [str(PEERS_PY), "-m", "benchmarks.bench_peers", "--worker", name],
            input=json.dumps(profile),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=cap_s,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"capped: did not finish within {cap_s:.0f} s (incl. import and build)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"failed: {tail[:160]}"}
    out = json.loads(lines[-1])
    if "skipped" in out:
        out["skipped"] = f"skipped: {package} not installed ({INSTALL_HINT})"
    return out


def speed_trace(n_s: int) -> tuple[np.ndarray, str]:
    """1 Hz speed trace of n_s seconds (n_s + 1 points): UDDS repeated, or a synthetic one."""
    udds = ROOT / "bridge" / "cycles" / "udds.csv"
    if udds.exists():
        v = np.loadtxt(udds, delimiter=",", skiprows=1, usecols=1)
        reps = -(-(n_s + 1) // len(v))
        src = f"UDDS x{(n_s + 1) / len(v):.2f} (bridge/cycles/udds.csv)"
        return np.tile(v, reps)[: n_s + 1], src
    t = np.arange(n_s + 1, dtype=float)
    v = np.clip(12.0 + 10.0 * np.sin(t / 60.0) + 4.0 * np.sin(t / 9.0), 0.0, None)
    v[0] = 0.0
    return v, "synthetic urban trace (udds.csv absent)"


def main() -> None:
    from benchmarks.common import best_of, drive_power_w, machine, table
    from twin_service.models.pack import AgingSettings, DriveInput, new_pack_state, simulate
    from twin_service.presets import PRESETS, pack_params

    t0_all = time.perf_counter()
    preset = PRESETS["sv1ev3"]
    params = pack_params(preset)
    soc0 = 0.85

    # Ours: one hour at 1 Hz (3600 samples), and the same hour at 10 Hz (36,000 samples).
    results: dict[str, float] = {}
    for hz in (1, 10):
        n = HOUR_S * hz
        t = np.arange(n) / hz
        p = drive_power_w(t)
        drive = DriveInput(
            np.full(n, 1.0 / hz), p, np.full(n, np.nan), np.full(n, 25.0), np.zeros(n)
        )
        simulate(params, new_pack_state(soc0), drive, AgingSettings())  # warm
        results[f"jit@{hz}"] = best_of(
            lambda d=drive: simulate(params, new_pack_state(soc0), d, AgingSettings())
        )
    ours = results["jit@1"]

    # The peers: the same power profile, 3601 points so the drive spans exactly one hour.
    t_peer = np.arange(HOUR_S + 1, dtype=float)
    speed, speed_src = speed_trace(HOUR_S)
    pack_wh = params.capacity_ah * params.cells_series * 3.2  # 220 Ah x 116 x 3.2 V = 81.7 kWh
    profile = {
        "t_s": t_peer.tolist(),
        "power_w": drive_power_w(t_peer).tolist(),
        "speed_mps": speed.tolist(),
        "pack_wh": pack_wh,
        "soc0": soc0,
    }
    peers = [
        (
            "PyBaMM",
            "Thevenin ECM (ECM_Example), power drive-cycle Experiment",
            "pybamm-thevenin-power",
            3,
            30.0,
        ),
        (
            "PyBaMM",
            "Thevenin ECM (ECM_Example), current Interpolant",
            "pybamm-thevenin-current",
            5,
            20.0,
        ),
        ("PyBaMM", "SPM, LFP (Prada2013), power drive-cycle Experiment", "pybamm-spm", 2, 35.0),
        ("FASTSim", "BEV 2022 Tesla Model 3 RWD, 1 Hz speed trace", "fastsim", 5, 20.0),
    ]
    rows: list[list[object]] = []
    versions: list[str] = []
    notes: list[str] = []
    for peer, model, worker, repeat, cap in peers:
        left = BUDGET_S - (time.perf_counter() - t0_all)
        if left < 5.0:
            rows.append([peer, model, "not run: benchmark time budget spent", "-"])
            continue
        out = run_peer(worker, {**profile, "repeat": repeat}, min(cap, left))
        if "seconds" not in out:
            rows.append([peer, model, out.get("skipped") or out.get("error"), "-"])
            continue
        per_hour = out["seconds"] / (out["simulated_s"] / HOUR_S)
        label = (
            model
            if out["simulated_s"] >= HOUR_S - 1
            else (f"{model} (stopped at {out['simulated_s']:.0f} s)")
        )
        rows.append([peer, label, per_hour, per_hour / ours])
        if out["version"] not in versions:
            versions.append(out["version"])
        notes.append(f"{worker}: {out['solver']}, {out['points']} output points, {out['check']}")

    rows.append(["ours", "full pack model (electrical, thermal, aging), jit kernel", ours, 1.0])
    rows.append(
        [
            "ours",
            "full pack model, jit kernel, same hour at 10 Hz (36,000 samples)",
            results["jit@10"],
            results["jit@10"] / ours,
        ]
    )

    table(
        f"Peers: one simulated hour of the 1 Hz drive ({machine()})",
        ["peer", "model", "s per simulated hour", "x ours-jit"],
        rows,
    )
    import numba

    print(
        f"\nVersions: {'; '.join(versions) or 'no peer ran'}; ours: numpy {np.__version__}, "
        f"numba {numba.__version__}."
    )
    print(
        "Drive: benchmarks.common.drive_power_w(t) at 1 Hz for one hour, scaled for the PyBaMM "
        f"cells to the pack's C-rate (x cell Wh / {pack_wh / 1000:.1f} kWh), SOC0 {soc0}; "
        f"FASTSim drives its own vehicle over {speed_src}."
    )
    print(
        "Timed: solve/run only, best of a few repeats after one warm-up; x ours-jit = how many "
        "times slower than ours (jit, 1 Hz)."
    )
    for n in notes:
        print(f"- {n}")
    print(f"\n(whole benchmark {time.perf_counter() - t0_all:.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
    else:
        main()
