"""Annotated dependency aliases used by the routers, and the bearer-key checks.

Keys come from settings (config.yaml or TWIN_API_KEY / TWIN_READ_KEY). `api_key` guards
POST /step; `read_key`, when set, guards reads (GET /vehicles*, POST /forecast) and the
WebSockets. The write key also grants reads. Tokens are taken from `Authorization: Bearer <key>`
or, for clients that cannot set headers (browser WebSockets), from `?token=<key>`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from twin_service.errors import ApiError, error_item
from twin_service.live import LiveBackend
from twin_service.metrics import Metrics
from twin_service.settings import Settings


async def get_settings(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


async def get_live(conn: HTTPConnection) -> LiveBackend:
    return conn.app.state.live


async def get_metrics(conn: HTTPConnection) -> Metrics:
    return conn.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
LiveDep = Annotated[LiveBackend, Depends(get_live)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def bearer_token(conn: HTTPConnection, allow_query: bool = True) -> str | None:
    """The token of `Authorization: Bearer <token>`, else of `?token=` when allowed."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    if allow_query:
        return conn.query_params.get("token") or None
    return None


def _matches(token: str | None, *keys: str | None) -> bool:
    if token is None:
        return False
    given = token.encode()
    # compare_digest on every key, so the time taken does not tell which one matched.
    results = [hmac.compare_digest(given, key.encode()) for key in keys if key is not None]
    return any(results)


def write_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    """POST /step: header only (a write key in a URL would end up in access logs)."""
    if settings.api_key is None:
        return True
    return _matches(bearer_token(conn, allow_query=False), settings.api_key)


def read_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    if settings.read_key is None:
        return True
    return _matches(bearer_token(conn), settings.read_key, settings.api_key)


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        [error_item(["header", "authorization"], "missing or wrong bearer token", "unauthorized")],
    )


def require_write_key(conn: HTTPConnection, settings: SettingsDep) -> None:
    if not write_allowed(conn, settings):
        raise _unauthorized()


def require_read_key(conn: HTTPConnection, settings: SettingsDep) -> None:
    """Router dependency for reads: `APIRouter(dependencies=[ReadAuth])`."""
    if not read_allowed(conn, settings):
        raise _unauthorized()


# Dependencies are async so FastAPI runs them inline instead of hopping to a worker thread.
async def _read_auth(conn: HTTPConnection, settings: SettingsDep) -> None:
    require_read_key(conn, settings)


ReadAuth = Depends(_read_auth)
