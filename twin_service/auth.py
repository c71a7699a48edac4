"""Where a request's key comes from, and the throttle of failed authentications.

Credentials, by where they travel:
- a header: `Authorization: Bearer <key>`, or, on a WebSocket, the subprotocol
  `twin-auth.<base64url(key)>` offered next to `twin` (browsers cannot set headers on a
  WebSocket; the server answers with the plain `twin` subprotocol, never echoing the key);
- the URL: `?token=<key>`, tolerated for the read key only (URLs end up in access logs and
  browser history; the service's own logs redact them, see logging_setup.py).

The throttle counts, per client address, the requests that presented a wrong key. After
`auth_fail_limit` of them within `auth_fail_window_s`, every authenticated request from that
address gets 429 (WebSockets: close 1013) for `auth_lockout_s`. Requests without any key are
refused (401) but not counted, so a dashboard opened without its key does not lock itself out.
The table keeps at most `auth_track_max` addresses (least recently failed dropped first).
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import HTTPConnection

WS_PROTOCOL = "twin"
WS_AUTH_PREFIX = "twin-auth."


def encode_ws_token(token: str) -> str:
    """The subprotocol that carries `token`: base64url (no padding) keeps it a valid token."""
    raw = base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode("ascii")
    return WS_AUTH_PREFIX + raw


def decode_ws_token(protocol: str) -> str:
    """The key inside `twin-auth.<base64url>`; "" (matches no key) when it does not decode."""
    raw = protocol[len(WS_AUTH_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, ValueError):
        return ""


@dataclass(frozen=True, slots=True)
class Credentials:
    header: str | None  # Authorization: Bearer, or the WebSocket auth subprotocol
    query: str | None  # ?token=

    @property
    def presented(self) -> bool:
        return self.header is not None or self.query is not None


def credentials(conn: HTTPConnection) -> Credentials:
    header = None
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        header = token.strip()
    elif conn.scope["type"] == "websocket":
        for protocol in conn.scope.get("subprotocols", ()):
            if protocol.startswith(WS_AUTH_PREFIX):
                header = decode_ws_token(protocol)
                break
    query = conn.query_params.get("token") or None
    return Credentials(header, query)


def client_address(conn: HTTPConnection) -> str:
    """The peer's address (behind a proxy, uvicorn takes it from X-Forwarded-For when the proxy
    is trusted: --forwarded-allow-ips)."""
    return conn.client.host if conn.client is not None else "unknown"


class AuthThrottle:
    """Failed authentications per client address within a window, and lockouts."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        lockout_s: float,
        max_tracked: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.max_tracked = max_tracked
        self.clock = clock
        # address -> [window start, failures in the window, locked until]
        self._table: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again, None when it is not locked out."""
        entry = self._table.get(address)
        if entry is None:
            return None
        left = entry[2] - self.clock()
        return max(1, math.ceil(left)) if left > 0 else None

    def failed(self, address: str) -> bool:
        """Count a wrong key; True when this failure starts a lockout."""
        if self.limit <= 0:
            return False
        now = self.clock()
        entry = self._table.pop(address, None)
        if entry is None or now - entry[0] > self.window_s:
            entry = [now, 0.0, 0.0]
        entry[1] += 1
        locking = entry[1] >= self.limit and entry[2] <= now
        if locking:
            entry[2] = now + self.lockout_s
            entry[0], entry[1] = now + self.lockout_s, 0.0  # a fresh window after the lockout
        self._table[address] = entry
        while len(self._table) > self.max_tracked:
            self._table.popitem(last=False)
        return locking
