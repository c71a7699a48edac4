"""Application factory: routers, the lifespan that owns the hub/store, error handlers."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from twin_service import __version__
from twin_service.api import (
    calibrate,
    dashboard,
    docs,
    forecast,
    health,
    live,
    metrics,
    presets,
    step,
    vehicles,
)
from twin_service.errors import ApiError, api_error_handler, too_deep_handler
from twin_service.limits import BodyLimits
from twin_service.live import create_live
from twin_service.metrics import Metrics
from twin_service.models.pack import warm_up
from twin_service.schemas import StepRequest
from twin_service.settings import Settings, load_settings

log = logging.getLogger("twin_service")

DESCRIPTION = """Digital twin of LiFePO4 EV battery packs. `POST /step` is stateless: it takes
the pack state and a batch of drive samples and returns the new state and telemetry."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        live = create_live(settings, app.state.metrics)
        await live.start()
        app.state.live = live
        await run_in_threadpool(warm_up)
        # Everything alive after start-up lives as long as the process: keep it out of the
        # garbage collector's full scans.
        gc.collect()
        gc.freeze()
        log.info("twin service ready (hub %s, store %s)", _redact(settings.hub_url),
                 _redact(settings.store))  # fmt: skip
        try:
            yield
        finally:
            await live.close()

    app = FastAPI(
        title="EV battery digital twin",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local assets by api.docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.add_middleware(BodyLimits, settings=settings)  # body size and media type
    app.add_middleware(step.StepFirst, settings=settings)  # POST /step, ahead of routing
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(RecursionError, too_deep_handler)
    app.include_router(calibrate.router)
    # presets before vehicles so /vehicles/presets is not taken as a vehicle id; the dashboard
    # (static files at /) comes last.
    for module in (step, forecast, presets, vehicles, live, health, metrics, docs, dashboard):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _validation_error_handler(_: Any, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": errors})


def _openapi(app: FastAPI) -> dict[str, Any]:
    """OpenAPI document; adds StepRequest, which /step validates column-wise itself."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    step_schema = StepRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in step_schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas["StepRequest"] = step_schema
    app.openapi_schema = doc
    return doc


def _redact(url: str) -> str:
    """A URL without its password, for the log."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
