"""Typed HTTP + WebSocket client of the twin service, synchronous and asynchronous.

The two classes share request building and error mapping; only the transport differs
(``httpx.Client`` / ``httpx.AsyncClient``, ``websockets.sync`` / ``websockets.asyncio``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import httpx
import msgpack
import orjson
import websockets
from websockets.asyncio.client import connect as ws_connect_async
from websockets.sync.client import connect as ws_connect_sync
from websockets.typing import Subprotocol

from .columns import binary_columns, to_columns
from .errors import (
    TwinAuthError,
    TwinConnectionError,
    TwinError,
    TwinNotFound,
    TwinSubscriptionRefused,
    error_from_response,
)
from .types import (
    BatteryState,
    CalibrateResponse,
    ForecastResponse,
    ForecastUsage,
    LiveMessage,
    Preset,
    StepOptions,
    StepResponse,
    StepSample,
)

logger = logging.getLogger(__name__)

DEFAULT_TWIN_URL = "http://127.0.0.1:8008"
DEFAULT_TIMEOUT_S = 30.0
# WebSocket reconnect backoff (seconds): doubles from the first value up to the cap.
WS_BACKOFF_FIRST_S = 0.5
WS_BACKOFF_MAX_S = 10.0
# WebSocket auth without the key in the URL: offer the subprotocols "twin" and
# "twin-auth.<base64url(key)>"; the service answers "twin".
WS_PROTOCOL = "twin"
WS_AUTH_PREFIX = "twin-auth."
#: How ``step`` and ``calibrate`` send their samples (SPEC "Batch formats"): ``msgpack``
#: columns in msgpack, answers in msgpack (the default, the fastest); ``columns`` columns in
#: JSON; ``rows`` one JSON object per sample. Samples that columns cannot hold go as rows.
BATCH_FORMATS = ("msgpack", "columns", "rows")
JSON_TYPE = "application/json"
MSGPACK_TYPE = "application/msgpack"


#: Keys under which a ``GET /vehicles/presets`` answer may wrap its presets.
PRESET_WRAPPERS = ("presets", "vehicles", "items")


def find_preset(presets: Any, preset_id: str) -> Preset:
    """Pick one preset from a ``GET /vehicles/presets`` answer (list, mapping, or wrapped)."""
    if isinstance(presets, Mapping):
        if preset_id in presets and isinstance(presets[preset_id], Mapping):
            return {"id": preset_id, **presets[preset_id]}
        for key in PRESET_WRAPPERS:
            if key in presets:
                return find_preset(presets[key], preset_id)
    elif isinstance(presets, Sequence) and not isinstance(presets, str | bytes):
        for item in presets:
            if isinstance(item, Mapping) and preset_id in (item.get("id"), item.get("name")):
                return dict(item)
    raise KeyError(f"unknown vehicle preset {preset_id!r}")


def preset_ids(presets: Any) -> list[str]:
    """The preset ids of a ``GET /vehicles/presets`` answer, in the shapes find_preset takes:
    the keys of a mapping of presets, the ``id`` of each in a list, or those of a wrapper."""
    if isinstance(presets, Mapping):
        for key in PRESET_WRAPPERS:
            inner = presets.get(key)
            if isinstance(inner, list) or (
                isinstance(inner, Mapping) and all(isinstance(v, Mapping) for v in inner.values())
            ):
                return preset_ids(inner)
        return [str(key) for key, value in presets.items() if isinstance(value, Mapping)]
    if isinstance(presets, Sequence) and not isinstance(presets, str | bytes):
        return [str(p["id"]) for p in presets if isinstance(p, Mapping) and p.get("id")]
    return []


class _ClientBase:
    """Configuration, request bodies and URLs shared by the sync and async clients."""

    def __init__(
        self,
        base_url: str = DEFAULT_TWIN_URL,
        *,
        api_key: str | None = None,
        read_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        batch_format: str = "msgpack",
    ) -> None:
        if batch_format not in BATCH_FORMATS:
            raise ValueError(f"batch_format must be one of {', '.join(BATCH_FORMATS)}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.read_key = read_key
        self.timeout_s = timeout_s
        self.batch_format = batch_format

    def _headers(self, *, write: bool) -> dict[str, str]:
        # POST /step needs api_key (the read key when the service sets only that); reads need
        # read_key when the service sets one. A single key on the client is used for both.
        key = (self.api_key or self.read_key) if write else (self.read_key or self.api_key)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _ws_subprotocols(self) -> list[Subprotocol] | None:
        """The read key as a WebSocket subprotocol (never in the URL, where logs keep it)."""
        key = self.read_key or self.api_key
        if not key:
            return None
        encoded = base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode("ascii")
        return [Subprotocol(WS_PROTOCOL), Subprotocol(WS_AUTH_PREFIX + encoded)]

    def samples_wire(self, samples: Any) -> Any:
        """The samples as this client sends them: columns unless ``batch_format`` is rows
        (samples already given as columns go as they are)."""
        if self.batch_format == "rows" or isinstance(samples, Mapping):
            return samples
        columns = to_columns(samples)
        return samples if columns is None else columns

    def _encode(self, body: Any, headers: dict[str, str]) -> bytes:
        """The request body in this client's format, with its Content-Type and Accept."""
        if self.batch_format == "msgpack":
            headers["Content-Type"] = MSGPACK_TYPE
            headers["Accept"] = f"{MSGPACK_TYPE}, {JSON_TYPE};q=0.5"
            samples = body.get("samples")
            if isinstance(samples, Mapping):
                body = {**body, "samples": binary_columns(samples)}
            return cast(bytes, msgpack.packb(body, default=_plain))
        headers["Content-Type"] = JSON_TYPE
        return self._json(body)

    @staticmethod
    def step_body(
        samples: Sequence[StepSample] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        vehicle_id: str = "default",
        vehicle: str | Mapping[str, Any] | None = None,
        state: BatteryState | Mapping[str, Any] | None = None,
        options: StepOptions | Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON body of ``POST /step``; ``vehicle`` and ``options`` are left out if None."""
        body: dict[str, Any] = {"vehicle_id": vehicle_id, "state": state, "samples": samples}
        if vehicle is not None:
            body["vehicle"] = vehicle
        if options:
            body["options"] = options
        return body

    @staticmethod
    def calibrate_body(
        samples: Sequence[StepSample] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        vehicle: str | Mapping[str, Any] | None = None,
        state: BatteryState | Mapping[str, Any] | None = None,
        parameters: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The JSON body of ``POST /calibrate``; ``vehicle`` and ``parameters`` are left out if
        None (the service's default preset; every parameter the data supports)."""
        body: dict[str, Any] = {"state": state, "samples": samples}
        if vehicle is not None:
            body["vehicle"] = vehicle
        if parameters is not None:
            body["parameters"] = list(parameters)
        return body

    @staticmethod
    def forecast_body(
        *,
        state: Mapping[str, Any] | None,
        vehicle_id: str | None,
        usage: ForecastUsage | Mapping[str, Any] | None,
        years: float | None,
    ) -> dict[str, Any]:
        if (state is None) == (vehicle_id is None):
            raise ValueError("give exactly one of state or vehicle_id")
        body: dict[str, Any] = {"state": state} if state is not None else {"vehicle_id": vehicle_id}
        if usage is not None:
            body["usage"] = usage
        if years is not None:
            body["years"] = years
        return body

    def ws_url(self, vehicle_id: str | None = None) -> str:
        """``/ws/vehicles/{id}``, or ``/ws/fleet`` when no vehicle is given."""
        base = self.base_url
        if base.startswith("https://"):
            base = "wss://" + base[len("https://") :]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://") :]
        if vehicle_id is None:
            return f"{base}/ws/fleet"
        return f"{base}/ws/vehicles/{quote(vehicle_id, safe='')}"

    @staticmethod
    def _json(content: Any) -> bytes:
        # orjson: fast for 10^5-sample batches; rejects nothing, NaN becomes null which the
        # service refuses with a 4xx naming the field.
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.is_error:
            raise error_from_response(response)
        if not response.content:
            return None
        kind = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind == MSGPACK_TYPE:
            return msgpack.unpackb(response.content, raw=False)
        return orjson.loads(response.content)


# A time for the history queries: an aware datetime (a naive one is taken as UTC) or ISO 8601.
When = datetime | str


def _iso(when: When) -> str:
    if isinstance(when, datetime):
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    return when


def _vehicle_query(
    vehicle_id: str, rev: int | None, at: When | None
) -> tuple[str, dict[str, Any] | None]:
    params: dict[str, Any] = {}
    if rev is not None:
        params["rev"] = rev
    if at is not None:
        params["at"] = _iso(at)
    return f"/vehicles/{quote(vehicle_id, safe='')}", params or None


def _history_query(
    vehicle_id: str,
    limit: int | None,
    since: When | None,
    until: When | None,
    every: float | None,
) -> tuple[str, dict[str, Any] | None]:
    params: dict[str, Any] = {}
    for name, value in (("limit", limit), ("every", every)):
        if value is not None:
            params[name] = value
    for name, when in (("since", since), ("until", until)):
        if when is not None:
            params[name] = _iso(when)
    return f"/vehicles/{quote(vehicle_id, safe='')}/history", params or None


def _plain(value: Any) -> Any:
    """numpy scalars and arrays for msgpack (as orjson's OPT_SERIALIZE_NUMPY does)."""
    tolist = getattr(value, "tolist", None)
    if tolist is None:
        raise TypeError(f"cannot serialize {type(value).__name__}")
    return tolist()


#: WebSocket close codes after which reconnecting cannot help (policy violation: bad token
#: or vehicle id). 1013 (try again later, the client fell behind) is retried.
WS_FATAL_CLOSE_CODES = frozenset({1008})


def _ws_rejection(exc: Exception, url: str) -> TwinError | None:
    """Map a refused WebSocket to the client's exceptions (None: worth reconnecting)."""
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        frame = exc.rcvd
        if frame is not None and frame.code in WS_FATAL_CLOSE_CODES:
            return TwinSubscriptionRefused(frame.code, frame.reason, url)
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        status = exc.response.status_code
        body = exc.response.body.decode(errors="replace") if exc.response.body else ""
        if status in (401, 403):
            return TwinAuthError(status, body, "GET", url)
        if status == 404:
            return TwinNotFound(status, body, "GET", url)
    return None


def _next_delay(delay_s: float) -> float:
    return min(WS_BACKOFF_MAX_S, delay_s * 2.0)


def _jittered(delay_s: float) -> float:
    return delay_s * (0.5 + random.random())


class TwinClient(_ClientBase):
    """Synchronous client. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str = DEFAULT_TWIN_URL,
        *,
        api_key: str | None = None,
        read_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
        batch_format: str = "msgpack",
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            read_key=read_key,
            timeout_s=timeout_s,
            batch_format=batch_format,
        )
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)

    def __enter__(self) -> TwinClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> Any:
        headers = self._headers(write=write)
        if "body" in kwargs:
            kwargs["content"] = self._json(kwargs.pop("body"))
            headers["Content-Type"] = JSON_TYPE
        elif "batch" in kwargs:  # a body with samples, in the client's batch format
            kwargs["content"] = self._encode(kwargs.pop("batch"), headers)
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise TwinConnectionError(f"{method} {self.base_url}{path}: {exc!r}") from exc
        return self._decode(response)

    def step(
        self,
        samples: Sequence[StepSample] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        vehicle_id: str = "default",
        vehicle: str | Mapping[str, Any] | None = None,
        state: BatteryState | Mapping[str, Any] | None = None,
        options: StepOptions | Mapping[str, Any] | None = None,
    ) -> StepResponse:
        """``POST /step``: integrate ``samples`` from ``state`` (None: a new pack)."""
        body = self.step_body(
            self.samples_wire(samples),
            vehicle_id=vehicle_id,
            vehicle=vehicle,
            state=state,
            options=options,
        )
        return cast(StepResponse, self._request("POST", "/step", write=True, batch=body))

    def calibrate(
        self,
        samples: Sequence[StepSample] | Sequence[Mapping[str, Any]],
        *,
        vehicle: str | Mapping[str, Any] | None = None,
        state: BatteryState | Mapping[str, Any] | None = None,
        parameters: Sequence[str] | None = None,
    ) -> CalibrateResponse:
        """``POST /calibrate``: fit the pack's parameters to the measured voltage of
        ``samples``; the answer's ``vehicle`` and ``state`` go to :meth:`step` as they are."""
        body = self.calibrate_body(
            self.samples_wire(samples), vehicle=vehicle, state=state, parameters=parameters
        )
        # The write key when both are set: it also opens endpoints that take the read key.
        return cast(CalibrateResponse, self._request("POST", "/calibrate", write=True, body=body))

    def vehicles(self) -> Any:
        """``GET /vehicles``: latest telemetry of every known vehicle (the first page)."""
        return self._request("GET", "/vehicles")

    def recent(self, limit: int = 10) -> Any:
        """``GET /vehicles?order=recent``: the ``limit`` most recently updated, newest first."""
        return self._request("GET", "/vehicles", params={"order": "recent", "limit": limit})

    def vehicle(
        self, vehicle_id: str, rev: int | None = None, at: When | None = None
    ) -> StepResponse:
        """``GET /vehicles/{id}``: the latest step response, or the one after ``rev`` or at
        the time ``at``; :class:`TwinNotFound` if unknown."""
        path, params = _vehicle_query(vehicle_id, rev, at)
        return cast(StepResponse, self._request("GET", path, params=params))

    def history(
        self,
        vehicle_id: str,
        limit: int | None = None,
        since: When | None = None,
        until: When | None = None,
        every: float | None = None,
    ) -> list[Any]:
        """``GET /vehicles/{id}/history``: telemetry with since <= timestamp < until, oldest
        first (the newest ``limit``); with ``every`` (s), buckets of that length."""
        path, params = _history_query(vehicle_id, limit, since, until, every)
        return cast(list[Any], self._request("GET", path, params=params))

    def presets(self) -> Any:
        """``GET /vehicles/presets`` as the service returns it."""
        return self._request("GET", "/vehicles/presets")

    def preset(self, preset_id: str) -> Preset:
        """One preset by id (raises ``KeyError`` when the service does not know it)."""
        return find_preset(self.presets(), preset_id)

    def forecast(
        self,
        *,
        state: Mapping[str, Any] | None = None,
        vehicle_id: str | None = None,
        usage: ForecastUsage | Mapping[str, Any] | None = None,
        years: float | None = None,
    ) -> ForecastResponse:
        """``POST /forecast`` for a state or a known vehicle."""
        body = self.forecast_body(state=state, vehicle_id=vehicle_id, usage=usage, years=years)
        return cast(ForecastResponse, self._request("POST", "/forecast", body=body))

    def health(self) -> Any:
        """``GET /health``."""
        return self._request("GET", "/health")

    def ready(self) -> Any:
        """``GET /ready``."""
        return self._request("GET", "/ready")

    def subscribe(
        self, vehicle_id: str | None = None, *, reconnect: bool = True
    ) -> Iterator[LiveMessage]:
        """Yield live messages of one vehicle (or of the fleet when ``vehicle_id`` is None).

        With ``reconnect`` the subscription survives service restarts (backoff with jitter);
        every new connection starts with a ``snapshot``, so a consumer can compare ``rev``.
        Authentication failures (HTTP 401/403, close code 1008) and unknown paths are
        raised, never retried.
        """
        url = self.ws_url(vehicle_id)
        delay_s = WS_BACKOFF_FIRST_S
        while True:
            try:
                with ws_connect_sync(
                    url, subprotocols=self._ws_subprotocols(), open_timeout=self.timeout_s
                ) as ws:
                    delay_s = WS_BACKOFF_FIRST_S
                    for raw in ws:
                        yield cast(LiveMessage, orjson.loads(raw))
                if not reconnect:
                    return
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                rejection = _ws_rejection(exc, url)
                if rejection is not None:
                    raise rejection from exc
                if not reconnect:
                    raise TwinConnectionError(f"WebSocket {url}: {exc!r}") from exc
                logger.warning("WebSocket %s lost (%s); reconnecting in %.1f s", url, exc, delay_s)
            time.sleep(_jittered(delay_s))
            delay_s = _next_delay(delay_s)


class AsyncTwinClient(_ClientBase):
    """Asynchronous client with the same methods as :class:`TwinClient` (awaitables)."""

    def __init__(
        self,
        base_url: str = DEFAULT_TWIN_URL,
        *,
        api_key: str | None = None,
        read_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
        batch_format: str = "msgpack",
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            read_key=read_key,
            timeout_s=timeout_s,
            batch_format=batch_format,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, transport=transport
        )

    async def __aenter__(self) -> AsyncTwinClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> Any:
        headers = self._headers(write=write)
        if "body" in kwargs:
            kwargs["content"] = self._json(kwargs.pop("body"))
            headers["Content-Type"] = JSON_TYPE
        elif "batch" in kwargs:  # a body with samples, in the client's batch format
            kwargs["content"] = self._encode(kwargs.pop("batch"), headers)
        try:
            response = await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise TwinConnectionError(f"{method} {self.base_url}{path}: {exc!r}") from exc
        return self._decode(response)

    async def step(
        self,
        samples: Sequence[StepSample] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        vehicle_id: str = "default",
        vehicle: str | Mapping[str, Any] | None = None,
        state: BatteryState | Mapping[str, Any] | None = None,
        options: StepOptions | Mapping[str, Any] | None = None,
    ) -> StepResponse:
        """``POST /step``: integrate ``samples`` from ``state`` (None: a new pack)."""
        body = self.step_body(
            self.samples_wire(samples),
            vehicle_id=vehicle_id,
            vehicle=vehicle,
            state=state,
            options=options,
        )
        response = await self._request("POST", "/step", write=True, batch=body)
        return cast(StepResponse, response)

    async def calibrate(
        self,
        samples: Sequence[StepSample] | Sequence[Mapping[str, Any]],
        *,
        vehicle: str | Mapping[str, Any] | None = None,
        state: BatteryState | Mapping[str, Any] | None = None,
        parameters: Sequence[str] | None = None,
    ) -> CalibrateResponse:
        """``POST /calibrate``: fit the pack's parameters to the measured voltage of
        ``samples``."""
        body = self.calibrate_body(
            self.samples_wire(samples), vehicle=vehicle, state=state, parameters=parameters
        )
        response = await self._request("POST", "/calibrate", write=True, body=body)
        return cast(CalibrateResponse, response)

    async def vehicles(self) -> Any:
        """``GET /vehicles``."""
        return await self._request("GET", "/vehicles")

    async def recent(self, limit: int = 10) -> Any:
        """``GET /vehicles?order=recent``."""
        params = {"order": "recent", "limit": limit}
        return await self._request("GET", "/vehicles", params=params)

    async def vehicle(
        self, vehicle_id: str, rev: int | None = None, at: When | None = None
    ) -> StepResponse:
        """``GET /vehicles/{id}`` (see :meth:`TwinClient.vehicle`)."""
        path, params = _vehicle_query(vehicle_id, rev, at)
        return cast(StepResponse, await self._request("GET", path, params=params))

    async def history(
        self,
        vehicle_id: str,
        limit: int | None = None,
        since: When | None = None,
        until: When | None = None,
        every: float | None = None,
    ) -> list[Any]:
        """``GET /vehicles/{id}/history`` (see :meth:`TwinClient.history`)."""
        path, params = _history_query(vehicle_id, limit, since, until, every)
        return cast(list[Any], await self._request("GET", path, params=params))

    async def presets(self) -> Any:
        """``GET /vehicles/presets``."""
        return await self._request("GET", "/vehicles/presets")

    async def preset(self, preset_id: str) -> Preset:
        """One preset by id."""
        return find_preset(await self.presets(), preset_id)

    async def forecast(
        self,
        *,
        state: Mapping[str, Any] | None = None,
        vehicle_id: str | None = None,
        usage: ForecastUsage | Mapping[str, Any] | None = None,
        years: float | None = None,
    ) -> ForecastResponse:
        """``POST /forecast``."""
        body = self.forecast_body(state=state, vehicle_id=vehicle_id, usage=usage, years=years)
        return cast(ForecastResponse, await self._request("POST", "/forecast", body=body))

    async def health(self) -> Any:
        """``GET /health``."""
        return await self._request("GET", "/health")

    async def ready(self) -> Any:
        """``GET /ready``."""
        return await self._request("GET", "/ready")

    async def subscribe(
        self, vehicle_id: str | None = None, *, reconnect: bool = True
    ) -> AsyncIterator[LiveMessage]:
        """Async version of :meth:`TwinClient.subscribe`."""
        url = self.ws_url(vehicle_id)
        delay_s = WS_BACKOFF_FIRST_S
        while True:
            try:
                async with ws_connect_async(
                    url, subprotocols=self._ws_subprotocols(), open_timeout=self.timeout_s
                ) as ws:
                    delay_s = WS_BACKOFF_FIRST_S
                    async for raw in ws:
                        yield cast(LiveMessage, orjson.loads(raw))
                if not reconnect:
                    return
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                rejection = _ws_rejection(exc, url)
                if rejection is not None:
                    raise rejection from exc
                if not reconnect:
                    raise TwinConnectionError(f"WebSocket {url}: {exc!r}") from exc
                logger.warning("WebSocket %s lost (%s); reconnecting in %.1f s", url, exc, delay_s)
            await asyncio.sleep(_jittered(delay_s))
            delay_s = _next_delay(delay_s)
