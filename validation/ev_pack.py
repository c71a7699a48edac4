"""Sections on the pack as an EV's: a DC fast charge of both presets, drive heating over
repeated US06 against FASTSim's thermal Model 3, and current pulses against PyBaMM's DFN.

The twin runs through POST /step (in-process), with the bridge's own road-load code building
the US06 samples. The peers run in their own venv (`make bench-peers-venv`) through
validation/peers_ev.py; without it their columns say "skipped". "Before" columns are today's
core with the parameters of the model before issue 12 (validation.common.previous_model_vehicle:
one resistance at every SOC and for charge, the coarse OCV table, no hysteresis, no SOC
window, no taper, no thermal management).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from validation import common
from validation.common import (
    Figure,
    Section,
    Twin,
    cycler_vehicle,
    md_table,
    previous_model_vehicle,
    vehicle_without_computed,
)

CHARGERS = (("Model3_2024", 250.0), ("Model3_2024", 150.0), ("sv1ev3", 150.0))
CHARGE_AMBIENTS = (0.0, 25.0, 35.0)
CHARGE_FROM, CHARGE_TO = 0.1, 0.8
CHARGE_STEP_S = 10.0

HEAT_VEHICLE = "Model3_2024"  # the vehicle FASTSim's thermal model describes
HEAT_AMBIENTS = (0.0, 25.0, 35.0)
HEAT_PASSES = 6  # US06 repeated: about one hour, 77 km
HEAT_SOC0 = 0.9

PULSE_VEHICLE = "Model3_2024"
PULSE_PROTOCOL = ((10.0, 0.0), (10.0, 2.0), (40.0, 0.0), (10.0, -2.0), (40.0, 0.0))  # s, C
PULSE_SOCS = (0.15, 0.5, 0.85)
PULSE_TEMPERATURES = (10.0, 25.0, 40.0)


def run_peer(worker: str, job: dict[str, Any]) -> dict[str, Any]:
    """One worker of validation.peers_ev in the peers' venv, or {"skipped": reason}."""
    return common.run_peer("validation.peers_ev", worker, job)


# --------------------------------------------------------------------------- (a) fast charge
@dataclass
class ChargeRun:
    vehicle: str
    model: str  # "now" or "before"
    charger_kw: float
    ambient_c: float
    minutes: float | None
    peak_kw: float
    start_c: float
    peak_c: float
    end_c: float
    tms_kwh: float
    rows: list[dict[str, Any]] = field(repr=False)  # the trace up to the target


def charge_session(
    twin: Twin,
    vehicle: Any,
    vid: str,
    ambient: float,
    charger_kw: float,
    name: str,
    model: str,
    pack_c: float | None = None,
) -> ChargeRun:
    """10 -> 80 % on a DC charger (what `python -m bridge charge` does), 10 s samples, the
    pack at `pack_c` (default the ambient) to begin with."""
    start_c = ambient if pack_c is None else pack_c
    state: Any = {"soc": CHARGE_FROM, "temperature_c": start_c}
    sample = {"dt_s": CHARGE_STEP_S, "power_kw": -charger_kw, "charging": True,
              "ambient_c": ambient}  # fmt: skip
    rows: list[dict[str, Any]] = []
    while (not rows or rows[-1]["soc"] < CHARGE_TO) and len(rows) < 4 * 360:
        out = twin.step(vehicle_id=vid, vehicle=vehicle, state=state, samples=[sample] * 60,
                        options={"trace": True})  # fmt: skip
        state = out["state"]
        rows += out["trace"]
    end = next((i for i, r in enumerate(rows) if r["soc"] >= CHARGE_TO), None)
    used = rows if end is None else rows[: end + 1]
    temps = [r["temperature"] for r in used]
    return ChargeRun(
        vehicle=name,
        model=model,
        charger_kw=charger_kw,
        ambient_c=ambient,
        minutes=None if end is None else (end + 1) * CHARGE_STEP_S / 60.0,
        peak_kw=max(-r["power_kw"] for r in used),
        start_c=start_c,
        peak_c=max(temps),
        end_c=temps[-1],
        tms_kwh=sum(r["tms_kw"] for r in used) * CHARGE_STEP_S / 3600.0,
        rows=used,
    )


def compute_charge(twin: Twin) -> list[ChargeRun]:
    runs = []
    for vehicle, kw in CHARGERS:
        before = previous_model_vehicle(vehicle_without_computed(twin.preset(vehicle)))
        before["id"] = f"{vehicle}-before"
        for amb in CHARGE_AMBIENTS:
            vid = f"val-fc-{vehicle}-{kw:g}-{amb:g}"
            runs.append(charge_session(twin, vehicle, vid, amb, kw, vehicle, "now"))
            runs.append(charge_session(twin, before, vid + "-before", amb, kw, vehicle, "before"))
    return runs


def render_charge(runs: list[ChargeRun]) -> Section:
    rows = []
    for r in runs:
        rows.append(
            [
                f"`{r.vehicle}`",
                r.model,
                f"{r.charger_kw:g}",
                f"{r.ambient_c:g}",
                "not reached" if r.minutes is None else f"{r.minutes:.1f}",
                f"{r.peak_kw:.0f}",
                f"{r.peak_c:.1f}",
                f"{r.peak_c - r.start_c:+.1f}",
                f"{r.end_c:.1f}",
                f"{r.tms_kwh:.2f}",
            ]
        )
    table = md_table(
        ["preset", "model", "charger kW", "ambient °C", f"{CHARGE_FROM:.0%}→{CHARGE_TO:.0%} min",
         "peak kW", "peak °C", "rise K", "end °C", "TMS kWh"],
        rows,
    )  # fmt: skip
    now = [r for r in runs if r.model == "now"]
    m3 = {r.ambient_c: r for r in now if r.vehicle == "Model3_2024" and r.charger_kw == 250.0}
    m3_150 = {(r.model, r.ambient_c): r for r in runs
              if r.vehicle == "Model3_2024" and r.charger_kw == 150.0}  # fmt: skip
    body = (
        "A DC fast charge from 10 % to 80 % SOC on a charger of the given power, the pack and "
        "the ambient at the same temperature to begin with, 10 s samples (`charging: true`, "
        "`power_kw` = −charger power) through `/step`, as `python -m bridge charge` sends them. "
        "The pack takes what its taper (C-rate over SOC, derated over temperature) and voltage "
        "limit accept; thermal management heats a cold pack on the charger (to its "
        "preconditioning target) and cools above its set point. *Before* is the previous "
        "model: no taper, no thermal management.\n\n"
        f"{table}\n\n"
        "References: a 2022+ Model 3 RWD (LFP) charges 10→80 % in about 25–30 min with a "
        "peak near 170 kW that tapers above ~50 % SOC; actively cooled LFP packs rise about "
        "10–20 K (REFERENCES.md). A cold pack rises more: it is heated on purpose first. "
        "The TMS energy is the loop's electrical energy, supplied by the charger while plugged "
        "in. `sv1ev3`'s taper and loop are assumptions (Kia quotes 31 min for 10–80 %)."
    )
    old, new = m3_150[("before", 35.0)], m3_150[("now", 35.0)]
    head = (
        f"DC fast charge, Model 3 on 250 kW at 25 °C: 10→80 % in {m3[25.0].minutes:.1f} min, "
        f"peak {m3[25.0].peak_kw:.0f} kW; on 150 kW at 35 °C the pack peaks at "
        f"{new.peak_c:.1f} °C (before: {old.peak_c:.1f} °C)"
    )
    return Section("charge", "9. DC fast charge 10→80 %", body, headline=[head])


# ------------------------------------------------------------------ (b) drive heating, US06
@dataclass
class HeatRun:
    ambient_c: float
    twin: dict[str, float]
    before: dict[str, float]
    fastsim: dict[str, Any]
    twin_series: list[float] = field(default_factory=list)  # every 10 s
    before_series: list[float] = field(default_factory=list)


def us06_samples(twin: Twin, ambient: float) -> list[dict[str, Any]]:
    from bridge.roadload import RoadLoadParams
    from bridge.sources.cycle import cycle_samples

    params = RoadLoadParams.from_preset(twin.preset(HEAT_VEHICLE))
    return [
        s.to_wire() for s in cycle_samples("us06", params, repeat=HEAT_PASSES, ambient_c=ambient)
    ]


def _drive(twin: Twin, vehicle: Any, vid: str, samples: list[dict[str, Any]],
           ambient: float) -> tuple[dict[str, float], list[float]]:  # fmt: skip
    state: Any = {"soc": HEAT_SOC0, "temperature_c": ambient}
    temps: list[float] = []
    for k in range(0, len(samples), 2000):
        out = twin.step(vehicle_id=vid, vehicle=vehicle, state=state,
                        samples=samples[k : k + 2000], options={"trace": True})  # fmt: skip
        state = out["state"]
        temps += [r["temperature"] for r in out["trace"]]
    km = state["total_distance_km"]
    net = state["energy_discharged_kwh"] - state["energy_charged_kwh"]
    return {
        "peak_c": max(temps),
        "end_c": temps[-1],
        "tms_kwh": state["tms_energy_kwh"],
        "wh_per_km": net * 1000.0 / km,
        "km": km,
    }, temps[::10]


def compute_heating(twin: Twin) -> list[HeatRun]:
    before = previous_model_vehicle(vehicle_without_computed(twin.preset(HEAT_VEHICLE)))
    before["id"] = f"{HEAT_VEHICLE}-before"
    runs = []
    for amb in HEAT_AMBIENTS:
        samples = us06_samples(twin, amb)
        now, now_series = _drive(twin, HEAT_VEHICLE, f"val-heat-{amb:g}", samples, amb)
        old, old_series = _drive(twin, before, f"val-heat0-{amb:g}", samples, amb)
        speed = [s.get("wheel_speed_m_s", 0.0) for s in samples]
        peer = run_peer("fastsim_us06", {"speed_mps": speed, "ambient_c": amb,
                                         "soc0": HEAT_SOC0})  # fmt: skip
        runs.append(HeatRun(amb, now, old, peer, now_series, old_series))
    return runs


def render_heating(runs: list[HeatRun]) -> Section:
    skipped = next((r.fastsim["skipped"] for r in runs if "skipped" in r.fastsim), None)
    rows = []
    for r in runs:
        fs = r.fastsim
        fs_cols = (
            ["—"] * 3
            if "skipped" in fs
            else [f"{fs['peak_c']:.1f} / {fs['end_c']:.1f}", f"{fs['res_hvac_kwh']:.2f}",
                  f"{fs['terminal_kwh'] * 1000 / fs['distance_km']:.0f}"]
        )  # fmt: skip
        rows.append(
            [
                f"{r.ambient_c:g}",
                f"{r.twin['peak_c']:.1f} / {r.twin['end_c']:.1f}",
                f"{r.twin['tms_kwh']:.2f}",
                f"{r.twin['wh_per_km']:.0f}",
                *fs_cols,
                f"{r.before['peak_c']:.1f} / {r.before['end_c']:.1f}",
                f"{r.before['wh_per_km']:.0f}",
            ]
        )
    table = md_table(
        ["ambient °C", "twin peak / end °C", "twin TMS kWh", "twin Wh/km", "FASTSim peak / end °C",
         "FASTSim battery HVAC kWh", "FASTSim Wh/km", "before peak / end °C", "before Wh/km"],
        rows,
    )  # fmt: skip
    km = runs[0].twin["km"]
    peer_note = (
        f"FASTSim {skipped}."
        if skipped
        else f"FASTSim ({runs[0].fastsim.get('version', '')}) drives its own "
        "`2022 Tesla Model 3 RWD thrml` over the same speed trace, battery and cabin starting "
        "at ambient; its battery loss comes from a constant 98.5 % efficiency, its HVAC is a "
        "PID loop on the same set points, and its Wh/km includes its cabin HVAC."
    )
    body = (
        f"`{HEAT_VEHICLE}` driven over US06 repeated {HEAT_PASSES} times ({km:.0f} km, about "
        f"an hour) from SOC {HEAT_SOC0:g}, pack at ambient to begin with, samples from the "
        "bridge's road-load model through `/step`. Battery temperature, the energy of the "
        "battery's thermal management and the net terminal energy per km.\n\n"
        f"{table}\n\n{peer_note}{_rise_note(runs)} The twin's Wh/km rises in the cold mostly "
        "because regeneration is cut (the charge derating below 20 °C applies to regen) and the "
        "resistance is higher; near full the taper cuts regeneration too. The loop heats the "
        "pack to 7 °C and holds it at 37 °C; *before* there was no loop, no taper and "
        "regeneration was limited only by power."
    )
    figures = [
        Figure(
            "validation_us06_heating.png",
            "Battery temperature over repeated US06: twin, previous model and FASTSim",
            lambda plt: _heat_figure(plt, runs),
        )
    ]
    hot = next(r for r in runs if r.ambient_c == 35.0)
    head = (
        f"US06 x{HEAT_PASSES} at 35 °C: pack peak {hot.twin['peak_c']:.1f} °C with the loop "
        f"(before {hot.before['peak_c']:.1f} °C)"
        + ("" if "skipped" in hot.fastsim else f", FASTSim {hot.fastsim['peak_c']:.1f} °C")
    )
    return Section("heating", "10. Drive heating over repeated US06", body, figures, [head])


def _rise_note(runs: list[HeatRun]) -> str:
    """How much each pack warms where no loop acts (25 degC), twin against FASTSim."""
    mild = next((r for r in runs if r.ambient_c == 25.0), None)
    if mild is None or "skipped" in mild.fastsim:
        return ""
    return (
        f" At 25 °C, inside both loops' dead bands, the twin's pack warms "
        f"{mild.twin['end_c'] - 25.0:.1f} K over the hour and FASTSim's "
        f"{mild.fastsim['end_c'] - 25.0:.1f} K: the same heat capacity, and Joule losses of "
        "similar size (the twin's from its resistance map, FASTSim's from a fixed efficiency)."
    )


def _heat_figure(plt: Any, runs: list[HeatRun]) -> Any:
    fig, ax = plt.subplots(figsize=(7.5, 4.0), layout="constrained")
    for r, color in zip(runs, ("tab:blue", "tab:green", "tab:red"), strict=False):
        t = np.arange(len(r.twin_series)) * 10.0 / 60.0
        ax.plot(t, r.twin_series, color=color, label=f"twin, {r.ambient_c:g} °C")
        ax.plot(
            t, r.before_series[: len(t)], color=color, ls=":", label=f"before, {r.ambient_c:g} °C"
        )
        if "skipped" not in r.fastsim:
            tf = np.arange(len(r.fastsim["temperature_c"])) * 10.0 / 60.0
            ax.plot(tf, r.fastsim["temperature_c"], color=color, ls="--",
                    label=f"FASTSim, {r.ambient_c:g} °C")  # fmt: skip
    ax.set_xlabel("time (min)")
    ax.set_ylabel("battery temperature (°C)")
    ax.set_title(f"{HEAT_VEHICLE}, US06 x{HEAT_PASSES}")
    ax.legend(fontsize=7, ncol=3)
    return fig


# --------------------------------------------------------------------- (c) pulses vs DFN
@dataclass
class PulseCase:
    soc: float
    temperature_c: float
    dfn: list[float] | None
    now: list[float]
    before: list[float]

    def errors(self, which: str) -> tuple[float, float]:
        """(max, RMS) |twin - DFN| in mV per cell over the protocol."""
        assert self.dfn is not None
        d = (np.asarray(getattr(self, which)) - np.asarray(self.dfn)) * 1000.0
        return float(np.abs(d).max()), float(np.sqrt(np.mean(d**2)))

    def drop(self, which: str) -> float:
        """mV from rest to the end of the 10 s discharge pulse."""
        v = self.dfn if which == "dfn" else getattr(self, which)
        assert v is not None
        i0 = int(PULSE_PROTOCOL[0][0]) - 1
        i1 = int(PULSE_PROTOCOL[0][0] + PULSE_PROTOCOL[1][0]) - 1
        return (v[i0] - v[i1]) * 1000.0


def _pulse_samples(capacity_ah: float, temperature: float) -> list[dict[str, Any]]:
    samples = []
    for seconds, c_rate in PULSE_PROTOCOL:
        samples += [{"dt_s": 1.0, "current_a": c_rate * capacity_ah,
                     "ambient_c": temperature}] * int(seconds)  # fmt: skip
    return samples


def compute_pulses(twin: Twin) -> tuple[list[PulseCase], dict[str, Any]]:
    preset = twin.preset(PULSE_VEHICLE)
    cap, series = preset["pack"]["capacity_ah"], preset["pack"]["cells_series"]
    now_v = cycler_vehicle(preset, f"{PULSE_VEHICLE}-isothermal", 1e6)
    before_v = previous_model_vehicle(now_v)
    before_v["id"] = f"{PULSE_VEHICLE}-isothermal-before"
    jobs = [{"soc": s, "temperature_c": t} for s in PULSE_SOCS for t in PULSE_TEMPERATURES]
    peer = run_peer("dfn_pulses", {"protocol": [list(p) for p in PULSE_PROTOCOL], "cases": jobs})
    dfn = {(c["soc"], c["temperature_c"]): c["voltage"] for c in peer.get("cases", [])}
    cases = []
    for job in jobs:
        out = {}
        for key, vehicle in (("now", now_v), ("before", before_v)):
            r = twin.step(vehicle_id=f"val-pulse-{key}", vehicle=vehicle,
                          state={"soc": job["soc"], "temperature_c": job["temperature_c"]},
                          samples=_pulse_samples(cap, job["temperature_c"]),
                          options={"trace": True})  # fmt: skip
            out[key] = [row["voltage"] / series for row in r["trace"]]
        cases.append(PulseCase(job["soc"], job["temperature_c"],
                               dfn.get((job["soc"], job["temperature_c"])), out["now"],
                               out["before"]))  # fmt: skip
    return cases, peer


def render_pulses(data: tuple[list[PulseCase], dict[str, Any]]) -> Section:
    cases, peer = data
    protocol = ", ".join(
        f"{s:g} s " + ("rest" if c == 0 else f"{abs(c):g}C {'discharge' if c > 0 else 'charge'}")
        for s, c in PULSE_PROTOCOL
    )
    intro = (
        f"A current-pulse protocol ({protocol}) from rest at three SOCs and three "
        f"temperatures, held isothermal, 1 s samples; the twin's cell voltage (`{PULSE_VEHICLE}` "
        "pack voltage / cells in series, at the same C-rate) against PyBaMM's DFN with the "
        "`Prada2013` parameter set (A123-type 2.3 Ah LFP cell, isothermal at the same "
        "temperature). The twin's cell is the Sony cell's map scaled by capacity, a different "
        "cell from the DFN's, so this measures how far the twin is from an electrochemical "
        "model, not a fit to it. *Before*: the previous model's parameters."
    )
    if "skipped" in peer:
        return Section("pulses", "11. Current pulses against PyBaMM's DFN",
                       f"{intro}\n\nPyBaMM {peer['skipped']}.")  # fmt: skip
    rows = []
    for c in cases:
        mx, rms = c.errors("now")
        bmx, brms = c.errors("before")
        rows.append([f"{c.soc:g}", f"{c.temperature_c:g}", f"{c.drop('dfn'):.0f}",
                     f"{c.drop('now'):.0f}", f"{c.drop('before'):.0f}", f"{mx:.0f} / {rms:.0f}",
                     f"{bmx:.0f} / {brms:.0f}"])  # fmt: skip
    table = md_table(
        ["SOC", "°C", "DFN 2C drop mV", "twin drop mV", "before drop mV",
         "twin max / RMS mV", "before max / RMS mV"],
        rows,
    )  # fmt: skip
    now_rms = [c.errors("now")[1] for c in cases]
    old_rms = [c.errors("before")[1] for c in cases]

    def ratio(which: str, pick: Any) -> str:
        r = [c.drop(which) / c.drop("dfn") for c in cases if pick(c)]
        return f"{min(r):.2f}–{max(r):.2f}"

    low = min(PULSE_SOCS)
    body = (
        f"{intro}\n\n{table}\n\nMean RMS error over the nine cases: {np.mean(now_rms):.0f} mV "
        f"per cell now, {np.mean(old_rms):.0f} mV before. The drop is the voltage fall over "
        "the 10 s discharge pulse; twin / DFN drop ratios at SOC "
        f"{low:g}: {ratio('now', lambda c: c.soc == low)} now, "
        f"{ratio('before', lambda c: c.soc == low)} before; at higher SOC "
        f"{ratio('now', lambda c: c.soc > low)} now, {ratio('before', lambda c: c.soc > low)} "
        "before. The map gives the rise at low SOC that the single resistance lacked (and, at "
        "10 °C, a much steeper one than the DFN: the Sony cell's discharge resistance there is "
        "three times its mid-SOC value), but at mid and high SOC the Sony cell's resistance per "
        "Ah stays about 1.5 times the A123 cell's, so the mean error is no better. Scaling the "
        "map to a large-format cell, or a second RC pair, would be the next step; both need a "
        "cell's data this project does not have. The Prada2013 set's temperature dependence "
        "is only in its exchange currents (Arrhenius) and thermal voltage; its diffusivities "
        "are constant."
    )
    worst = max(cases, key=lambda c: c.errors("now")[0])
    head = (
        f"2C pulses vs PyBaMM DFN (Prada2013), 9 cases: mean RMS {np.mean(now_rms):.0f} mV per "
        f"cell (before {np.mean(old_rms):.0f} mV); worst max {worst.errors('now')[0]:.0f} mV at "
        f"SOC {worst.soc:g}, {worst.temperature_c:g} °C"
    )
    return Section("pulses", "11. Current pulses against PyBaMM's DFN", body, headline=[head])
