"""Small helpers for tests that talk to a running service: WebSocket URLs, JSON receive with a
timeout, reading one value from /metrics, posting a step."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

STEP_SAMPLE = {"dt_s": 1.0, "power_kw": 20.0}


def ws_url(base_url: str, path: str) -> str:
    """http://host:port + /ws/... -> ws://host:port/ws/..."""
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + path


async def recv_json(ws: ClientConnection, timeout_s: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout_s))


def metric_value(base_url: str, name: str, labels: str = "") -> float:
    """One sample of GET /metrics, e.g. metric_value(url, "twin_websocket_clients",
    'feed="vehicle"'); 0 when absent."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    series = re.escape(name + (f"{{{labels}}}" if labels else ""))
    match = re.search(rf"^{series} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def step_body(vehicle_id: str, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """One sample; a new pack (`state` None) replaces whatever twin the store holds."""
    body = {"vehicle_id": vehicle_id, "state": state, "samples": [STEP_SAMPLE]}
    if state is None:
        body["options"] = {"replace": True}
    return body


def post_step(
    url: str,
    vehicle_id: str,
    samples: list[dict[str, Any]],
    state: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST /step to a running service; raises on an error status."""
    body: dict[str, Any] = {"vehicle_id": vehicle_id, "state": state, "samples": samples}
    if options:
        body["options"] = options
    response = httpx.post(f"{url}/step", json=body, timeout=30)
    response.raise_for_status()
    return response.json()
