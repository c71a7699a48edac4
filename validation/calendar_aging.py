"""Section 1: calendar aging grid, the model through POST /step against Naumann 2018."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from validation import reference as ref
from validation.common import Figure, Section, Twin, md_table

TEMPERATURES_C = (0.0, 10.0, 25.0, 35.0, 45.0, 55.0)
SOCS = (0.1, 0.5, 0.9, 1.0)
YEARS = (1, 10)
DAY_S = 86400.0
VEHICLE = "sv1ev3"


@dataclass
class StoragePoint:
    temperature_c: float
    soc: float
    years: int
    model_soh: float
    model_rf: float
    ref_soh: float
    ref_rf: float
    simulated_years: float  # as the telemetry reports it

    @property
    def d_soh(self) -> float:
        return self.model_soh - self.ref_soh

    @property
    def d_rf(self) -> float:
        return self.model_rf - self.ref_rf


def storage_run(
    twin: Twin, temperature_c: float, soc: float, years: tuple[int, ...] = YEARS
) -> list[StoragePoint]:
    """Park a new pack at (soc, temperature) with daily samples of zero current; read the state
    after each number of years (chained requests: each continues from the returned state)."""
    state: dict | None = {"soc": soc, "temperature_c": temperature_c}
    points = []
    done_days = 0
    for y in years:
        days = 365 * y - done_days
        sample = {"dt_s": DAY_S, "current_a": 0.0, "ambient_c": temperature_c}
        out = twin.step(
            vehicle_id=f"val-cal-{temperature_c:g}-{soc:g}",
            vehicle=VEHICLE,
            state=state,
            samples=[sample] * days,
        )
        state = out["state"]
        done_days += days
        t_s = done_days * DAY_S
        points.append(
            StoragePoint(
                temperature_c=temperature_c,
                soc=soc,
                years=y,
                model_soh=state["soh"],
                model_rf=state["resistance_factor"],
                ref_soh=1.0 - ref.calendar_capacity_loss(t_s, soc, temperature_c),
                ref_rf=1.0 + ref.calendar_resistance_increase(t_s, soc, temperature_c),
                simulated_years=out["telemetry"]["simulated_years"],
            )
        )
    return points


def compute(
    twin: Twin,
    temperatures: tuple[float, ...] = TEMPERATURES_C,
    socs: tuple[float, ...] = SOCS,
    years: tuple[int, ...] = YEARS,
) -> list[StoragePoint]:
    points: list[StoragePoint] = []
    for t in temperatures:
        for s in socs:
            points += storage_run(twin, t, s, years)
    return points


def check_value(points: list[StoragePoint]) -> StoragePoint | None:
    """The 25 degC, SOC 0.5, one-year point (REFERENCES.md check value)."""
    for p in points:
        if p.temperature_c == 25.0 and p.soc == 0.5 and p.years == 1:
            return p
    return None


def largest(points: list[StoragePoint], attr: str) -> StoragePoint:
    return max(points, key=lambda p: abs(getattr(p, attr)))


def render(points: list[StoragePoint]) -> Section:
    rows = []
    by_key = {(p.temperature_c, p.soc, p.years): p for p in points}
    temps = sorted({p.temperature_c for p in points})
    socs = sorted({p.soc for p in points})
    for t in temps:
        for s in socs:
            p1, p10 = by_key.get((t, s, 1)), by_key.get((t, s, 10))
            row = [f"{t:g}", f"{s:g}"]
            for p in (p1, p10):
                if p is None:
                    row += ["–"] * 4
                    continue
                row += [
                    f"{p.model_soh * 100:.3f}",
                    f"{p.ref_soh * 100:.3f}",
                    f"{p.model_rf:.4f}",
                    f"{p.ref_rf:.4f}",
                ]
            rows.append(row)
    ds, dr = largest(points, "d_soh"), largest(points, "d_rf")
    cv = check_value(points)
    table = md_table(
        [
            "T °C",
            "SOC",
            "SOH 1 y model %",
            "SOH 1 y Naumann %",
            "R 1 y model",
            "R 1 y Naumann",
            "SOH 10 y model %",
            "SOH 10 y Naumann %",
            "R 10 y model",
            "R 10 y Naumann",
        ],
        rows,
        align="rr" + "r" * 8,
    )
    check = ""
    if cv is not None:
        check = (
            f"Published check value (REFERENCES.md, 25 °C, SOC 0.5, one year): capacity "
            f"{ref.CHECK_SOH:.4f} and resistance factor {ref.CHECK_RESISTANCE_FACTOR:.4f}; the "
            f"script's closed form gives {cv.ref_soh:.4f} / {cv.ref_rf:.4f}, the service "
            f"{cv.model_soh:.4f} / {cv.model_rf:.4f}.\n\n"
        )
    body = (
        'A new `sv1ev3` pack is seeded with `{"soc": S, "temperature_c": T}` and parked: '
        "samples of `dt_s` 86400 with `current_a` 0 and `ambient_c` T, 365 of them, then the "
        "returned state is sent back with 3285 more (10 years). SOC and temperature stay "
        "constant, so the model should reproduce the closed forms of Naumann et al. 2018 "
        "exactly: capacity loss k_T·k_SOC·√t and resistance increase k_T,R·k_SOC,R·t, computed "
        "in `validation/reference.py` from the paper's equations (not from the service's "
        "code). SOH is the remaining capacity fraction, R the resistance factor R/R₀.\n\n"
        + check
        + f"**Largest difference over the grid:** SOH {ds.d_soh * 100:+.2e} percentage points "
        f"(T {ds.temperature_c:g} °C, SOC {ds.soc:g}, {ds.years} y); resistance factor "
        f"{dr.d_rf:+.2e} (T {dr.temperature_c:g} °C, SOC {dr.soc:g}, {dr.years} y).\n\n"
        + table
        + "\n\nThis checks the implementation, not the physics: model and reference share the "
        "equations. Both extrapolate the fits, made on 3 Ah laboratory cells over test periods "
        "far shorter than 10 years, along the √t law (capacity) and a law linear in time "
        f"(resistance). The resistance law's large activation energy ({ref.EA_RES / 1000:.1f} "
        f"kJ/mol against {ref.EA_CAP / 1000:.1f} kJ/mol for capacity) makes R grow quickly "
        "at 45–55 °C, where a thermally managed pack would rarely sit for years."
    )
    headline = [
        f"Calendar grid (24 storage conditions, 1 and 10 years): largest |ΔSOH| "
        f"{abs(ds.d_soh) * 100:.1e} percentage points, largest |ΔR/R₀| {abs(dr.d_rf):.1e} "
        "against the Naumann 2018 closed forms."
    ]
    return Section(
        "calendar",
        "1. Calendar aging grid (Naumann 2018)",
        body,
        [
            Figure(
                "validation_calendar.png",
                "SOH and resistance factor after 10 years of storage vs temperature",
                lambda plt: _figure(plt, points),
            )
        ],
        headline,
    )


def _figure(plt, points: list[StoragePoint]):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    temps_fine = np.linspace(0, 55, 111)
    years = max(p.years for p in points)
    t_s = 365 * years * DAY_S
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(sorted({p.soc for p in points})):
        c = colors[i % len(colors)]
        pts = sorted(
            (p for p in points if p.soc == s and p.years == years), key=lambda p: p.temperature_c
        )
        axes[0].plot(
            temps_fine,
            [100 * (1 - ref.calendar_capacity_loss(t_s, s, t)) for t in temps_fine],
            color=c,
            lw=1.2,
            label=f"Naumann 2018, SOC {s:g}",
        )
        axes[0].plot(
            [p.temperature_c for p in pts],
            [100 * p.model_soh for p in pts],
            "o",
            color=c,
            ms=6,
            mfc="none",
            label=f"/step, SOC {s:g}",
        )
        axes[1].plot(
            temps_fine,
            [1 + ref.calendar_resistance_increase(t_s, s, t) for t in temps_fine],
            color=c,
            lw=1.2,
        )
        axes[1].plot(
            [p.temperature_c for p in pts],
            [p.model_rf for p in pts],
            "o",
            color=c,
            ms=6,
            mfc="none",
        )
    axes[0].set(
        xlabel="storage temperature (°C)",
        ylabel="SOH (%)",
        title=f"Capacity after {years} years of storage",
    )
    axes[1].set(
        xlabel="storage temperature (°C)",
        ylabel="resistance factor R/R₀",
        title=f"Resistance after {years} years of storage",
    )
    axes[0].legend(fontsize=8, ncol=2, loc="lower left")
    axes[1].text(
        0.02,
        0.97,
        "k_SOC,R is symmetric about SOC 0.5:\nthe SOC 0.1 and 0.9 curves coincide",
        transform=axes[1].transAxes,
        va="top",
        fontsize=8,
    )
    fig.suptitle("Calendar aging: service (circles) vs closed form (lines)", fontsize=11)
    fig.tight_layout()
    return fig
