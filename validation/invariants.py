"""Section 3: invariants. Charge and energy balance, and independence of the sample rate.

One drive, sampled at 1, 10 and 50 Hz: a smooth power demand with discharge and regeneration
(the profile the test suite uses, tests/test_step_physics.py) for an hour at 30 degC, then a
30-minute plug-in charge sent as one long sample (sub-stepped by the service). Each sample holds
the exact mean of the demand over its interval, so the three requests describe the same drive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from validation.common import Figure, Section, Twin, md_table

RATES_HZ = (1.0, 10.0, 50.0)
DRIVE_S = 3600.0
AMBIENT_C = 30.0
CHARGE_S = 1800.0
CHARGE_KW = -11.0
VEHICLE = "sv1ev3"
# Demand P(t) = BASE + sum(A sin(t / tau)) kW (tests/test_step_physics.py: drive_profile)
BASE_KW = 25.0
SINES = ((45.0, 37.0), (15.0, 5.3))  # (amplitude kW, tau s)
# Thresholds of the test suite's checks (tests/test_step_physics.py)
TEST_CHARGE_REL = 1e-9
TEST_ENERGY_REL = 1e-9
TEST_SOC_PP = 0.1  # 1 Hz vs 10 Hz, final SOC, percentage points
TEST_TEMP_K = 0.2  # 1 Hz vs 10 Hz, final temperature


def mean_demand_kw(t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Exact mean of P(t) over [t0, t1]."""
    out = np.full(t0.shape, BASE_KW)
    for amp, tau in SINES:
        out += amp * tau * (np.cos(t0 / tau) - np.cos(t1 / tau)) / (t1 - t0)
    return out


def samples_at(hz: float, drive_s: float = DRIVE_S) -> list[dict]:
    n = int(round(drive_s * hz))
    edges = np.arange(n + 1) / hz
    power = mean_demand_kw(edges[:-1], edges[1:])
    dt = 1.0 / hz
    samples = [{"dt_s": dt, "power_kw": float(p), "ambient_c": AMBIENT_C} for p in power]
    samples.append(
        {"dt_s": CHARGE_S, "power_kw": CHARGE_KW, "charging": True, "ambient_c": AMBIENT_C}
    )
    return samples


@dataclass
class RateRun:
    hz: float
    t_s: np.ndarray
    soc: np.ndarray
    temperature: np.ndarray
    charge_rel_err: float  # drive samples
    charge_rel_err_long: float  # the sub-stepped charging sample, mean SOH of its ends
    long_soh_change: float  # SOH lost during the charging sample
    energy_rel_err: float
    power_rel_err: float  # largest |P - demand| / |demand| where no limit applied
    limited_samples: int
    state: dict


def drive(twin: Twin, hz: float, drive_s: float = DRIVE_S) -> RateRun:
    samples = samples_at(hz, drive_s)
    out = twin.step(
        vehicle_id=f"val-rate-{hz:g}", vehicle=VEHICLE, samples=samples, options={"trace": True}
    )
    trace = out["trace"]
    st = out["state"]
    cap_ah = twin.preset(VEHICLE)["pack"]["capacity_ah"]
    dt = np.array([s["dt_s"] for s in samples])
    t_s = np.array([r["t_s"] for r in trace])
    soc = np.array([r["soc"] for r in trace])
    soh = np.array([r["soh"] for r in trace])
    cur = np.array([r["current"] for r in trace])
    volt = np.array([r["voltage"] for r in trace])
    pkw = np.array([r["power_kw"] for r in trace])
    temp = np.array([r["temperature"] for r in trace])
    soc0, soh0 = 0.85, 1.0  # a new pack (state null): SOC 0.85, SOH 1
    soc_all = np.concatenate(([soc0], soc))
    soh_all = np.concatenate(([soh0], soh))
    # Coulomb counting on the aged capacity. Drive samples (one internal step each): the
    # capacity at the start of the sample. The long charging sample is sub-stepped, each sub-step
    # counting on the capacity at its own start; the trace shows the SOH only at the sample's
    # start and end, so the check uses their mean there.
    q_soc = -np.diff(soc_all) * cap_ah * 3600.0
    q_i = cur * dt
    drive_part = slice(0, len(samples) - 1)
    charge_rel = float(
        abs(np.sum(q_soc[drive_part] * soh_all[:-1][drive_part]) - np.sum(q_i[drive_part]))
        / np.sum(np.abs(q_i[drive_part]))
    )
    long_rel = float(abs(q_soc[-1] * 0.5 * (soh_all[-2] + soh_all[-1]) - q_i[-1]) / abs(q_i[-1]))
    long_soh_change = float(soh_all[-2] - soh_all[-1])
    net_kwh = float(np.sum(volt * cur * dt)) / 3.6e6
    counters = st["energy_discharged_kwh"] - st["energy_charged_kwh"]
    energy_rel = abs(net_kwh - counters) / (st["energy_discharged_kwh"] + st["energy_charged_kwh"])
    demand = np.array([s["power_kw"] for s in samples])
    met = np.abs(pkw - demand) <= 1e-6 * np.maximum(np.abs(demand), 1.0)
    power_rel = float(np.max(np.abs(pkw - demand)[met] / np.maximum(np.abs(demand[met]), 1.0)))
    return RateRun(
        hz,
        t_s,
        soc,
        temp,
        charge_rel,
        long_rel,
        long_soh_change,
        energy_rel,
        power_rel,
        int(np.count_nonzero(~met)),
        st,
    )


def compute(
    twin: Twin, rates: tuple[float, ...] = RATES_HZ, drive_s: float = DRIVE_S
) -> list[RateRun]:
    return [drive(twin, hz, drive_s) for hz in rates]


def on_common_grid(run: RateRun, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SOC and temperature of a run at the sample ends that fall on `grid` (s)."""
    idx = np.searchsorted(run.t_s, grid - 1e-6)
    if not np.allclose(run.t_s[idx], grid, atol=1e-6):
        raise ValueError("grid times are not sample ends of this run")
    return run.soc[idx], run.temperature[idx]


@dataclass
class RateDiff:
    hz: float
    ref_hz: float
    max_soc_pp: float
    max_temp_k: float
    end_drive_soc_pp: float
    end_drive_temp_k: float
    final_soc_pp: float
    final_temp_k: float


def differences(runs: list[RateRun]) -> list[RateDiff]:
    ref_run = max(runs, key=lambda r: r.hz)
    coarsest = min(runs, key=lambda r: r.hz)
    grid = coarsest.t_s  # every 1/coarsest s through the drive, then the charge's end
    soc_ref, t_ref = on_common_grid(ref_run, grid)
    out = []
    for r in runs:
        if r is ref_run:
            continue
        soc, temp = on_common_grid(r, grid)
        d_soc, d_t = (soc - soc_ref) * 100.0, temp - t_ref
        out.append(
            RateDiff(
                r.hz,
                ref_run.hz,
                float(np.max(np.abs(d_soc))),
                float(np.max(np.abs(d_t))),
                float(d_soc[-2]),
                float(d_t[-2]),
                float(d_soc[-1]),
                float(d_t[-1]),
            )
        )
    return out


def pair_difference(runs: list[RateRun], a_hz: float, b_hz: float) -> tuple[float, float]:
    """Final SOC (percentage points) and temperature (K) difference between two rates."""
    a = next(r for r in runs if r.hz == a_hz)
    b = next(r for r in runs if r.hz == b_hz)
    return (
        (a.state["soc"] - b.state["soc"]) * 100.0,
        a.state["temperature_c"] - b.state["temperature_c"],
    )


def render(runs: list[RateRun]) -> Section:
    rows = []
    for r in runs:
        st = r.state
        rows.append(
            [
                f"{r.hz:g} Hz",
                f"{len(r.t_s)}",
                f"{r.charge_rel_err:.1e}",
                f"{r.charge_rel_err_long:.1e}",
                f"{r.energy_rel_err:.1e}",
                f"{r.power_rel_err:.1e}",
                f"{r.limited_samples}",
                f"{st['energy_discharged_kwh']:.4f}",
                f"{st['energy_charged_kwh']:.4f}",
                f"{st['soc'] * 100:.4f}",
                f"{st['temperature_c']:.4f}",
                f"{r.temperature.max():.3f}",
            ]
        )
    balance = md_table(
        [
            "sampling",
            "samples",
            "charge balance rel. error, drive",
            "charge balance rel. error, 30-min sample",
            "energy balance rel. error",
            "power demand met, max rel. error",
            "limited samples",
            "discharged kWh",
            "charged kWh",
            "final SOC %",
            "final T °C",
            "peak T °C",
        ],
        rows,
    )
    diffs = differences(runs)
    drows = [
        [
            f"{d.hz:g} Hz − {d.ref_hz:g} Hz",
            f"{d.max_soc_pp:.2e}",
            f"{d.max_temp_k:.2e}",
            f"{d.end_drive_soc_pp:+.2e}",
            f"{d.end_drive_temp_k:+.2e}",
            f"{d.final_soc_pp:+.2e}",
            f"{d.final_temp_k:+.2e}",
        ]
        for d in diffs
    ]
    rate_table = md_table(
        [
            "pair",
            "max |ΔSOC| pp",
            "max |ΔT| K",
            "ΔSOC end of drive pp",
            "ΔT end of drive K",
            "ΔSOC after charge pp",
            "ΔT after charge K",
        ],
        drows,
    )
    rates = sorted(r.hz for r in runs)
    test_pair = ""
    if 1.0 in rates and 10.0 in rates:
        d_soc, d_t = pair_difference(runs, 10.0, 1.0)
        test_pair = (
            f"The test suite's check (`test_sample_rate_independence`, 10 Hz vs 1 Hz, final "
            f"state of the drive alone) requires |ΔSOC| < {TEST_SOC_PP} percentage points and "
            f"|ΔT| < {TEST_TEMP_K} K; here, with the charge appended, 10 Hz − 1 Hz is "
            f"{d_soc:+.2e} pp and {d_t:+.2e} K. "
        )
    worst_charge = max(r.charge_rel_err for r in runs)
    worst_long = max(r.charge_rel_err_long for r in runs)
    worst_energy = max(r.energy_rel_err for r in runs)
    worst = max(diffs, key=lambda d: d.max_soc_pp) if diffs else None
    worst_t = max(diffs, key=lambda d: d.max_temp_k) if diffs else None
    body = (
        f"The same drive sent at {', '.join(f'{h:g}' for h in rates)} Hz to a new `sv1ev3` "
        f"pack (SOC 0.85): power demand P(t) = {BASE_KW:g} + "
        + " + ".join(f"{a:g}·sin(t/{tau:g} s)" for a, tau in SINES)
        + f" kW (discharge and regeneration, the profile of tests/test_step_physics.py) for "
        f"{DRIVE_S / 60:.0f} min at {AMBIENT_C:g} °C ambient, each sample holding the exact mean "
        f"of P over its interval, followed by a {CHARGE_S / 60:.0f}-minute plug-in charge at "
        f"{-CHARGE_KW:g} kW sent as one sample, which the service sub-steps. Each rate is one "
        "request with `options.trace`.\n\n"
        "**Charge balance:** Σ I·dt against the SOC change, −ΔSOC × SOH × capacity (coulomb "
        "counting on the aged capacity), relative to the Ah throughput; over the drive's samples "
        "with the SOH at each sample's start. The 30-minute charging sample is sub-stepped by "
        "the service (10 s steps), each step counting on the capacity at its own start, while "
        "the trace shows the SOH only at the sample's ends; its check uses their mean, so its "
        "error reflects the SOH lost within the sample "
        f"({runs[0].long_soh_change:.1e}, a fresh pack's √t calendar fade is steepest), not a "
        "leak. **Energy balance:** "
        "Σ V·I·dt of the trace against the state's counters `energy_discharged_kwh − "
        "energy_charged_kwh`, relative to their sum. **Power:** the trace's power against the "
        "demand wherever no limit applied.\n\n"
        + balance
        + f"\n\nLargest balance errors: charge {worst_charge:.1e} over the drive samples "
        f"({worst_long:.1e} for the sub-stepped charging sample, see above), energy "
        f"{worst_energy:.1e} (the test suite requires ≤ {TEST_CHARGE_REL:g} for both, on "
        "samples of at most 1 s and the energy also over a sub-stepped 30-minute charge).\n\n"
        "**Sample rate:** SOC and temperature compared at every full second of the drive and "
        "after the charge, against the finest sampling:\n\n"
        + rate_table
        + "\n\n"
        + test_pair
        + "What differences remain come from the input itself (a 1 s sample holds a mean power, "
        "and the current that delivers a mean power is not the mean current) and from resistive "
        "heat ∝ I², not from the integration: within a sample, RC branch, temperature and charge "
        "are integrated exactly for the sample's constant current."
    )
    headline = [
        f"Invariants: relative charge balance error ≤ {worst_charge:.0e} over 1–50 Hz drive "
        f"samples ({worst_long:.0e} on a sub-stepped 30-minute charging sample, limited by the "
        f"trace's SOH resolution), energy balance error ≤ {worst_energy:.0e}"
        + (
            f"; 1 Hz vs {worst.ref_hz:g} Hz sampling of the same 1-hour drive differ by at most "
            f"{worst.max_soc_pp:.1e} SOC percentage points and {worst_t.max_temp_k:.1e} K"
            if worst
            else ""
        )
        + ".",
    ]
    return Section(
        "invariants",
        "3. Invariants: balances and sample rate",
        body,
        [
            Figure(
                "validation_sample_rate.png",
                "Pack temperature for 1, 10 and 50 Hz sampling of the same drive",
                lambda plt: _figure(plt, runs),
            )
        ],
        headline,
    )


def _figure(plt, runs: list[RateRun]):
    fig, axes = plt.subplots(
        3, 1, figsize=(9, 8), sharex=True, gridspec_kw={"height_ratios": [2.2, 1, 1]}
    )
    styles = {
        1.0: dict(lw=2.6, alpha=0.5),
        10.0: dict(lw=1.4, ls="--"),
        50.0: dict(lw=0.9, color="k"),
    }
    for r in sorted(runs, key=lambda r: r.hz):
        axes[0].plot(r.t_s / 60.0, r.temperature, label=f"{r.hz:g} Hz", **styles.get(r.hz, {}))
    axes[0].axvspan(DRIVE_S / 60, (DRIVE_S + CHARGE_S) / 60, color="tab:green", alpha=0.08)
    axes[0].text(
        (DRIVE_S + CHARGE_S / 2) / 60,
        axes[0].get_ylim()[0],
        "plug-in charge\n(one sample)",
        ha="center",
        va="bottom",
        fontsize=8,
    )
    axes[0].set(
        ylabel="pack temperature (°C)",
        title="Same drive, three sample rates: temperature traces overlap",
    )
    axes[0].legend(loc="upper left")
    ref_run = max(runs, key=lambda r: r.hz)
    coarsest = min(runs, key=lambda r: r.hz)
    grid = coarsest.t_s
    soc_ref, t_ref = on_common_grid(ref_run, grid)
    for r in sorted(runs, key=lambda r: r.hz):
        if r is ref_run:
            continue
        soc, temp = on_common_grid(r, grid)
        axes[1].plot(grid / 60.0, (temp - t_ref) * 1000.0, label=f"{r.hz:g} Hz − {ref_run.hz:g} Hz")
        axes[2].plot(grid / 60.0, (soc - soc_ref) * 100.0, label=f"{r.hz:g} Hz − {ref_run.hz:g} Hz")
    axes[1].set(ylabel="ΔT (mK)")
    axes[2].set(ylabel="ΔSOC (pp)", xlabel="time (min)")
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig
