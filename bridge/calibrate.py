"""``python -m bridge calibrate``: fit the twin's pack to a log with measured voltage.

The log (any replay format: CSV, JSONL, a ``/step`` body, a Battery Data Format file) is read
into samples and sent to ``POST /calibrate`` in one request; the service fits the pack's
parameters (capacity, R0, R1, tau1, a per-cell OCV offset, the initial SOC) to the measured
terminal voltage. The command prints them next to the preset's nominal values, the voltage
rms before and after the fit and the service's warnings, and writes the fitted
``{"vehicle", "state"}`` (which ``/step`` takes as its ``vehicle`` and ``state``) to
``--out``.

Exit codes: 0 fitted; 2 bad input (an unreadable log, one without measured voltage, an
option or key the service refuses: its 4xx messages are printed); 3 the service is
unreachable (nothing can be fitted without it, as ``beamng`` cannot run without its
simulator); 1 anything else (the service failed, or has no ``/calibrate``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from bridge.samples import Sample
from bridge.sources.replay import replay_samples
from clients.python import (
    TwinAuthError,
    TwinClient,
    TwinConnectionError,
    TwinHTTPError,
    TwinNotFound,
    TwinValidationError,
)
from clients.python.types import CalibrateResponse

logger = logging.getLogger("bridge.calibrate")

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3
#: How to read each parameter's numbers: (format of value and nominal, of the std).
_FORMATS = {"initial_soc": (".4f", ".2g"), "capacity_ah": (".2f", ".2g")}
_DEFAULT_FORMAT = (".5g", ".2g")


def load_samples(
    files: Sequence[Path],
    *,
    ambient_c: float | None = None,
    max_gap_s: float | None = None,
    signal_map: Path | None = None,
    dbc: Path | None = None,
) -> list[Sample]:
    """The log's samples; ValueError when it has none or none with a measured voltage.
    ``signal_map`` and ``dbc``: for MDF4 and CAN logs (see ``replay_samples``)."""
    samples = list(
        replay_samples(
            files, ambient_c=ambient_c, max_gap_s=max_gap_s, signal_map=signal_map, dbc=dbc
        )
    )
    names = ", ".join(str(f) for f in files)
    if not samples:
        raise ValueError(f"{names}: no samples")
    if not any(s.measured_voltage_v is not None for s in samples):
        raise ValueError(
            f"{names}: no measured voltage to fit to (a measured_voltage_v, voltage_v or "
            "pack_voltage_v column, a BDF file's Voltage / V, or a signal map's pack_voltage)"
        )
    return samples


def calibration_request(
    samples: Sequence[Sample],
    *,
    vehicle: str | Mapping[str, Any] | None,
    initial_soc: float | None,
    parameters: Sequence[str] | None,
) -> dict[str, Any]:
    """The arguments of :meth:`TwinClient.calibrate` for these samples."""
    return {
        "samples": [s.to_wire() for s in samples],
        "vehicle": vehicle,
        "state": {"soc": initial_soc} if initial_soc is not None else None,
        "parameters": list(parameters) if parameters else None,
    }


def _number(value: Any, spec: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return format(value, spec)


def format_report(response: Mapping[str, Any], title: str) -> str:
    """The fit as a table: parameter, nominal, fitted ± std, unit, identified; then the voltage
    rms before and after and the warnings."""
    fit = response.get("fit") or {}
    header = ("parameter", "nominal", "fitted ± std", "unit", "identified")
    rows = [header]
    for name, p in (fit.get("parameters") or {}).items():
        value_spec, std_spec = _FORMATS.get(name, _DEFAULT_FORMAT)
        fitted = _number(p.get("value"), value_spec)
        if isinstance(p.get("std"), int | float):
            fitted += f" ± {_number(p['std'], std_spec)}"
        identified = "yes" if p.get("identified") else "no"
        rows.append(
            (name, _number(p.get("nominal"), value_spec), fitted, str(p.get("unit") or ""),
             identified)
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [title]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    before, after = fit.get("rms_before_v"), fit.get("rms_after_v")
    lines.append(
        f"voltage rms: {_number(before, '.4g')} V with the nominal pack, "
        f"{_number(after, '.4g')} V fitted ({fit.get('samples', '-')} samples)"
    )
    warnings = fit.get("warnings") or []
    lines.append("warnings: none" if not warnings else "warnings:")
    lines += [f"  - {w}" for w in warnings]
    return "\n".join(lines)


def error_messages(exc: TwinHTTPError) -> list[str]:
    """The service's error items as ``field: message`` lines (its body when it has none)."""
    detail = exc.detail
    items = detail if isinstance(detail, list) else [detail if detail is not None else exc.body]
    lines = []
    for item in items:
        if isinstance(item, Mapping) and "msg" in item:
            loc = ".".join(str(part) for part in item.get("loc") or [])
            lines.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
        else:
            lines.append(str(item))
    return lines


def write_result(response: CalibrateResponse, out: Path) -> None:
    """``{"vehicle", "state"}`` of the fit as JSON."""
    result = {"vehicle": response.get("vehicle"), "state": response.get("state")}
    out.write_text(json.dumps(result, indent=2) + "\n")


def run(
    client: TwinClient,
    samples: Sequence[Sample],
    *,
    vehicle: str | None,
    source: str,
    out: Path | None = None,
    initial_soc: float | None = None,
    parameters: Sequence[str] | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Fit the samples (of :func:`load_samples`; ``source`` names them) and report; returns
    the exit code (the module docstring lists them)."""
    measured = sum(s.measured_voltage_v is not None for s in samples)
    hours = sum(s.dt_s for s in samples) / 3600.0
    logger.info(
        "calibrating %s at %s: %d samples (%.2f h), %d with measured voltage",
        vehicle or "the service's default preset",
        client.base_url,
        len(samples),
        hours,
        measured,
    )
    request = calibration_request(
        samples, vehicle=vehicle, initial_soc=initial_soc, parameters=parameters
    )
    try:
        response = client.calibrate(**request)
    except TwinConnectionError as exc:
        logger.error("service unreachable: %s (--twin-url, env TWIN_URL)", exc)
        return EXIT_UNREACHABLE
    except (TwinValidationError, TwinAuthError) as exc:
        logger.error("the service refused the request (%d):", exc.status_code)
        for line in error_messages(exc):
            logger.error("  %s", line)
        return EXIT_BAD_INPUT
    except TwinNotFound as exc:
        logger.error("%s: the service has no POST /calibrate (an older version?)", exc.url)
        return EXIT_ERROR
    except TwinHTTPError as exc:
        logger.error("the service failed: %s", exc)
        return EXIT_ERROR
    title = f"calibration of {vehicle or 'the default preset'} from {source}"
    print(format_report(response, title), file=stdout, flush=True)
    if out is not None:
        try:
            write_result(response, out)
        except OSError as exc:
            logger.error("cannot write %s: %s", out, exc)
            return EXIT_BAD_INPUT
        print(f"wrote {out}: the fitted vehicle and state, as /step takes them", file=stdout)
    else:
        print(
            'not saved: --out FILE writes the fitted {"vehicle", "state"} as JSON (/step '
            "takes them as its vehicle and state)",
            file=stdout,
        )
    return EXIT_OK
