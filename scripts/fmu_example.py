"""The FMU's worked example (docs/fmu.md): two WLTC class 3b passes at 35 °C, then a DC fast
charge, run by FMPy.

The vehicle side is what a Modelica or Simulink model would compute: the road load of the
default preset's car on the cycle (bridge/roadload.py), turned into a demand at the battery
terminals with a flat 90 % drivetrain efficiency and 0.6 kW of auxiliaries; then a charger that
offers 150 kW for 30 minutes (`charging` true). FMPy drives the FMU in power mode with that
table and records the outputs every second; the pack takes what its limits allow.

    .venv/bin/python scripts/fmu_example.py [--fmu dist/EVBatteryTwin.fmu] [--plot PNG]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.cycles import load_cycle  # noqa: E402
from bridge.presets import local_preset  # noqa: E402
from bridge.roadload import RoadLoadParams, road_load  # noqa: E402

EFFICIENCY = 0.90
AUX_KW = 0.6
CHARGER_KW = 150.0
CHARGE_S = 1800
OUTPUTS = ["soc", "voltage_v", "pack_current_a", "pack_power_kw", "temperature_c", "soh",
           "max_discharge_kw", "max_regen_kw", "tms_kw", "power_limited"]  # fmt: skip


def demand(vehicle: str, passes: int) -> np.ndarray:
    """FMPy's input table: time, power_kw (discharge > 0), ambient_c and charging, held over
    each second (FMPy interpolates linearly between rows, so every change is a step)."""
    cycle = load_cycle("wltc_class3b")
    t = np.concatenate([cycle.time_s + k * (cycle.time_s[-1] + 1.0) for k in range(passes)])
    v = np.tile(cycle.speed_m_s, passes)
    load = road_load(t, v, RoadLoadParams.from_preset(local_preset(vehicle)))
    motor_kw = load.motor_power_w / 1000.0
    battery_kw = np.where(motor_kw > 0, motor_kw / EFFICIENCY, motor_kw * EFFICIENCY) + AUX_KW
    # (start of the interval, its demand, plugged in)
    steps = [(float(ti), float(p), False) for ti, p in zip(t[:-1], battery_kw, strict=True)]
    end = float(t[-1])
    steps += [(end + k, -CHARGER_KW, True) for k in range(CHARGE_S)]
    rows = []
    ends = [s[0] for s in steps[1:]] + [end + CHARGE_S]
    for (t0, p, plugged), t1 in zip(steps, ends, strict=True):
        rows += [(t0, p, 35.0, plugged), (t1, p, 35.0, plugged)]
    dtype = [("time", np.float64), ("power_kw", np.float64), ("ambient_c", np.float64),
             ("charging", np.bool_)]  # fmt: skip
    return np.array(rows, dtype=dtype)


def run(fmu: Path, vehicle: str, passes: int, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    from fmpy import simulate_fmu

    signals = demand(vehicle, passes)
    result = simulate_fmu(
        str(fmu), stop_time=float(signals["time"][-1]), output_interval=step_s, input=signals,
        start_values={"vehicle": vehicle, "input_mode": "power", "initial_soc": 0.5},
        output=OUTPUTS + ["power_kw", "charging"],
    )  # fmt: skip
    return signals, result


def plot(signals: np.ndarray, res: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = res["time"] / 60.0
    fig, ax = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    ax[0].plot(signals["time"] / 60.0, signals["power_kw"], lw=0.6, color="0.6", label="demand")
    ax[0].plot(t, res["pack_power_kw"], lw=0.8, label="pack_power_kw")
    ax[0].plot(t, res["max_discharge_kw"], lw=1.0, ls="--", label="max_discharge_kw")
    ax[0].plot(t, -res["max_regen_kw"], lw=1.0, ls="--", label="-max_regen_kw")
    ax[0].set_ylabel("kW")
    ax[0].legend(loc="upper right", bbox_to_anchor=(1.0, 0.9), ncol=2, fontsize=8)
    ax[1].plot(t, res["soc"] * 100.0)
    ax[1].set_ylabel("soc (%)")
    ax[2].plot(t, res["voltage_v"], lw=0.8)
    ax[2].set_ylabel("voltage_v (V)")
    twin = ax[2].twinx()
    twin.plot(t, res["pack_current_a"], lw=0.5, color="tab:red", alpha=0.6)
    twin.set_ylabel("pack_current_a (A)", color="tab:red")
    ax[3].plot(t, res["temperature_c"], label="temperature_c")
    ax[3].set_ylabel("°C")
    ax[3].set_xlabel("time (min)")
    twin3 = ax[3].twinx()
    twin3.plot(t, res["tms_kw"], lw=0.8, color="tab:green")
    twin3.set_ylabel("tms_kw (kW)", color="tab:green")
    fig.suptitle("EVBatteryTwin.fmu in FMPy: 2 × WLTC class 3b, a 150 kW charger, 35 °C, 1 s steps")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmu", type=Path, default=ROOT / "dist" / "EVBatteryTwin.fmu")
    parser.add_argument("--vehicle", default="sv1ev3")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--step-s", type=float, default=1.0)
    parser.add_argument("--plot", type=Path, help="write the figure here (needs matplotlib)")
    args = parser.parse_args(argv)
    if not args.fmu.exists():
        from twin_service.fmu.build import build

        print(f"building {args.fmu}")
        build(args.fmu)
    signals, res = run(args.fmu, args.vehicle, args.passes, args.step_s)
    dt = np.diff(res["time"])
    energy = float(np.sum(res["pack_power_kw"][1:] * dt)) / 3600.0
    print(f"{res['time'][-1] / 60:.1f} min in {res.size - 1} steps of {args.step_s:g} s")
    print(f"soc {res['soc'][0]:.3f} -> {res['soc'][-1]:.3f}, {energy:.2f} kWh from the pack")
    print(f"temperature {res['temperature_c'][0]:.1f} -> max {res['temperature_c'].max():.1f} °C"
          f", thermal management up to {res['tms_kw'].max():.2f} kW")  # fmt: skip
    print(f"power limited in {int(np.sum(res['power_limited']))} steps; "
          f"voltage {res['voltage_v'].min():.1f}..{res['voltage_v'].max():.1f} V")  # fmt: skip
    if args.plot:
        plot(signals, res, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
