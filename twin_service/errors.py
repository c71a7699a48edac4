"""Client errors in FastAPI's shape: {"detail": [{"loc": [...], "msg": ..., "type": ...}]}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

log = logging.getLogger("twin_service")
MAX_REPORTED_ERRORS = 20


def error_item(loc: list[str | int], msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


class ApiError(Exception):
    """An HTTP error whose body names the offending fields."""

    def __init__(
        self,
        status_code: int,
        errors: list[dict[str, Any]],
        headers: dict[str, str] | None = None,
    ):
        super().__init__(errors[0]["msg"] if errors else "error")
        self.status_code = status_code
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.headers = headers


def pydantic_errors(exc: Any, prefix: list[str | int]) -> list[dict[str, Any]]:
    """Convert a pydantic ValidationError into error items under `prefix`."""
    return [
        error_item(prefix + list(e["loc"]), e["msg"], e["type"])
        for e in exc.errors(include_url=False, include_input=False)
    ]


async def api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        status_code=exc.status_code, content={"detail": exc.errors}, headers=exc.headers
    )


async def too_deep_handler(_: Any, exc: Exception) -> JSONResponse:
    """The last resort for input nested deeper than the recursion limit: a 422, not a 500
    (bodies are parsed by step.service.decode_json, which refuses such nesting first)."""
    log.warning("recursion limit reached serving a request: %s", exc)
    item = {"loc": ["body"], "msg": "input nested too deeply", "type": "json_too_deep"}
    return JSONResponse(status_code=422, content={"detail": [item]})
