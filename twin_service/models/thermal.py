"""Lumped pack thermal model: C dT/dt = Q_gen - G (T - T_amb), G = h*A + cooling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThermalParams:
    heat_capacity_j_k: float
    conductance_w_k: float  # h*A to ambient plus any cooling loop conductance


def thermal_decay(dt_s: np.ndarray, params: ThermalParams) -> np.ndarray:
    """Fraction of the temperature excess over equilibrium that survives a step of dt."""
    return np.exp(-np.asarray(dt_s) * params.conductance_w_k / params.heat_capacity_j_k)


def equilibrium_temperature_c(
    ambient_c: np.ndarray, heat_w: np.ndarray, params: ThermalParams
) -> np.ndarray:
    """Temperature the pack settles at for constant heat and ambient."""
    return ambient_c + heat_w / params.conductance_w_k


def step_temperature_c(
    temperature_c: np.ndarray,
    ambient_c: np.ndarray,
    heat_w: np.ndarray,
    dt_s: np.ndarray,
    params: ThermalParams,
) -> np.ndarray:
    """Exact solution over dt for constant heat and ambient (any dt, never unstable)."""
    t_eq = equilibrium_temperature_c(ambient_c, heat_w, params)
    return t_eq + (temperature_c - t_eq) * thermal_decay(dt_s, params)
