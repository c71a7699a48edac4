"""Annotated dependency aliases used by the routers, and the bearer-key checks.

Keys come from settings (config.yaml or TWIN_API_KEY / TWIN_READ_KEY).
- `api_key` guards POST /step (`Authorization: Bearer <key>` only, never from a URL). With only
  `read_key` set, POST /step needs the read key: writes are never more open than reads.
- `read_key`, when set, guards reads (GET /vehicles*, POST /forecast) and the WebSockets. It is
  accepted in the Authorization header, as the WebSocket auth subprotocol (see auth.py) or as
  `?token=`; the write key also grants reads, but only from the header or subprotocol, so a
  write key pasted into a URL authorises nothing.
- Wrong keys are counted per client address; past the limit the address gets 429 (auth.py).
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, WebSocket
from starlette.requests import HTTPConnection

from twin_service.auth import WS_PROTOCOL, AuthThrottle, client_address, credentials
from twin_service.errors import ApiError, error_item
from twin_service.live import LiveBackend
from twin_service.metrics import Metrics
from twin_service.settings import Settings

log = logging.getLogger(__name__)


async def get_settings(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


async def get_live(conn: HTTPConnection) -> LiveBackend:
    return conn.app.state.live


async def get_metrics(conn: HTTPConnection) -> Metrics:
    return conn.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
LiveDep = Annotated[LiveBackend, Depends(get_live)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def _matches(token: str | None, *keys: str | None) -> bool:
    if token is None:
        return False
    given = token.encode()
    # compare_digest on every key, so the time taken does not tell which one matched.
    results = [hmac.compare_digest(given, key.encode()) for key in keys if key is not None]
    return any(results)


def write_key(settings: Settings) -> str | None:
    """The key POST /step needs: api_key, else read_key, else none (open)."""
    return settings.api_key or settings.read_key


def write_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    """POST /step: header only (a key in a URL would end up in access logs)."""
    key = write_key(settings)
    return key is None or _matches(credentials(conn).header, key)


def read_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    if settings.read_key is None:
        return True
    creds = credentials(conn)
    header_ok = _matches(creds.header, settings.read_key, settings.api_key)
    return _matches(creds.query, settings.read_key) or header_ok


def _throttle(conn: HTTPConnection, settings: Settings) -> AuthThrottle:
    """The app's failed-auth table, made on first use."""
    state = conn.app.state
    throttle: AuthThrottle | None = getattr(state, "auth_throttle", None)
    if throttle is None:
        throttle = AuthThrottle(
            settings.auth_fail_limit,
            settings.auth_fail_window_s,
            settings.auth_lockout_s,
            settings.auth_track_max,
        )
        state.auth_throttle = throttle
    return throttle


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        [error_item(["header", "authorization"], "missing or wrong bearer token", "unauthorized")],
    )


def _guard(conn: HTTPConnection, settings: Settings, allowed: bool) -> None:
    """Raise 429 while the client's address is locked out, else 401 unless `allowed`; a wrong
    key (not a missing one) counts towards the lockout."""
    throttle = _throttle(conn, settings)
    address = client_address(conn)
    metrics: Metrics = conn.app.state.metrics
    wait_s = throttle.retry_after(address)
    if wait_s is not None:
        metrics.auth_throttled.inc()
        raise ApiError(
            429,
            [
                error_item(
                    ["header", "authorization"],
                    f"too many failed authentications from this address; retry in {wait_s} s",
                    "too_many_failures",
                )
            ],
            headers={"Retry-After": str(wait_s)},
        )
    if allowed:
        return
    if credentials(conn).presented:
        metrics.auth_failures.inc()
        if throttle.failed(address):
            log.warning(
                "locking out %s for %.0f s after failed authentications",
                address,
                settings.auth_lockout_s,
            )
    raise _unauthorized()


def require_write_key(conn: HTTPConnection, settings: SettingsDep) -> None:
    if write_key(settings) is not None:
        _guard(conn, settings, write_allowed(conn, settings))


def require_read_key(conn: HTTPConnection, settings: SettingsDep) -> None:
    """Router dependency for reads: `APIRouter(dependencies=[ReadAuth])`."""
    if settings.read_key is not None:
        _guard(conn, settings, read_allowed(conn, settings))


# Dependencies are async so FastAPI runs them inline instead of hopping to a worker thread.
async def _read_auth(conn: HTTPConnection, settings: SettingsDep) -> None:
    require_read_key(conn, settings)


ReadAuth = Depends(_read_auth)

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013


async def accept_websocket(websocket: WebSocket, settings: Settings) -> bool:
    """Accept the handshake (answering the `twin` subprotocol when offered) and check the read
    key; on failure close with 1008 (1013 while the address is locked out) and return False."""
    offered = websocket.scope.get("subprotocols", ())
    await websocket.accept(WS_PROTOCOL if WS_PROTOCOL in offered else None)
    try:
        require_read_key(websocket, settings)
    except ApiError as exc:
        if exc.status_code == 429:
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "too many failed authentications")
        else:
            await websocket.close(CLOSE_POLICY_VIOLATION, "unauthorized")
        return False
    return True
