"""Request bodies of every HTTP endpoint, checked before the application reads them: a size
limit per path and the media type, answered in the API's error shape.

- Size: POST /step has `max_body_bytes` (the step's own reader enforces the same setting),
  every other path `max_json_body_bytes`. A declared Content-Length over the limit gets 413 at
  once, nothing read; a streamed (chunked) body is counted as it arrives and gets 413 as soon
  as it passes the limit (the application then sees a disconnect). A 413 closes the
  connection, so the unread rest of the body is never waited for.
- Media type: a POST, PUT or PATCH with a body must be `application/json` (/step also lets
  `application/msgpack` through to its own reader); anything else, or none, gets 415. Browsers
  send text/plain and form bodies cross-origin without a CORS preflight; these never reach
  an endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twin_service.errors import error_item
from twin_service.settings import Settings

JSON = b"application/json"
MSGPACK = b"application/msgpack"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class BodyRule:
    max_bytes: int
    setting: str  # named in the 413
    media_types: frozenset[bytes]
    step: bool = False  # a refusal counts in twin_steps_rejected_total, as /step's own do


def media_type(value: bytes | None) -> bytes | None:
    """`application/json` of `Application/JSON; charset=utf-8`."""
    return None if value is None else value.split(b";", 1)[0].strip().lower()


async def send_error(send: Send, status: int, loc: list[str | int], msg: str, type_: str) -> None:
    body = orjson.dumps({"detail": [error_item(loc, msg, type_)]})
    headers = [
        (b"content-type", JSON),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """Pure ASGI middleware (no request objects, no body buffering)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.default = BodyRule(
            settings.max_json_body_bytes, "max_json_body_bytes", frozenset({JSON})
        )
        self.rules = {
            "/step": BodyRule(
                settings.max_body_bytes, "max_body_bytes", frozenset({JSON, MSGPACK}), step=True
            )
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.rules.get(scope["path"], self.default)
        length = content_type = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"transfer-encoding":
                chunked = True
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > rule.max_bytes:
            await self._too_large(scope, send, rule, f"declared {declared} bytes")
            return
        has_body = chunked or bool(declared)
        if has_body and scope["method"] in BODY_METHODS:
            kind = media_type(content_type)
            if kind not in rule.media_types:
                await self._unsupported(scope, send, rule, kind)
                return
        if not chunked:  # the server delivers at most the declared bytes
            await self.app(scope, receive, send)
            return
        await self._streamed(scope, receive, send, rule)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, rule: BodyRule) -> None:
        received = 0
        over = responded = started = False

        async def counted() -> Message:
            nonlocal received, over, responded
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > rule.max_bytes:
                    over = True
                    if not started:
                        responded = True
                        await self._too_large(scope, send, rule, f"{received} bytes so far")
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if responded:  # the application's answer to a body it never got whole
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not responded:
                raise

    @staticmethod
    def _count(scope: Scope, rule: BodyRule, status: int) -> None:
        metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
        if rule.step and metrics is not None:
            metrics.steps_rejected.inc(status=str(status))

    async def _too_large(self, scope: Scope, send: Send, rule: BodyRule, seen: str) -> None:
        self._count(scope, rule, 413)
        msg = f"request body exceeds {rule.setting} ({rule.max_bytes}): {seen}"
        await send_error(send, 413, ["body"], msg, "body_too_large")

    async def _unsupported(
        self, scope: Scope, send: Send, rule: BodyRule, kind: bytes | None
    ) -> None:
        self._count(scope, rule, 415)
        given = "none" if kind is None else repr(kind.decode("latin-1"))
        allowed = " or ".join(sorted(t.decode() for t in rule.media_types))
        msg = f"unsupported media type {given}: send Content-Type {allowed}"
        await send_error(send, 415, ["header", "content-type"], msg, "unsupported_media_type")
