"""Electrical power at the pack terminals from motor torque and speed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from twin_service.models.jit import jit
from twin_service.models.laws import motor_electrical_power


@dataclass(frozen=True)
class DrivetrainParams:
    motor_peak_w: float  # per motor
    efficiency_load: tuple[float, ...]  # fraction of peak power, ascending
    efficiency_value: tuple[float, ...]  # motor + inverter efficiency at that load
    transmission_efficiency: float
    aux_w: float

    @cached_property
    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.efficiency_load), np.array(self.efficiency_value)


@jit
def _terminal_power(
    power_kw,
    aux_kw,
    motor_sample,
    torque_nm,
    speed_rad_s,
    has_motors,
    motor_peak_w,
    eff_load,
    eff_value,
    transmission,
    preset_aux_w,
):
    n = power_kw.shape[0]
    any_aux = False
    for i in range(n):
        if not math.isnan(aux_kw[i]):
            any_aux = True
            break
    motor_w = np.zeros(n)
    for j in range(motor_sample.shape[0]):
        motor_w[motor_sample[j]] += motor_electrical_power(
            torque_nm[j] * speed_rad_s[j], motor_peak_w, eff_load, eff_value, transmission
        )
    out = np.empty(n)
    for i in range(n):
        given = not math.isnan(aux_kw[i])
        p = power_kw[i] * 1000.0  # NaN where another input is given
        if has_motors[i]:
            # The preset's auxiliary load unless the sample gives its own.
            p = motor_w[i] + (0.0 if given else preset_aux_w)
        if any_aux:
            p = p + (aux_kw[i] * 1000.0 if given else 0.0)
        out[i] = p
    return out


def terminal_power_w(
    power_kw: np.ndarray,
    aux_kw: np.ndarray,
    motor_sample: np.ndarray,
    torque_nm: np.ndarray,
    speed_rad_s: np.ndarray,
    has_motors: np.ndarray,
    params: DrivetrainParams,
) -> np.ndarray:
    """Terminal power demand (W, discharge > 0) per sample: `power_kw` where given, else the
    motors' electrical power (motor `j` belongs to sample `motor_sample[j]`) plus the preset's
    auxiliary load; a sample's own `aux_kw` replaces the preset's and adds to any input. NaN
    where the sample gives a current instead."""
    load, value = params.curve
    return _terminal_power(
        power_kw,
        aux_kw,
        motor_sample,
        torque_nm,
        speed_rad_s,
        has_motors,
        params.motor_peak_w,
        load,
        value,
        params.transmission_efficiency,
        params.aux_w,
    )


def est_pack_current(power_kw: float, voltage_nom: float = 360.0, eff: float = 0.94) -> float:
    """Original design's quick estimate of pack current (A) from motor power (kW).

    Kept as a documented utility for back-of-envelope checks: divides the power by a fixed
    efficiency and a nominal voltage. The step kernel solves P = V(I) * I instead.
    """
    return power_kw * 1000.0 / (voltage_nom * eff)
