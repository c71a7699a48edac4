"""GET /metrics (Prometheus text) and GET /ready (hub and store reachable)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from twin_service.deps import LiveDep, MetricsDep
from twin_service.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: str
    hub: str
    hub_up: bool
    store: str
    store_up: bool


@router.get(
    "/ready",
    operation_id="ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "hub or store unreachable"}},
)
async def ready(live: LiveDep) -> JSONResponse:
    """Readiness: 200 while the hub and store are reachable (and, for Redis, this process is
    subscribed), 503 otherwise. /step keeps answering with a volatile store (memory, Redis);
    a durable one (SQL) must be reachable for /step to store and answer."""
    ok = await live.ready()
    body = {"status": "ready" if ok else "not_ready", **live.status()}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics: steps, samples, step latency, WebSocket clients, dropped messages,
    publish failures, hub state."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)
