"""Typed Python client of the EV battery twin service (SPEC §3).

>>> from clients.python import TwinClient
>>> with TwinClient("http://127.0.0.1:8008") as twin:
...     reply = twin.step([{"dt_s": 1.0, "power_kw": 20.0}], vehicle_id="ev-1")
...     for message in twin.subscribe("ev-1"):
...         print(message["rev"], message["telemetry"]["soc"])
"""

from .client import DEFAULT_TWIN_URL, AsyncTwinClient, TwinClient, find_preset, preset_ids
from .errors import (
    TwinAuthError,
    TwinClientError,
    TwinConflictError,
    TwinConnectionError,
    TwinError,
    TwinHTTPError,
    TwinNotFound,
    TwinServerError,
    TwinSubscriptionRefused,
    TwinValidationError,
)
from .types import (
    BatteryState,
    ForecastResponse,
    ForecastUsage,
    LiveMessage,
    StepOptions,
    StepResponse,
    StepSample,
    Telemetry,
)

__all__ = [
    "DEFAULT_TWIN_URL",
    "AsyncTwinClient",
    "BatteryState",
    "ForecastResponse",
    "ForecastUsage",
    "LiveMessage",
    "StepOptions",
    "StepResponse",
    "StepSample",
    "Telemetry",
    "TwinAuthError",
    "TwinClient",
    "TwinClientError",
    "TwinConflictError",
    "TwinConnectionError",
    "TwinError",
    "TwinHTTPError",
    "TwinNotFound",
    "TwinServerError",
    "TwinSubscriptionRefused",
    "TwinValidationError",
    "find_preset",
    "preset_ids",
]
