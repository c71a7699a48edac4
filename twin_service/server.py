"""The HTTP server's guards: time limits for headers and bodies, size limits for the request
line and headers, and a counted cap on open connections (uvicorn's `limit_concurrency`, which
answers 503 beyond it).

uvicorn has no time limit for a request that is sent slowly, so a client could keep thousands
of half-sent requests open. `guarded_protocol` returns uvicorn's httptools protocol with:
- `header_timeout_s`: from the connection's first byte (or the end of the previous response)
  to the end of the headers; then 408 and the connection is closed;
- `body_timeout_s`: from the end of the headers to the end of the body; then 408 (or a plain
  close once a response has started; the application sees a disconnect);
- a request line (URL) above MAX_URL_BYTES gets 414, headers above MAX_HEADER_BYTES get 431,
  both at once rather than after the parser has buffered them (a WebSocket handshake too).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from twin_service.metrics import Metrics
from twin_service.settings import Settings

MAX_URL_BYTES = 8192
MAX_HEADER_BYTES = 65536


class _Refuse(Exception):
    """Raised inside a parser callback (after setting `_refused`) to stop parsing."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int | None = None
    metrics: Metrics | None = None

    _timer: asyncio.TimerHandle | None = None
    _header_bytes: int = 0
    _refused: int | None = None

    # -- timers --------------------------------------------------------------------------

    def _arm(self, delay_s: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay_s, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        started = cycle is not None and cycle.response_started and not cycle.response_complete
        if self.metrics is not None:
            self.metrics.connections_refused.inc(kind="timeout")
        if started:
            self.transport.close()
        else:
            self._respond_and_close(408, "request not received in time")

    def _respond_and_close(self, status: int, msg: str) -> None:
        if self.transport.is_closing():
            return
        body = msg.encode("ascii")
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()

    # -- protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return
        super().data_received(data)
        if self._refused is not None:  # a callback raised _Refuse (reported as a parse error)
            self._refuse(self._refused)

    def _refuse(self, status: int) -> None:
        self._disarm()
        if self.metrics is not None:
            self.metrics.connections_refused.inc(kind=str(status))
        text = "request line too long" if status == 414 else "request headers too large"
        self._respond_and_close(status, text)

    def send_400_response(self, msg: str) -> None:
        # httptools reports an exception raised in a callback as a parse error.
        if self._refused is not None:
            return
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        # Between requests uvicorn's keep-alive timeout closes an idle connection; the header
        # timer starts with a request's first byte.
        super().on_message_begin()
        self._header_bytes = 0
        self._arm(self.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refused = 414
            raise _Refuse

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refused = 431
            raise _Refuse
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        if (
            self.metrics is not None
            and self.max_connections is not None
            and not (self.parser.should_upgrade() and self._should_upgrade())
            and (
                len(self.connections) >= self.max_connections
                or len(self.tasks) >= self.max_connections
            )
        ):
            self.metrics.connections_refused.inc(kind="http")
        super().on_headers_complete()
        if self.parser is not None and not self.parser.should_upgrade():
            self._arm(self.body_timeout_s)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def guarded_protocol(settings: Settings, metrics: Metrics | None = None) -> type[Any]:
    """The protocol class to pass as `uvicorn.run(..., http=...)`."""
    return type(
        "TwinHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": settings.header_timeout_s,
            "body_timeout_s": settings.body_timeout_s,
            "max_connections": settings.max_connections,
            "metrics": metrics,
        },
    )
