from __future__ import annotations

import logging
import time

import msgpack
import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from twin_service.deps import LiveDep, MetricsDep, SettingsDep, require_write_key
from twin_service.errors import ApiError, api_error_handler, error_item, too_deep_handler
from twin_service.limits import JSON, MSGPACK, BodyLimits, media_type
from twin_service.live import LiveBackend
from twin_service.live.base import RevConflict, StoreUnavailable
from twin_service.metrics import Metrics
from twin_service.schemas import ErrorResponse, StepResponse
from twin_service.settings import Settings
from twin_service.step.service import run_step_body

router = APIRouter(tags=["step"])
log = logging.getLogger(__name__)

# Bodies above this size (~2000 samples) run in a worker thread so the event loop keeps serving.
THREAD_THRESHOLD_BYTES = 100_000
JSON_TYPE = "application/json"
MSGPACK_TYPE = "application/msgpack"


def rev_conflict(exc: RevConflict) -> ApiError:
    given = "has no rev" if exc.given_rev in (None, 0) else f"is at rev {exc.given_rev}"
    msg = (
        f"vehicle {exc.vehicle_id!r} is at rev {exc.current_rev} and this state {given}: "
        f"continue from its latest state (GET /vehicles/{exc.vehicle_id}), or set "
        "options.replace to restart its twin, or options.store false for a what-if run"
    )
    item = error_item(["body", "state", "rev"], msg, "rev_conflict")
    item["current_rev"] = exc.current_rev
    return ApiError(409, [item])


def store_unavailable(exc: StoreUnavailable) -> ApiError:
    """503: the durable store did not commit the step (nothing stored; post it again). The
    details (host, error) go to the log only."""
    log.warning("step not committed, store unavailable: %s", exc)
    item = error_item(["store"], "store unavailable: the step was not stored; retry", "unavailable")
    return ApiError(503, [item], headers={"Retry-After": "1"})


async def read_body(request: Request) -> bytes:
    """The request body. Its size (max_body_bytes) and media type were checked by the app's
    BodyLimits middleware (twin_service/limits.py), which ends an oversized streamed body with
    a disconnect. Reads the ASGI messages directly: the same as iterating `request.stream()`
    without an async generator per request."""
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class StepFirst:
    """POST /step served ahead of the app's routing: for a single sample, Starlette's router,
    exception middleware and FastAPI's per-request dependency and parameter handling cost more
    than the model. Every other request goes on to `app`. The step gets the same body checks
    (BodyLimits, its /step rule), metrics and errors as through the router (an ApiError gets
    the app's error body; anything else reaches Starlette's ServerErrorMiddleware, outside
    this one). The APIRoute below documents the operation in OpenAPI."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.step = BodyLimits(self._serve, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _route_path(scope) == "/step":
            await self.step(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @staticmethod
    async def _serve(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        state = request.app.state
        try:
            body, media = await _step(request, state.settings, state.live, state.metrics)
        except ApiError as exc:
            await (await api_error_handler(request, exc))(scope, receive, send)
            return
        except RecursionError as exc:
            await (await too_deep_handler(request, exc))(scope, receive, send)
            return
        # What Response(body, media_type=media) sends.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode("latin-1")),
                    (b"content-type", media.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_path(scope: Scope) -> str:
    """The path the router would match: without the root path a proxy mounts the app at."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


@router.post(
    "/step",
    operation_id="step",
    response_model=StepResponse,
    responses={
        401: {"model": ErrorResponse},
        409: {"model": ErrorResponse, "description": "rev_conflict: the state is not the latest"},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse, "description": "a durable store did not commit the step"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/StepRequest"}},
                "application/msgpack": {"schema": {"$ref": "#/components/schemas/StepRequest"}},
            },
        },
        "responses": {
            "200": {
                "content": {
                    "application/msgpack": {"schema": {"$ref": "#/components/schemas/StepResponse"}}
                },
                "description": "With `Accept: application/msgpack` the same object as msgpack",
            }
        },
    },
)
async def step(
    request: Request, settings: SettingsDep, live: LiveDep, metrics: MetricsDep
) -> Response:
    """Advance one vehicle's pack over a batch of samples. Stateless: the returned `state` is
    what the next call sends back."""
    body, media = await _step(request, settings, live, metrics)
    return Response(body, media_type=media)


def body_formats(scope: Scope) -> tuple[bool, bool]:
    """(the body is msgpack, the answer should be msgpack): Content-Type, and Accept naming
    msgpack before JSON (or without JSON). Read from the raw headers: no Headers object."""
    content_type = accept = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"accept":
            accept = value
    packed = media_type(content_type) == MSGPACK
    if accept is None or MSGPACK not in accept:
        return packed, False
    kinds = [part.split(b";", 1)[0].strip().lower() for part in accept.split(b",")]
    if MSGPACK not in kinds:
        return packed, False
    json_at = kinds.index(JSON) if JSON in kinds else len(kinds)
    return packed, kinds.index(MSGPACK) < json_at


async def _step(
    request: Request, settings: Settings, live: LiveBackend, metrics: Metrics
) -> tuple[bytes, str]:
    """The response body of a successful step and its media type; raises ApiError for bad
    requests."""
    started = time.perf_counter()
    try:
        require_write_key(request, settings)
        body = await read_body(request)
        packed, answer_packed = body_formats(request.scope)
        args = (body, settings.default_vehicle, settings.max_samples_per_request,
                settings.live_trace_points, packed)  # fmt: skip
        if len(body) > THREAD_THRESHOLD_BYTES:
            outcome = await run_in_threadpool(run_step_body, *args)
        else:
            outcome = run_step_body(*args)
    except ApiError as exc:
        metrics.steps_rejected.inc(status=str(exc.status_code))
        raise
    if outcome.store:
        expect = None if outcome.replace else (outcome.base_rev or 0)
        try:
            # Raises only for a conflict: hub/store failures are counted and a best-effort rev
            # comes back.
            rev = await live.commit(
                outcome.vehicle_id, outcome.state, outcome.telemetry, expect_rev=expect,
                trace=outcome.live_trace,
            )  # fmt: skip
        except RevConflict as exc:
            metrics.steps_rejected.inc(status="409")
            raise rev_conflict(exc) from None
        except StoreUnavailable as exc:
            metrics.steps_rejected.inc(status="503")
            raise store_unavailable(exc) from None
    else:
        rev = outcome.base_rev or 0
        outcome.telemetry["rev"] = rev
    response = {
        "vehicle_id": outcome.vehicle_id,
        "rev": rev,
        "state": outcome.state,
        "telemetry": outcome.telemetry,
    }
    if outcome.trace is not None:
        response["trace"] = outcome.trace
    if outcome.estimate is not None:
        response["estimate"] = outcome.estimate
    if answer_packed:
        body_out, media = msgpack.packb(response), MSGPACK_TYPE
    else:
        body_out, media = orjson.dumps(response), JSON_TYPE
    metrics.steps.inc()
    metrics.samples.inc(outcome.samples)
    metrics.step_seconds.observe(time.perf_counter() - started)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "step %s rev %d: %d samples in %.1f ms",
            outcome.vehicle_id,
            rev,
            outcome.samples,
            (time.perf_counter() - started) * 1000,
        )
    return body_out, media
