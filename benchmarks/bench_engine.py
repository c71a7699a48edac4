"""Engine: one hour of 10 Hz samples (36,000) through the full model, in-process and through
POST /step (power rows, the bridge's motor rows, those as columns in JSON and in msgpack),
against the simplest plain-Python 1-RC cell loop in the same run; and the same
hour as current input, model only against the state estimator with a measured voltage and
temperature at every sample."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import httpx
import msgpack
import numpy as np
import orjson

from benchmarks.common import best_of, drive_power_w, goal, machine, service, table
from clients.python.columns import binary_columns, to_columns
from twin_service.models import estimator
from twin_service.models.aging import MODEL_NAMES
from twin_service.models.cell_data import OCV_SOC_COARSE, OCV_V_COARSE
from twin_service.models.pack import (
    AgingSettings,
    DriveInput,
    Estimation,
    PackParams,
    new_pack_state,
    simulate,
)
from twin_service.presets import PRESETS, VehiclePreset, pack_params
from validation.common import previous_model_vehicle

N = 36_000
DT = 0.1


def baseline_loop(current_a: list[float], dt_s: float) -> float:
    """Coulomb counting + one RC + fixed R0, cell level, plain Python: the baseline."""
    soc_tab, v_tab = list(OCV_SOC_COARSE), list(OCV_V_COARSE)
    q_as, r0, r1, tau = 220.0 * 3600.0, 2.6e-4, 3.9e-4, 30.0
    a = math.exp(-dt_s / tau)
    soc, v1, v = 0.85, 0.0, 0.0
    for i in current_a:
        soc -= i * dt_s / q_as
        v1 = v1 * a + i * r1 * (1.0 - a)
        j = min(max(bisect.bisect_right(soc_tab, soc), 1), len(soc_tab) - 1)
        f = (soc - soc_tab[j - 1]) / (soc_tab[j] - soc_tab[j - 1])
        v = v_tab[j - 1] + f * (v_tab[j] - v_tab[j - 1]) - i * r0 - v1
    return v


MSGPACK = "application/msgpack"
HTTP_GOALS = (1.0, 1.0, 3.0, 4.0)  # x baseline for each of http_bodies, in its order


def motor_samples(power_w: np.ndarray) -> list[dict[str, object]]:
    """The drive as the bridge sends it: one motor's torque and speed (the power over a speed
    that follows the drive) and the wheel speed."""
    t = np.arange(power_w.shape[0]) * DT
    speed = 250.0 + 150.0 * np.sin(2 * np.pi * t / 600.0) ** 2  # rad/s
    torque = power_w / speed
    return [
        {"dt_s": DT, "motors": [{"torque_nm": float(q), "speed_rad_s": float(w)}],
         "wheel_speed_m_s": float(w) * 0.045}
        for q, w in zip(torque, speed, strict=True)
    ]  # fmt: skip


def http_bodies(power_w: np.ndarray) -> list[tuple[str, bytes, dict[str, str]]]:
    """(label, body, headers) of the same hour as POST /step takes it: power rows; the bridge's
    motor rows; those as columns in JSON; as the client sends them in msgpack (numbers as
    float64 bytes), with a msgpack answer."""
    json_headers = {"content-type": "application/json"}
    envelope = {"vehicle_id": "bench", "options": {"replace": True}}  # the same new pack
    power_rows = [{"dt_s": DT, "power_kw": float(p) / 1000.0} for p in power_w]
    motor_rows = motor_samples(power_w)
    columns = to_columns(motor_rows)
    return [
        ("power rows (JSON)", orjson.dumps({**envelope, "samples": power_rows}), json_headers),
        ("motor rows (JSON)", orjson.dumps({**envelope, "samples": motor_rows}), json_headers),
        ("motor columns (JSON)", orjson.dumps({**envelope, "samples": columns}), json_headers),
        (
            "motor columns (msgpack in and out, as the client sends them)",
            msgpack.packb({**envelope, "samples": binary_columns(columns)}),
            {"content-type": MSGPACK, "accept": MSGPACK},
        ),
    ]


def estimator_rows(params: PackParams, power_w: np.ndarray) -> list[list[object]]:
    """The drive as pack current (its power over the nominal voltage), model only and with
    the filter fed a noisy voltage and temperature (from a model-only run) at every sample."""
    n = power_w.shape[0]
    current = power_w / params.cells_series / 3.27
    drive = DriveInput(np.full(n, DT), np.full(n, np.nan), current, np.full(n, 25.0), np.zeros(n))
    rng = np.random.default_rng(1)
    truth = simulate(params, new_pack_state(), drive, AgingSettings())
    settings = estimator.settings_vector(0.5, 0.0, 0.5, 0.5, 0.03, 5.0, False)
    measured = Estimation(
        settings,
        truth.voltage_v + rng.normal(0.0, 0.5, n),
        truth.temperature_c + rng.normal(0.0, 0.5, n),
        np.full(n, np.nan),
    )

    def filtered(soc: float, soc_std: float) -> Callable[[], None]:
        def run() -> None:
            state = new_pack_state(soc=soc)
            state.estimator = estimator.new_estimator(
                1.0, 1.0, soc_std, 0.1, 0.3, 1.0, 1.0, 0.01, 2.0
            )
            simulate(params, state, drive, AgingSettings(), measured)

        return run

    def model_only() -> None:
        simulate(params, new_pack_state(), drive, AgingSettings())

    known = filtered(new_pack_state().soc, 0.03)
    wrong = filtered(0.8, 0.25)
    wrong()  # warm
    plain = best_of(model_only)
    est = best_of(known)
    est_wrong = best_of(wrong)
    return [
        ["current input, model only", plain * 1e3, plain / n * 1e6, 1.0],
        ["current input, estimator (voltage + temperature every sample)", est * 1e3,
         est / n * 1e6, est / plain],
        ["the same from a wrong SOC (sigma 25 %-points: a mixture while it converges)",
         est_wrong * 1e3, est_wrong / n * 1e6, est_wrong / plain],
    ]  # fmt: skip


def main() -> None:
    t = np.arange(N) * DT
    power = drive_power_w(t)
    params = pack_params(PRESETS["sv1ev3"])
    drive = DriveInput(np.full(N, DT), power, np.full(N, np.nan), np.full(N, 25.0), np.zeros(N))
    currents = (power / 116 / 3.27).tolist()  # cell current of the same drive, Python floats

    base = best_of(lambda: baseline_loop(currents, DT))
    rows = [["plain-Python 1-RC cell loop (baseline)", base * 1e3, base / N * 1e6, 1.0]]
    for model in MODEL_NAMES:
        settings = AgingSettings(model)
        simulate(params, new_pack_state(), drive, settings)  # warm

        def run(s: AgingSettings = settings) -> None:
            simulate(params, new_pack_state(), drive, s)

        el = best_of(run)
        rows.append([f"full model in-process, aging {model}", el * 1e3, el / N * 1e6, base / el])
    # The pack model before issue 12 (one resistance, coarse OCV, no hysteresis, taper or
    # thermal management) in today's core: what this round's pack physics costs.
    before = VehiclePreset.model_validate(
        previous_model_vehicle(PRESETS["sv1ev3"].model_dump(exclude_computed_fields=True))
    )
    old = pack_params(before)
    simulate(old, new_pack_state(), drive, AgingSettings())
    el = best_of(lambda: simulate(old, new_pack_state(), drive, AgingSettings()))
    rows.append(["in-process, naumann, previous pack parameters", el * 1e3, el / N * 1e6,
                 base / el])  # fmt: skip

    http_labels = []
    with service() as url, httpx.Client(timeout=60) as client:
        for label, content, headers in http_bodies(power):
            http_labels.append(label)

            def post(content: bytes = content, headers: dict[str, str] = headers) -> None:
                r = client.post(url + "/step", content=content, headers=headers)
                r.raise_for_status()
                if r.headers["content-type"] == MSGPACK:
                    msgpack.unpackb(r.content)
                else:
                    orjson.loads(r.content)

            post()
            el = best_of(post)
            rows.append([f"POST /step, {label}", el * 1e3, el / N * 1e6, base / el])
    table(
        f"Engine: {N} samples at 10 Hz ({machine()})",
        ["path", "ms", "us/sample", "x baseline"],
        rows,
    )
    print(
        "\nGoals: in-process >= 5x baseline; through HTTP: power rows >= 1x, motor rows >= 1x, "
        "columns in JSON >= 3x, columns in msgpack >= 4x."
    )
    ratio = {str(row[0]): float(row[-1]) for row in rows}  # type: ignore[arg-type]
    goal("Engine in-process (36,000 samples, naumann) x plain-Python loop",
         ratio["full model in-process, aging naumann"], 5.0)  # fmt: skip
    for label, target in zip(http_labels, HTTP_GOALS, strict=True):
        goal(f"POST /step 36,000 samples, {label.split(',')[0]} x plain-Python loop",
             ratio[f"POST /step, {label}"], target)  # fmt: skip
    est_rows = estimator_rows(params, power)
    table(
        f"Engine with the state estimator: {N} current samples at 10 Hz, aging naumann "
        f"({machine()})",
        ["path", "ms", "us/sample", "x model only"],
        est_rows,
    )
    print("\nGoal: the estimator <= 3x the model-only step.")
    cost = float(est_rows[1][-1])  # type: ignore[arg-type]
    goal("Estimator step (voltage + temperature every sample) x model-only step", cost, 3.0,
         at_most=True)  # fmt: skip


if __name__ == "__main__":
    main()
