"""Section 4: vehicle energy over standard drive cycles, from the bridge's cycle source.

A real service process (`python -m twin_service`) is started on a free local port, and for each
vehicle and cycle the bridge CLI drives one pass (`python -m bridge cycle --cycle C --fast
--repeat 1 --vehicle V --vehicle-id ID --twin-url URL`), posting to /step as it would in use.
The result is read back with `GET /vehicles/{id}`: terminal energy counters and distance.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from validation import reference as ref
from validation.common import REPO_ROOT, Figure, Section, md_table

VEHICLES = ("Model3_2024", "sv1ev3")
CYCLES = ("udds", "hwfet", "us06", "wltc")
CYCLE_NAMES = {"udds": "UDDS", "hwfet": "HWFET", "us06": "US06", "wltc": "WLTC 3b"}
STARTUP_TIMEOUT_S = 300.0  # a cold start compiles the model core (about 2 minutes)
BRIDGE_TIMEOUT_S = 300.0


@dataclass
class EnergyRun:
    vehicle: str
    cycle: str
    distance_km: float
    discharged_kwh: float
    charged_kwh: float
    elapsed_s: float
    soc_start: float
    soc_end: float
    bridge_line: str  # the bridge's own summary line
    aux_kw: float  # the preset's auxiliary load (GET /vehicles/presets)

    @property
    def net_wh_per_km(self) -> float:
        return (self.discharged_kwh - self.charged_kwh) * 1000.0 / self.distance_km

    @property
    def discharge_wh_per_km(self) -> float:
        return self.discharged_kwh * 1000.0 / self.distance_km

    @property
    def regen_share(self) -> float:
        return self.charged_kwh / self.discharged_kwh


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update({"TWIN_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"})
    pythonpath = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pythonpath if pythonpath else "")
    return env


def bridge_unavailable_reason() -> str | None:
    """None when `python -m bridge cycle` with the options this section needs is there."""
    if (
        importlib.util.find_spec("bridge") is None
        or importlib.util.find_spec("bridge.__main__") is None
    ):
        return "the `bridge` package is not importable"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bridge", "cycle", "--help"],
            cwd=REPO_ROOT,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`python -m bridge cycle --help` failed: {exc}"
    needed = ("--cycle", "--fast", "--repeat", "--vehicle", "--vehicle-id", "--twin-url")
    missing = [opt for opt in needed if opt not in out.stdout]
    if out.returncode != 0 or missing:
        return f"`python -m bridge cycle --help` exited {out.returncode}" + (
            f", missing options {', '.join(missing)}" if missing else ""
        )
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def service_process() -> Iterator[str]:
    """`python -m twin_service` on a free local port (in-memory hub); yields its base URL."""
    import httpx

    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="validation-service-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twin_service",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--hub-url",
            "memory://",
        ],
        cwd=REPO_ROOT,
        env=_clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"twin service exited with {proc.returncode}: "
                    f"{Path(log.name).read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"twin service not healthy after {STARTUP_TIMEOUT_S} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        Path(log.name).unlink(missing_ok=True)


def bridge_cycle(url: str, vehicle: str, cycle: str) -> EnergyRun:
    """One pass of `cycle` by the bridge CLI against the service at `url`."""
    import httpx

    vehicle_id = f"val-energy-{vehicle}-{cycle}"
    cmd = [
        sys.executable,
        "-m",
        "bridge",
        "cycle",
        "--cycle",
        cycle,
        "--fast",
        "--repeat",
        "1",
        "--vehicle",
        vehicle,
        "--vehicle-id",
        vehicle_id,
        "--twin-url",
        url,
        "--no-progress",
    ]
    out = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=BRIDGE_TIMEOUT_S,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} exited {out.returncode}:\n{out.stderr[-2000:]}")
    summary = next(
        (
            line.split("bridge: ", 1)[-1]
            for line in out.stderr.splitlines()[::-1]
            if "done:" in line
        ),
        "",
    )
    r = httpx.get(f"{url}/vehicles/{vehicle_id}", timeout=30.0)
    r.raise_for_status()
    st = r.json()["state"]
    presets = httpx.get(f"{url}/vehicles/presets", timeout=30.0).json()
    return EnergyRun(
        vehicle=vehicle,
        cycle=cycle,
        distance_km=st["total_distance_km"],
        discharged_kwh=st["energy_discharged_kwh"],
        charged_kwh=st["energy_charged_kwh"],
        elapsed_s=st["elapsed_s"],
        soc_start=0.85,
        soc_end=st["soc"],
        bridge_line=summary,
        aux_kw=float(presets[vehicle]["drivetrain"]["aux_kw"]),
    )


def compute(
    vehicles: tuple[str, ...] = VEHICLES, cycles: tuple[str, ...] = CYCLES
) -> list[EnergyRun] | str:
    """The runs, or the reason they could not be made."""
    reason = bridge_unavailable_reason()
    if reason:
        return reason
    with service_process() as url:
        return [bridge_cycle(url, v, c) for v in vehicles for c in cycles]


def render(result: list[EnergyRun] | str) -> Section:
    title = "4. Vehicle energy over drive cycles (bridge)"
    if isinstance(result, str):
        body = f"**pending: bridge not available** ({result}). Rerun `make validate` once it is."
        return Section(
            "energy", title, body, [], ["Vehicle energy: pending: bridge not available."]
        )
    runs = result
    vehicles = list(dict.fromkeys(r.vehicle for r in runs))
    cycles = list(dict.fromkeys(r.cycle for r in runs))
    by = {(r.vehicle, r.cycle): r for r in runs}
    wh_rows = []
    for v in vehicles:
        wh_rows.append([f"`{v}`"] + [f"{by[(v, c)].net_wh_per_km:.1f}" for c in cycles])
    if "udds" in cycles:
        wh_rows.append(
            ["NREL FASTSim, 2022 Model 3 RWD (published)"]
            + [f"{ref.FASTSIM_MODEL3_UDDS_WH_PER_KM:.1f}" if c == "udds" else "–" for c in cycles]
        )
    wh_table = md_table(
        ["net Wh/km at the pack terminals"] + [CYCLE_NAMES.get(c, c) for c in cycles], wh_rows
    )
    rows = []
    for r in runs:
        rows.append(
            [
                f"`{r.vehicle}`",
                CYCLE_NAMES.get(r.cycle, r.cycle),
                f"{r.distance_km:.3f}",
                f"{r.elapsed_s:.0f}",
                f"{r.discharged_kwh:.3f}",
                f"{r.charged_kwh:.3f}",
                f"{r.discharge_wh_per_km:.1f}",
                f"{r.net_wh_per_km:.1f}",
                f"{r.regen_share * 100:.1f} %",
                f"{r.soc_end * 100:.2f}",
            ]
        )
    detail = md_table(
        [
            "vehicle",
            "cycle",
            "km",
            "s",
            "discharged kWh",
            "regen kWh",
            "discharge Wh/km",
            "net Wh/km",
            "regen / discharged",
            "SOC end %",
        ],
        rows,
    )
    m3 = by.get(("Model3_2024", "udds"))
    compare = ""
    headline = []
    if m3 is not None:
        d = m3.net_wh_per_km - ref.FASTSIM_MODEL3_UDDS_WH_PER_KM
        compare = (
            f"**`Model3_2024` over UDDS: {m3.net_wh_per_km:.1f} Wh/km** against FASTSim's "
            f"published {ref.FASTSIM_MODEL3_UDDS_WH_PER_KM:.1f} Wh/km ({d:+.1f} Wh/km, "
            f"{d / ref.FASTSIM_MODEL3_UDDS_WH_PER_KM * 100:+.1f} %); regeneration returns "
            f"{m3.regen_share * 100:.1f} % of the discharged energy against FASTSim's "
            f"{ref.FASTSIM_MODEL3_UDDS_REGEN_SHARE * 100:.0f} %.\n\n"
        )
        headline.append(
            f"Vehicle energy: `Model3_2024` over UDDS {m3.net_wh_per_km:.1f} Wh/km net at the "
            f"terminals vs FASTSim {ref.FASTSIM_MODEL3_UDDS_WH_PER_KM:.1f} Wh/km ({d:+.1f}); "
            f"regen {m3.regen_share * 100:.0f} % vs "
            f"{ref.FASTSIM_MODEL3_UDDS_REGEN_SHARE * 100:.0f} %."
        )
    body = (
        "Each vehicle drives one pass of each cycle from a new pack (SOC 0.85, 25 °C) through "
        "the bridge's road-load cycle source: `python -m bridge cycle --cycle C --fast --repeat 1 "
        "--vehicle V --vehicle-id ID --twin-url URL` against a `python -m twin_service` process "
        "started by the script; the state is then read with `GET /vehicles/{id}`. Net Wh/km = "
        "(energy_discharged_kwh − energy_charged_kwh) / total_distance_km, at the pack terminals, "
        "auxiliary load included ("
        + ", ".join(
            f"`{v}` {next(r.aux_kw for r in runs if r.vehicle == v):g} kW" for v in vehicles
        )
        + ") — the quantity FASTSim reports.\n\n"
        + compare
        + wh_table
        + "\n\n"
        + detail
        + "\n\n`sv1ev3`'s road-load data are partly assumed (see the preset's sources); only the "
        "Model 3 has a published reference. FASTSim's figure comes from its own vehicle model "
        "with the same road-load and motor-efficiency data (REFERENCES.md), so the comparison "
        "checks the bridge's road-load model and the service's drivetrain and pack losses "
        "together, not an independent measurement; no dynamometer data are used."
    )
    return Section(
        "energy",
        title,
        body,
        [
            Figure(
                "validation_energy.png",
                "Net Wh/km per drive cycle and vehicle",
                lambda plt: _figure(plt, runs),
            )
        ],
        headline,
    )


def _figure(plt, runs: list[EnergyRun]):
    import numpy as np

    vehicles = list(dict.fromkeys(r.vehicle for r in runs))
    cycles = list(dict.fromkeys(r.cycle for r in runs))
    by = {(r.vehicle, r.cycle): r for r in runs}
    fig, ax = plt.subplots(figsize=(8.5, 4.3))
    n = len(vehicles) + 1
    width = 0.8 / n
    x = np.arange(len(cycles))
    for i, v in enumerate(vehicles):
        vals = [by[(v, c)].net_wh_per_km for c in cycles]
        bars = ax.bar(x + (i - (n - 1) / 2) * width, vals, width, label=v)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    if "udds" in cycles:
        j = cycles.index("udds")
        bars = ax.bar(
            [j + (n - 1 - (n - 1) / 2) * width],
            [ref.FASTSIM_MODEL3_UDDS_WH_PER_KM],
            width,
            color="white",
            edgecolor="0.3",
            hatch="///",
            label="FASTSim 2022 Model 3 RWD (published, UDDS)",
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    ax.set_xticks(x, [CYCLE_NAMES.get(c, c) for c in cycles])
    ax.set(
        ylabel="net energy at the pack terminals (Wh/km)",
        title="Vehicle energy per drive cycle (bridge cycle source → /step)",
    )
    ax.set_ylim(0, max(r.net_wh_per_km for r in runs) * 1.22)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
