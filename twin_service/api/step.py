from __future__ import annotations

import logging
import time

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from twin_service.deps import LiveDep, MetricsDep, SettingsDep, require_write_key
from twin_service.errors import ApiError, error_item
from twin_service.schemas import ErrorResponse, StepResponse
from twin_service.step.service import run_step_body

router = APIRouter(tags=["step"])
log = logging.getLogger(__name__)

# Bodies above this size (~2000 samples) run in a worker thread so the event loop keeps serving.
THREAD_THRESHOLD_BYTES = 100_000


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
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/StepRequest"}}
            },
        }
    },
)
async def step(
    request: Request, settings: SettingsDep, live: LiveDep, metrics: MetricsDep
) -> Response:
    """Advance one vehicle's pack over a batch of samples. Stateless: the returned `state` is
    what the next call sends back."""
    started = time.perf_counter()
    try:
        require_write_key(request, settings)
        body = await read_limited_body(request, settings.max_body_bytes)
        args = (body, settings.default_vehicle, settings.max_samples_per_request)
        if len(body) > THREAD_THRESHOLD_BYTES:
            outcome = await run_in_threadpool(run_step_body, *args)
        else:
            outcome = run_step_body(*args)
    except ApiError as exc:
        metrics.steps_rejected.inc(status=str(exc.status_code))
        raise
    # Never raises: hub/store failures are counted and a best-effort rev comes back.
    rev = await live.commit(outcome.vehicle_id, outcome.state, outcome.telemetry)
    response = {
        "vehicle_id": outcome.vehicle_id,
        "rev": rev,
        "state": outcome.state,
        "telemetry": outcome.telemetry,
    }
    if outcome.trace is not None:
        response["trace"] = outcome.trace
    body_out = orjson.dumps(response)
    metrics.steps.inc()
    metrics.samples.inc(outcome.samples)
    metrics.step_seconds.observe(time.perf_counter() - started)
    log.debug("step %s rev %d: %d samples in %.1f ms", outcome.vehicle_id, rev,
              outcome.samples, (time.perf_counter() - started) * 1000)
    return Response(body_out, media_type="application/json")
