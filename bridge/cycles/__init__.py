"""Bundled standard drive cycles (1 Hz speed traces, see PROVENANCE.md) and a loader."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

#: Cycle names accepted by ``--cycle`` → bundled file. ``wltc`` is class 3b (the usual one
#: for cars above 120 km/h top speed and ≥ 34 W/kg).
CYCLE_FILES: dict[str, str] = {
    "udds": "udds.csv",
    "hwfet": "hwfet.csv",
    "us06": "us06.csv",
    "wltc": "wltc_class3b.csv",
    "wltc3b": "wltc_class3b.csv",
    "wltc_class3b": "wltc_class3b.csv",
    "wltc3a": "wltc_class3a.csv",
    "wltc_class3a": "wltc_class3a.csv",
    "wltc3_low": "wltc3_low.csv",
    "wltc3b_medium": "wltc3b_medium.csv",
    "wltc3b_high": "wltc3b_high.csv",
    "wltc3_extrahigh": "wltc3_extrahigh.csv",
}

_SPEED_COLUMNS = ("speed_mps", "speed_m_s")
_GRADE_COLUMNS = ("grade", "grade_frac")


@dataclass(frozen=True)
class DriveCycle:
    """A speed trace: ``time_s`` strictly increasing, ``speed_m_s`` ≥ 0, ``grade`` (rise/run)."""

    name: str
    time_s: np.ndarray
    speed_m_s: np.ndarray
    grade: np.ndarray

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0])

    @property
    def distance_km(self) -> float:
        """Trapezoid distance (equals Σ v·dt for traces that start and end at rest)."""
        return float(np.trapezoid(self.speed_m_s, self.time_s)) / 1000.0


def available_cycles() -> list[str]:
    return sorted(CYCLE_FILES)


def load_cycle(name_or_path: str | Path) -> DriveCycle:
    """Load a bundled cycle by name (see :data:`CYCLE_FILES`) or any CSV with ``time_s`` and
    ``speed_mps`` (or ``speed_m_s``) columns and an optional ``grade`` column."""
    key = str(name_or_path).lower()
    if key in CYCLE_FILES:
        text = resources.files(__name__).joinpath(CYCLE_FILES[key]).read_text()
        return _parse(key, text)
    path = Path(name_or_path)
    if path.suffix.lower() == ".csv" and path.exists():
        return _parse(path.stem, path.read_text())
    raise ValueError(
        f"unknown drive cycle {name_or_path!r}; choose one of {', '.join(available_cycles())} "
        "or give a CSV file with time_s,speed_mps columns"
    )


def _parse(name: str, text: str) -> DriveCycle:
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise ValueError(f"drive cycle {name!r} is empty")
    columns = rows[0].keys()
    speed_col = next((c for c in _SPEED_COLUMNS if c in columns), None)
    if "time_s" not in columns or speed_col is None:
        raise ValueError(f"drive cycle {name!r} needs time_s and speed_mps columns")
    grade_col = next((c for c in _GRADE_COLUMNS if c in columns), None)
    time_s = np.array([float(r["time_s"]) for r in rows])
    speed = np.array([float(r[speed_col]) for r in rows])
    grade = (
        np.array([float(r[grade_col] or 0.0) for r in rows]) if grade_col else np.zeros_like(speed)
    )
    if len(time_s) < 2 or np.any(np.diff(time_s) <= 0):
        raise ValueError(f"drive cycle {name!r}: time_s must be strictly increasing")
    if np.any(speed < 0) or not np.all(np.isfinite(speed)):
        raise ValueError(f"drive cycle {name!r}: speeds must be finite and ≥ 0")
    return DriveCycle(name=name, time_s=time_s, speed_m_s=speed, grade=grade)
