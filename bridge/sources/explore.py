"""The sensor explorer: attach Electrics and a PowertrainSensor to a vehicle, let it drive
for a while, and save what they report under ``battery_sensor_data/``:

- ``<model>_electrics_<timestamp>.json``: the last Electrics poll
- ``<model>_powertrain_<timestamp>.json``: every powertrain reading (``json.dump``, so the
  integer indices become string keys, as in the recordings the replay source reads)
- ``<model>_battery_analysis_<timestamp>.json``: what the bridge makes of them
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.sources.beamng_adapter import BeamNGSession, BeamNGSettings, SimulatorStalled, wait_s
from bridge.sources.powertrain import motor_names, motors_of, normalize_poll

logger = logging.getLogger(__name__)

BATTERY_HINTS = ("fuel", "battery", "regen", "charge", "soc", "energy", "electric")


def analyse(model: str, electrics: Mapping[str, Any], readings: list[Mapping[str, Any]]) -> dict:
    """Summary of one exploration: battery signals, motors found, mean motor power."""
    analysis: dict[str, Any] = {
        "model": model,
        "readings": len(readings),
        "battery_signals": {
            k: v
            for k, v in electrics.items()
            if any(h in k.lower() for h in BATTERY_HINTS) and not isinstance(v, Mapping)
        },
    }
    if electrics.get("fuel") is not None:
        analysis["beamng_soc"] = electrics["fuel"]
    if electrics.get("fuel_capacity") is not None and electrics.get("fuel") is not None:
        analysis["beamng_energy_kwh"] = electrics["fuel"] * electrics["fuel_capacity"]
    if readings:
        first = readings[0]
        analysis["time_span_s"] = float(readings[-1]["time"]) - float(first["time"])
        analysis["devices"] = {
            name: {k: dev.get(k) for k in ("parentName", "mode", "gearRatio") if k in dev}
            for name, dev in first.items()
            if isinstance(dev, Mapping)
        }
        try:
            names = motor_names(first)
        except ValueError as exc:
            analysis["motors_error"] = str(exc)
        else:
            powers = [sum(m.power_w for m in motors_of(r, names)) for r in readings]
            analysis["motors"] = names
            analysis["mean_motor_power_kw"] = sum(powers) / len(powers) / 1000.0
    return analysis


def explore(
    settings: BeamNGSettings,
    *,
    out_dir: Path = Path("battery_sensor_data"),
    duration_s: float = 5.0,
    launch: bool = True,
    session_factory: Callable[..., BeamNGSession] = BeamNGSession,
) -> dict[str, Path]:
    """Run the explorer; returns the paths written (keys: electrics, powertrain, analysis)."""
    model = settings.model
    readings: list[Mapping[str, Any]] = []
    electrics: dict[str, Any] = {}
    raw_polls: dict[int, Any] = {}
    with session_factory(settings, launch=launch) as session:
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline or not readings:
            started_at = time.monotonic()
            try:
                raw, electrics = session.poll()
            except SimulatorStalled as exc:
                logger.warning("simulator not answering: %s", exc)
                break
            for reading in normalize_poll(raw):
                raw_polls[len(raw_polls)] = reading
                readings.append(reading)
            if time.monotonic() > deadline + 10 * duration_s + 10:
                logger.warning("no powertrain readings arrived")
                break
            time.sleep(wait_s(settings.electrics_period_s, started_at))
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "electrics": out_dir / f"{model}_electrics_{stamp}.json",
        "powertrain": out_dir / f"{model}_powertrain_{stamp}.json",
        "analysis": out_dir / f"{model}_battery_analysis_{stamp}.json",
    }
    # Keys as floats like the original explorer's files ("0.0", "1.0", ...).
    powertrain = {float(i): r for i, r in raw_polls.items()}
    paths["electrics"].write_text(json.dumps(electrics, indent=2, default=str))
    paths["powertrain"].write_text(json.dumps(powertrain, indent=2, default=str))
    paths["analysis"].write_text(
        json.dumps(analyse(model, electrics, readings), indent=2, default=str)
    )
    for kind, path in paths.items():
        logger.info("%s → %s", kind, path)
    return paths
