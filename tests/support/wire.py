"""What a scripted service reads from the client: the body, JSON or msgpack, with columnar
samples turned back into rows (the inverse of the client's columns, written independently)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgpack


def rows_of(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Columns -> rows, leaving out nulls (a row form has no key where a column has null)."""
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
    if as_rows and isinstance(body.get("samples"), dict):
        body["samples"] = rows_of(body["samples"])
    return body
