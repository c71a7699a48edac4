"""What a scripted service reads from the client: the body, JSON or msgpack, with columnar
samples (float64 bytes included) turned back into rows: the inverse of the client's columns,
written independently."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import httpx
import msgpack


def _listed(values: Any) -> Any:
    """A float64-bytes column as a list (NaN: null)."""
    if isinstance(values, bytes):
        return [
            None if math.isnan(v) else v for v in struct.unpack(f"<{len(values) // 8}d", values)
        ]
    return values


def lists_of(columns: dict[str, Any]) -> dict[str, Any]:
    """Columns with bytes columns turned into lists."""
    out = {k: _listed(v) for k, v in columns.items() if k != "motors"}
    if "motors" in columns:
        out["motors"] = [{k: _listed(v) for k, v in m.items()} for m in columns["motors"]]
    return out


def rows_of(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Columns -> rows, leaving out nulls (a row form has no key where a column has null)."""
    columns = lists_of(columns)
    n = len(columns["dt_s"])
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, values in columns.items():
        if key == "motors":
            continue
        for row, v in zip(rows, values, strict=True):
            if v is not None:
                row[key] = v
    for j, motor in enumerate(columns.get("motors") or []):
        for i in range(n):
            t, w = motor["torque_nm"][i], motor["speed_rad_s"][i]
            if t is not None:
                rows[i].setdefault("motors", [None] * len(columns["motors"]))[j] = {
                    "torque_nm": t,
                    "speed_rad_s": w,
                }
    return rows


def request_body(request: httpx.Request, *, as_rows: bool = True) -> dict[str, Any]:
    """The decoded body of a client request (samples as rows unless as_rows is False)."""
    if request.headers.get("content-type") == "application/msgpack":
        body = msgpack.unpackb(request.content)
    else:
        body = json.loads(request.content)
    if isinstance(body.get("samples"), dict):
        body["samples"] = rows_of(body["samples"]) if as_rows else lists_of(body["samples"])
    return body
