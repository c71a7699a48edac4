from __future__ import annotations

import logging
import time

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from twin_service.deps import LiveDep, SettingsDep
from twin_service.errors import ApiError, error_item
from twin_service.schemas import ErrorResponse, StepResponse
from twin_service.step.service import decode_json, run_step

router = APIRouter(tags=["step"])
log = logging.getLogger(__name__)

# Batches above this many samples run in a worker thread so the event loop keeps serving.
THREAD_THRESHOLD = 2000


async def read_limited_body(request: Request, max_bytes: int) -> bytes:
    too_large = ApiError(
        413, [error_item(["body"], f"request body exceeds max_body_bytes ({max_bytes})",
                         "body_too_large")]
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


@router.post(
    "/step",
    operation_id="step",
    response_model=StepResponse,
    responses={401: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
               422: {"model": ErrorResponse}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StepRequest"}}},
        }
    },
)
async def step(request: Request, settings: SettingsDep, live: LiveDep) -> Response:
    """Advance one vehicle's pack over a batch of samples. Stateless: the returned `state` is
    what the next call sends back."""
    if settings.api_key is not None:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {settings.api_key}":
            raise ApiError(401, [error_item(["header", "authorization"],
                                            "missing or wrong bearer token", "unauthorized")])
    started = time.perf_counter()
    body = await read_limited_body(request, settings.max_body_bytes)
    payload = decode_json(body)
    samples = payload.get("samples") if isinstance(payload, dict) else None
    if isinstance(samples, list) and len(samples) > THREAD_THRESHOLD:
        outcome = await run_in_threadpool(
            run_step, payload, settings.default_vehicle, settings.max_samples_per_request
        )
    else:
        outcome = run_step(payload, settings.default_vehicle, settings.max_samples_per_request)
    rev = await live.commit(outcome.vehicle_id, outcome.state, outcome.telemetry)
    response = {
        "vehicle_id": outcome.vehicle_id,
        "rev": rev,
        "state": outcome.state,
        "telemetry": outcome.telemetry,
    }
    if outcome.trace is not None:
        response["trace"] = outcome.trace
    log.debug("step %s rev %d: %d samples in %.1f ms", outcome.vehicle_id, rev,
              outcome.samples, (time.perf_counter() - started) * 1000)
    return Response(orjson.dumps(response), media_type="application/json")
