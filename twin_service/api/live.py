"""WebSocket feeds: /ws/vehicles/{id} and /ws/fleet.

A client first gets `{"type": "snapshot", "vehicle_id", "rev", "telemetry"}` (on the fleet feed
one per vehicle, for the `fleet_snapshot_limit` most recently updated ones), then
`{"type": "state", ...}` for every accepted step, in rev order.
To leave no gap between the two, the handler subscribes before it reads the snapshot and drops
stream messages whose rev is not above what the client already has.

After a hub outage (Redis restarted or unreachable) the stream resumes by itself; a client may
then see a gap in rev, and a mid-stream "snapshot" with the latest state of its vehicle(s).

Close codes: 1008 invalid vehicle id or missing/wrong token, 1013 the client stayed behind
(ws_lag_timeout_s), the store is unreachable on connect, max_websockets clients are connected,
or the client's address is locked out after failed authentications, 1001 the server is
shutting down. Keys: see deps.py.
Messages the client sends are read and ignored (reading is how a disconnect is noticed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from twin_service.deps import LiveDep, MetricsDep, SettingsDep, accept_websocket
from twin_service.live import LiveBackend
from twin_service.live.base import LiveUnavailable, encode_message
from twin_service.live.fanout import KickReason, Subscriber
from twin_service.metrics import Metrics
from twin_service.schemas import VEHICLE_ID_PATTERN
from twin_service.settings import Settings

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
# How long a close frame may wait behind a full send buffer before the connection is dropped.
CLOSE_TIMEOUT_S = 10.0

_VEHICLE_ID = re.compile(VEHICLE_ID_PATTERN)


@router.websocket("/ws/vehicles/{vehicle_id}")
async def vehicle_feed(
    websocket: WebSocket,
    vehicle_id: str,
    settings: SettingsDep,
    live: LiveDep,
    metrics: MetricsDep,
) -> None:
    """Snapshot of one vehicle, then its every accepted step."""
    if not await accept_websocket(websocket, settings):
        return
    if not _VEHICLE_ID.match(vehicle_id):
        await websocket.close(CLOSE_POLICY_VIOLATION, "invalid vehicle id")
        return
    await _serve(websocket, live, metrics, settings, vehicle_id)


@router.websocket("/ws/fleet")
async def fleet_feed(
    websocket: WebSocket, settings: SettingsDep, live: LiveDep, metrics: MetricsDep
) -> None:
    """Snapshots of the most recently updated vehicles (at most fleet_snapshot_limit, oldest
    first), then every accepted step of any vehicle."""
    if not await accept_websocket(websocket, settings):
        return
    await _serve(websocket, live, metrics, settings, None)


async def _serve(
    websocket: WebSocket,
    live: LiveBackend,
    metrics: Metrics,
    settings: Settings,
    vehicle_id: str | None,
) -> None:
    if len(live.fanout) >= settings.max_websockets:
        metrics.connections_refused.inc(kind="websocket")
        await _close(websocket, CLOSE_TRY_AGAIN_LATER, "too many WebSocket clients")
        return
    sub = live.subscribe(vehicle_id)
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            if vehicle_id is None:
                snapshots = await live.recent(settings.fleet_snapshot_limit)
                snapshots.reverse()  # oldest first, as the stream continues
            else:
                snapshots = await live.latest(vehicle_id)
        except LiveUnavailable:
            await _close(websocket, CLOSE_TRY_AGAIN_LATER, "store unavailable")
            return
        sender = asyncio.create_task(_send(websocket, sub, snapshots))
        receiver = asyncio.create_task(_drain_incoming(websocket))
        kicked = asyncio.create_task(_wait_kicked(sub))
        tasks = [sender, receiver, kicked]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await _cancel_all(tasks)
        if sub.kick_reason is KickReason.SLOW:
            metrics.ws_slow_closed.inc()
            log.info(
                "closing slow WebSocket client (%s, %d dropped)", vehicle_id or "fleet", sub.dropped
            )
            await _close(websocket, CLOSE_TRY_AGAIN_LATER, sub.kick_reason.value)
        elif sub.kick_reason is KickReason.SHUTDOWN:
            await _close(websocket, CLOSE_GOING_AWAY, sub.kick_reason.value)
    finally:
        for task in tasks:
            task.cancel()
        live.unsubscribe(sub)


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and reap. asyncio.wait, not gather: gather would re-raise a child's
    CancelledError in place of a cancellation aimed at this task (and confuse anyio)."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.debug("WebSocket task ended with %r", task.exception())


async def _send(websocket: WebSocket, sub: Subscriber, snapshots: list[dict[str, Any]]) -> None:
    last_rev: dict[str, int] = {}
    for telemetry in snapshots:
        vid, rev = str(telemetry["vehicle_id"]), int(telemetry["rev"])
        last_rev[vid] = rev
        await websocket.send_text(encode_message("snapshot", vid, rev, telemetry).text)
    while True:
        message = await sub.get()
        if message.rev <= last_rev.get(message.vehicle_id, 0) and not message.reset:
            continue  # already covered by the snapshot
        last_rev[message.vehicle_id] = message.rev
        await websocket.send_text(message.text)


async def _drain_incoming(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _wait_kicked(sub: Subscriber) -> None:
    await sub.kicked.wait()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close, waiting at most CLOSE_TIMEOUT_S for a full send buffer to make room."""
    if websocket.application_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_TIMEOUT_S)
