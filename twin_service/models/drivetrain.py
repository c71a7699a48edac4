"""Electrical power at the pack terminals from motor torque and speed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DrivetrainParams:
    motor_peak_w: float  # per motor
    efficiency_load: tuple[float, ...]  # fraction of peak power, ascending
    efficiency_value: tuple[float, ...]  # motor + inverter efficiency at that load
    transmission_efficiency: float
    aux_w: float


def drive_efficiency(mech_w: np.ndarray, params: DrivetrainParams) -> np.ndarray:
    """Efficiency between pack terminals and wheels-side shaft at a motor's load."""
    load = np.minimum(np.abs(mech_w) / params.motor_peak_w, 1.0)
    motor = np.interp(load, params.efficiency_load, params.efficiency_value)
    return motor * params.transmission_efficiency


def motor_electrical_power_w(mech_w: np.ndarray, params: DrivetrainParams) -> np.ndarray:
    """Electrical power of each motor: mech / eta when motoring, mech * eta when regenerating."""
    mech_w = np.asarray(mech_w, dtype=float)
    eta = drive_efficiency(mech_w, params)
    return np.where(mech_w >= 0.0, mech_w / eta, mech_w * eta)


def est_pack_current(power_kw: float, voltage_nom: float = 360.0, eff: float = 0.94) -> float:
    """Original design's quick estimate of pack current (A) from motor power (kW).

    Kept as a documented utility for back-of-envelope checks: divides the power by a fixed
    efficiency and a nominal voltage. The step kernel solves P = V(I) * I instead.
    """
    return power_kw * 1000.0 / (voltage_nom * eff)
