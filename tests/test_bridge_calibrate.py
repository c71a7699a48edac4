"""``python -m bridge calibrate`` and the clients' ``calibrate``: request shapes and the report
(scripted transport), exit codes, then the real service's POST /calibrate on the BDF fixture
(made by tests/fixtures/logs/make_bdf.py from a pack with 8 % less capacity and 25 % more
resistance than the sv1ev3 preset)."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from support.processes import ServiceProcess, free_port
from support.wire import request_body

from bridge.__main__ import main
from bridge.calibrate import error_messages, format_report
from bridge.sources.replay import replay_samples
from clients.python import AsyncTwinClient, TwinClient, TwinValidationError

LOGS = Path(__file__).parent / "fixtures" / "logs"
BDF_FIXTURE = LOGS / "sv1ev3_drive_20260101.bdf.csv"
SAMPLE = {"dt_s": 1.0, "current_a": 50.0, "measured_voltage_v": 371.2}
RESPONSE: dict[str, Any] = {
    "vehicle": {"base": "sv1ev3", "pack": {"cell_capacity_ah": 202.0}},
    "state": {"soc": 0.9012},
    "fit": {
        "rms_before_v": 2.2291,
        "rms_after_v": 0.0491,
        "samples": 1800,
        "parameters": {
            "capacity_ah": {
                "value": 202.31,
                "std": 0.42,
                "unit": "Ah",
                "nominal": 220.0,
                "identified": True,
            },
            "tau1_s": {
                "value": 30.0,
                "std": None,
                "unit": "s",
                "nominal": 30.0,
                "identified": False,
            },
            "initial_soc": {
                "value": 0.90123,
                "std": 0.0011,
                "unit": "",
                "nominal": None,
                "identified": True,
            },
        },  # fmt: skip
        "warnings": ["tau1_s: not identified from these data, kept at the nominal value"],
    },
}


def _make_bdf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bdf", LOGS / "make_bdf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the clients (scripted transport) --------------------------------------------------------


def _handler(seen: list[httpx.Request]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=RESPONSE)

    return handler


def test_calibrate_body_path_and_key() -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(_handler(seen))
    with TwinClient("http://twin.test", api_key="w", read_key="r", transport=transport) as client:
        reply = client.calibrate(
            [SAMPLE], vehicle="sv1ev3", state={"soc": 0.9}, parameters=("capacity_ah",)
        )
        client.calibrate([SAMPLE])
    assert reply == RESPONSE
    full, bare = seen
    assert full.method == "POST" and full.url.path == "/calibrate"
    assert full.headers["authorization"] == "Bearer w"
    assert request_body(full) == {
        "vehicle": "sv1ev3",
        "state": {"soc": 0.9},
        "samples": [SAMPLE],
        "parameters": ["capacity_ah"],
    }
    assert request_body(bare) == {"state": None, "samples": [SAMPLE]}


async def test_async_calibrate_sends_the_same_body() -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(_handler(seen))
    async with AsyncTwinClient("http://twin.test", transport=transport) as client:
        reply = await client.calibrate([SAMPLE], vehicle={"base": "sv1ev3"}, parameters=["r0_ohm"])
    assert reply["fit"]["samples"] == 1800
    (request,) = seen
    assert request.url.path == "/calibrate" and "authorization" not in request.headers
    assert request_body(request) == {
        "vehicle": {"base": "sv1ev3"},
        "state": None,
        "samples": [SAMPLE],
        "parameters": ["r0_ohm"],
    }


# -- the report and the exit codes -----------------------------------------------------------


def test_report_table_rms_and_warnings() -> None:
    lines = format_report(RESPONSE, "calibration of sv1ev3").splitlines()
    assert lines[0] == "calibration of sv1ev3"
    assert lines[1].split() == ["parameter", "nominal", "fitted", "±", "std", "unit", "identified"]
    assert lines[2].split() == ["capacity_ah", "220.00", "202.31", "±", "0.42", "Ah", "yes"]
    assert lines[3].split() == ["tau1_s", "30", "30", "s", "no"]  # no std: not identified
    assert lines[4].split() == ["initial_soc", "-", "0.9012", "±", "0.0011", "yes"]
    unit, identified = lines[1].index("unit"), lines[1].index("identified")  # columns line up
    assert [line[unit:identified].strip() for line in lines[2:5]] == ["Ah", "s", ""]
    assert [line[identified:] for line in lines[2:5]] == ["yes", "no", "yes"]
    assert lines[5] == "voltage rms: 2.229 V with the nominal pack, 0.0491 V fitted (1800 samples)"
    assert lines[6:] == ["warnings:", "  - " + RESPONSE["fit"]["warnings"][0]]
    empty = format_report({"fit": {"parameters": {}, "warnings": []}}, "t").splitlines()
    assert empty[-1] == "warnings: none" and "- V with the nominal pack" in empty[-2]


def test_service_errors_become_field_lines() -> None:
    body = {"detail": [{"loc": ["body", "parameters", 0], "msg": "unknown parameter 'x'",
                        "type": "value_error"}, {"msg": "no location"}]}  # fmt: skip
    error = TwinValidationError(422, body, "POST", "http://twin.test/calibrate")
    assert error_messages(error) == ["body.parameters.0: unknown parameter 'x'", "no location"]
    plain = TwinValidationError(413, "too large", "POST", "http://twin.test/calibrate")
    assert error_messages(plain) == ["too large"]


def test_unreachable_service_exits_3(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "fit.json"
    args = ["calibrate", str(BDF_FIXTURE), "--vehicle", "sv1ev3", "--twin-url", url]
    assert main([*args, "--out", str(out)]) == 3
    assert "service unreachable" in caplog.text and not out.exists()


def test_unusable_logs_exit_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # never asked: the log is refused first
    no_voltage = tmp_path / "drive.csv"
    no_voltage.write_text("dt_s,current_a\n1,10\n")
    assert main(["calibrate", str(no_voltage), "--twin-url", url]) == 2
    assert "no measured voltage" in caplog.text
    assert main(["calibrate", str(tmp_path / "missing.csv"), "--twin-url", url]) == 2
    with pytest.raises(SystemExit) as usage:
        main(["calibrate", str(BDF_FIXTURE), "--initial-soc", "2", "--twin-url", url])
    assert usage.value.code == 2
    assert "service unreachable" not in caplog.text


# -- against the service's POST /calibrate ---------------------------------------------------


def _voltage_rms(
    twin: ServiceProcess, samples: list[dict[str, Any]], vehicle: Any, state: Any
) -> float:
    """The rms of measured minus modelled voltage when /step runs the samples (a what-if, the
    model alone: the estimator would correct it with the very voltages compared)."""
    with TwinClient(twin.url) as client:
        reply = client.step(
            samples, vehicle_id="calibrate-check", vehicle=vehicle, state=state,
            options={"trace": True, "store": False, "estimate": False},
        )  # fmt: skip
    trace = reply["trace"]
    assert len(trace) == len(samples)
    errors = [
        row["voltage"] - s["measured_voltage_v"] for row, s in zip(trace, samples, strict=True)
    ]
    return math.sqrt(sum(e * e for e in errors) / len(errors))


def test_calibrate_the_bdf_fixture(
    twin: ServiceProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sv1ev3.calibrated.json"
    code = main(
        ["calibrate", str(BDF_FIXTURE), "--vehicle", "sv1ev3", "--initial-soc", "0.9",
         "--twin-url", twin.url, "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert printed.splitlines()[1].split()[:2] == ["parameter", "nominal"]
    table = {line.split()[0]: line.split() for line in printed.splitlines()[2:]}
    assert {"capacity_ah", "r0_ohm", "initial_soc"} <= set(table)
    assert "voltage rms:" in printed and f"wrote {out}" in printed
    result = json.loads(out.read_text())
    assert set(result) == {"vehicle", "state"}
    assert result["vehicle"]["base"] == "sv1ev3" and 0 < result["state"]["soc"] <= 1

    # The fitted pack, run by /step, follows the measured voltage far better than the preset,
    # down to about the fixture's noise, and as well as the fit says.
    make_bdf = _make_bdf()
    samples = [s.to_wire() for s in replay_samples([BDF_FIXTURE])]
    nominal = _voltage_rms(twin, samples, "sv1ev3", {"soc": make_bdf.START_SOC})
    fitted = _voltage_rms(twin, samples, result["vehicle"], result["state"])
    assert fitted < min(0.25 * nominal, 4 * make_bdf.VOLTAGE_NOISE_V), (fitted, nominal)
    with TwinClient(twin.url) as client:
        fit = client.calibrate(samples, vehicle="sv1ev3", state={"soc": 0.9})["fit"]
    assert fit["samples"] == len(samples)
    assert fit["rms_after_v"] < fit["rms_before_v"]
    assert fit["rms_after_v"] == pytest.approx(fitted, rel=0.25, abs=0.02)
    capacity = fit["parameters"]["capacity_ah"]
    assert capacity["nominal"] == pytest.approx(220.0)
    truth_ah = 220.0 * make_bdf.CAPACITY_SCALE
    assert capacity["identified"] and capacity["value"] == pytest.approx(truth_ah, rel=0.05)


def test_calibrate_refusal_prints_the_services_messages_and_exits_2(
    twin: ServiceProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="bridge.calibrate"):
        code = main(
            ["calibrate", str(BDF_FIXTURE), "--vehicle", "sv1ev3", "--parameters",
             "capacity_ah,no_such_parameter", "--twin-url", twin.url]
        )  # fmt: skip
    assert code == 2
    assert "the service refused the request (422)" in caplog.text
    assert "parameters" in caplog.text  # the error item names the field
