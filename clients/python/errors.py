"""Exceptions of the twin client. HTTP errors carry the service's JSON body."""

from __future__ import annotations

from typing import Any

import httpx


class TwinError(Exception):
    """Base class of every error raised by the client."""


class TwinConnectionError(TwinError):
    """The service could not be reached (refused, reset, timed out)."""


class TwinSubscriptionRefused(TwinError):
    """The service closed a WebSocket for a reason retrying will not fix (1008: bad token or
    vehicle id)."""

    def __init__(self, code: int, reason: str, url: str) -> None:
        self.code = code
        self.reason = reason
        self.url = url
        super().__init__(f"WebSocket {url} closed with {code}: {reason}")


class TwinHTTPError(TwinError):
    """The service answered with an error status.

    ``body`` is the decoded JSON body (or the raw text when it is not JSON); ``detail`` is its
    ``detail`` member when present, which names the offending field and sample index for 4xx.
    """

    def __init__(self, status_code: int, body: Any, method: str, url: str) -> None:
        self.status_code = status_code
        self.body = body
        self.method = method
        self.url = url
        self.detail = body.get("detail") if isinstance(body, dict) else None
        shown = self.detail if self.detail is not None else body
        super().__init__(f"{method} {url} -> {status_code}: {shown}")

    @property
    def retryable(self) -> bool:
        """True for statuses worth retrying unchanged (overload and server-side failures)."""
        return self.status_code in (408, 425, 429) or self.status_code >= 500


class TwinClientError(TwinHTTPError):
    """4xx: the request was rejected; retrying it unchanged will not help."""


class TwinAuthError(TwinClientError):
    """401/403: missing or wrong API key."""


class TwinNotFound(TwinClientError):
    """404: unknown vehicle (or endpoint)."""


class TwinValidationError(TwinClientError):
    """400/413/422: malformed or out-of-range input; see ``detail`` for field and index."""


class TwinConflictError(TwinClientError):
    """409 ``rev_conflict``: the state sent is not the vehicle's latest stored twin (SPEC §6).

    ``current_rev`` is the rev the service holds (None when the body does not say).
    """

    def __init__(self, status_code: int, body: Any, method: str, url: str) -> None:
        super().__init__(status_code, body, method, url)
        self.current_rev = _conflict_rev(self.detail)


def _is_rev_conflict(detail: Any) -> bool:
    items = detail if isinstance(detail, list) else [detail]
    return any(isinstance(d, dict) and d.get("type") == "rev_conflict" for d in items)


def _conflict_rev(detail: Any) -> int | None:
    items = detail if isinstance(detail, list) else [detail]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("current_rev"), int):
            return int(item["current_rev"])
    return None


class TwinServerError(TwinHTTPError):
    """5xx: the service failed; the request may be retried."""


def error_from_response(response: httpx.Response) -> TwinHTTPError:
    """Build the most specific exception for an error response."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    status = response.status_code
    args = (status, body, response.request.method, str(response.request.url))
    if status in (401, 403):
        return TwinAuthError(*args)
    if status == 404:
        return TwinNotFound(*args)
    if status in (400, 413, 422):
        return TwinValidationError(*args)
    if status == 409 and isinstance(body, dict) and _is_rev_conflict(body.get("detail")):
        return TwinConflictError(*args)
    if 400 <= status < 500:
        return TwinClientError(*args)
    return TwinServerError(*args)
