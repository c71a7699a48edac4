"""Shared plumbing: the service in-process over HTTP, report sections, figure output."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_DIR = REPO_ROOT / "docs"
IMG_DIR = DOCS_DIR / "img"
REPORT_PATH = DOCS_DIR / "validation.md"


class Twin:
    """The service's public HTTP API, served in-process by FastAPI's TestClient."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._presets: dict[str, Any] | None = None

    def step(self, **body: Any) -> dict[str, Any]:
        """POST /step; a run that starts a new pack replaces that vehicle's stored twin."""
        state = body.get("state")
        if state is None or "schema_version" not in state:
            body["options"] = {**body.get("options", {}), "replace": True}
        r = self.client.post("/step", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"POST /step answered {r.status_code}: {r.text[:500]}")
        return r.json()

    def forecast(self, **body: Any) -> dict[str, Any]:
        r = self.client.post("/forecast", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"POST /forecast answered {r.status_code}: {r.text[:500]}")
        return r.json()

    def presets(self) -> dict[str, Any]:
        if self._presets is None:
            r = self.client.get("/vehicles/presets")
            r.raise_for_status()
            self._presets = r.json()
        return self._presets

    def preset(self, vehicle: str) -> dict[str, Any]:
        return self.presets()[vehicle]


@contextlib.contextmanager
def open_twin() -> Iterator[Twin]:
    """`TestClient(create_app(Settings()))`: the real app, lifespan included, no network."""
    with warnings.catch_warnings():
        # Starlette's notice that its TestClient will move from httpx to httpx2: not ours.
        warnings.filterwarnings("ignore", message=r".*starlette\.testclient.*")
        from fastapi.testclient import TestClient

    from twin_service.app import create_app
    from twin_service.settings import Settings

    with TestClient(create_app(Settings())) as client:
        yield Twin(client)


@dataclass
class Figure:
    filename: str  # under docs/img/
    alt: str
    draw: Any  # callable(pyplot) -> matplotlib Figure


@dataclass
class Section:
    key: str
    title: str
    body: str
    figures: list[Figure] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # one-line findings for the summary
    seconds: float = 0.0


def signed(x: float, digits: int) -> str:
    """`x` with a sign and `digits` decimals, without a negative zero."""
    r = round(x, digits)
    return f"{r if r != 0 else 0.0:+.{digits}f}"


def md_table(header: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    """A Markdown table; `align` is one char per column: l, r or c."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot on the Agg backend, with the report's style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "font.size": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        }
    )
    return plt


def cycler_vehicle(preset: dict[str, Any], vid: str, cooling_w_k: float) -> dict[str, Any]:
    """A preset's pack as an aging test sees it (twin_service.presets.on_cycler: the whole SOC
    range, no charge taper, no thermal management), held near ambient by a passive loop of
    `cooling_w_k` (a climate chamber), so the aging laws meet the stress they were fitted on.
    The cell voltage window is the OCV curve's own (2.0-3.6 V, PyBaMM Prada2013's cut-offs), so
    a constant-current half-cycle slows at its ends but never stops inside its sample."""
    from twin_service.presets import VehiclePreset, on_cycler

    cycler = on_cycler(VehiclePreset.model_validate(vehicle_without_computed(preset)))
    vehicle = cycler.model_dump(exclude_computed_fields=True)
    vehicle["id"] = vid
    vehicle["pack"].update(cooling_w_k=cooling_w_k, cell_v_min=2.0, cell_v_max=3.6)
    return vehicle


# The model before issue 12: the Sony cell's 0.0478 ohm discharge DCIR at SOC 0.5 and 25 degC
# (3 Ah) scaled by capacity, split 40 % R0 / 60 % R1, used at every SOC and for charge; the
# 13-node OCV table; no hysteresis, SOC window, taper or thermal management.
PREVIOUS_DCIR_OHM_AH = 0.0478 * 3.0
PREVIOUS_R0_SHARE = 0.4


def previous_model_vehicle(
    vehicle: dict[str, Any], r0_ohm: float | None = None, r1_ohm: float | None = None
) -> dict[str, Any]:
    """An inline vehicle (no computed fields) with the parameters that give the pack model as
    it was before issue 12, in today's core. `r0_ohm`, `r1_ohm`: the cell's resistances, by
    default the presets' rule of that time."""
    from twin_service.models import cell_data

    v = copy.deepcopy(vehicle)
    pack = v["pack"]
    if r0_ohm is None or r1_ohm is None:
        dcir = PREVIOUS_DCIR_OHM_AH / pack["cell_capacity_ah"]
        r0_ohm, r1_ohm = dcir * PREVIOUS_R0_SHARE, dcir * (1.0 - PREVIOUS_R0_SHARE)
    r = r0_ohm + r1_ohm
    pack["cell_resistance"] = {
        "soc": [0.0, 1.0], "temperature_c": [25.0], "discharge_ohm": [[r, r]],
        "charge_ohm": [[r, r]],
    }  # fmt: skip
    pack["r0_fraction"] = r0_ohm / r
    pack["ocv"] = {"soc": list(cell_data.OCV_SOC_COARSE), "v": list(cell_data.OCV_V_COARSE)}
    pack.update(hysteresis_v=0.0, hysteresis_rate=0.0, soc_min=0.0, soc_max=1.0)
    pack["charge_taper"] = None
    v["thermal_management"] = None
    return v


def vehicle_without_computed(preset: dict[str, Any]) -> dict[str, Any]:
    """A preset from GET /vehicles/presets as an inline `vehicle` object for POST /step
    (the computed pack fields are read-only)."""
    vehicle = {k: v for k, v in preset.items()}
    vehicle["pack"] = {
        k: v
        for k, v in preset["pack"].items()
        if k not in ("capacity_ah", "nominal_voltage_v", "nominal_energy_kwh")
    }
    return vehicle


PEERS_PY = REPO_ROOT / ".venv-peers" / "bin" / "python"
PEER_TIMEOUT_S = 300.0


def run_peer(module: str, worker: str, job: dict[str, Any]) -> dict[str, Any]:
    """One worker of a peers' module (validation.peers_ev, validation.peers_estimation) run in
    the peers' venv with `job` on stdin; its last stdout line as JSON, or {"skipped": why}."""
    if not PEERS_PY.exists():
        return {"skipped": "skipped: the peers' venv is missing (`make bench-peers-venv`)"}
    env = {**os.environ, "PYBAMM_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}
    try:
        out = subprocess.run(
            [str(PEERS_PY), "-m", module, worker],
            input=json.dumps(job),
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=PEER_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"skipped": f"skipped: {worker} failed ({exc})"}
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"skipped": f"skipped: {worker} exited {out.returncode} ({tail[0][:200]})"}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
