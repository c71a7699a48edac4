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


@jit
def _drive_columns(dt_s, power_kw, current_a, aux_kw, wheel_speed_m_s, ambient_c, ambient_start_c,
                   motor_sample, torque_nm, speed_rad_s, has_motors, motor_peak_w, eff_load,
                   eff_value, transmission, preset_aux_w):  # fmt: skip
    n = dt_s.shape[0]
    power_w = _terminal_power(
        power_kw, aux_kw, motor_sample, torque_nm, speed_rad_s, has_motors, motor_peak_w,
        eff_load, eff_value, transmission, preset_aux_w,
    )  # fmt: skip
    current = np.empty(n)
    ambient = np.empty(n)
    distance = np.empty(n)
    last = ambient_start_c
    for i in range(n):
        current[i] = current_a[i] if math.isnan(power_w[i]) else math.nan
        if not math.isnan(ambient_c[i]):
            last = ambient_c[i]
        ambient[i] = last
        v = wheel_speed_m_s[i]
        distance[i] = (0.0 if math.isnan(v) else abs(v)) * dt_s[i]
    return power_w, current, ambient, distance


def drive_columns(
    dt_s: np.ndarray,
    power_kw: np.ndarray,
    current_a: np.ndarray,
    aux_kw: np.ndarray,
    wheel_speed_m_s: np.ndarray,
    ambient_c: np.ndarray,
    ambient_start_c: float,
    motor_sample: np.ndarray,
    torque_nm: np.ndarray,
    speed_rad_s: np.ndarray,
    has_motors: np.ndarray,
    params: DrivetrainParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sample (NaN where absent on input): terminal power demand in W (discharge > 0;
    `power_kw` where given, else the motors' electrical power, motor `j` belonging to sample
    `motor_sample[j]`, plus the preset's auxiliary load; a sample's own `aux_kw` replaces the
    preset's and adds to any input), the current demand where no power is given (else NaN),
    the ambient carried forward from `ambient_start_c`, and the distance from the wheel speed.
    """
    load, value = params.curve
    return _drive_columns(dt_s, power_kw, current_a, aux_kw, wheel_speed_m_s, ambient_c,
                          ambient_start_c, motor_sample, torque_nm, speed_rad_s, has_motors,
                          params.motor_peak_w, load, value, params.transmission_efficiency,
                          params.aux_w)  # fmt: skip


def est_pack_current(power_kw: float, voltage_nom: float = 360.0, eff: float = 0.94) -> float:
    """Original design's quick estimate of pack current (A) from motor power (kW).

    Kept as a documented utility for back-of-envelope checks: divides the power by a fixed
    efficiency and a nominal voltage. The step kernel solves P = V(I) * I instead.
    """
    return power_kw * 1000.0 / (voltage_nom * eff)
