"""Service settings: config.yaml, then TWIN_* environment variables, validated once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"
ENV_PREFIX = "TWIN_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8008, ge=1, le=65535)
    default_vehicle: str = "sv1ev3"
    hub_url: str = "memory://"
    # Where snapshots and history are kept: memory://, redis://..., postgresql://... or
    # sqlite:///path. None: the hub's URL (memory with a memory hub, the hub's Redis).
    store_url: str | None = None
    max_samples_per_request: int = Field(200_000, ge=1)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    # Samples of each batch published with the step for live charts (0: telemetry only).
    live_trace_points: int = Field(200, ge=0, le=10_000)
    # Bodies of every endpoint but /step (which has max_body_bytes): 10,000 fleet items with
    # vehicle id, preset and full usage take ~1.8 MB.
    max_json_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # Forecasts: vehicles per request; work in vehicle-steps (vehicles x weekly steps x models;
    # 10,000 vehicles over 10 years); points returned (monthly, all vehicles and models).
    max_forecast_items: int = Field(10_000, ge=1)
    max_forecast_work: int = Field(10_000 * 522, ge=1)
    max_forecast_points: int = Field(100_000, ge=1)
    history_recent: int = Field(2000, ge=10)
    history_tail: int = Field(2000, ge=0)
    # Memory and Redis stores: the states of the newest N revs of each vehicle are kept for
    # GET /vehicles/{id}?rev= (the SQL stores keep every state within the retention).
    history_states: int = Field(100, ge=1)
    # SQL stores: every step at full resolution (with its state) for history_retention_days,
    # the 1-minute buckets for history_rollup_days, the hourly buckets for ever.
    history_retention_days: float = Field(30.0, gt=0)
    history_rollup_days: float = Field(400.0, gt=0)
    # SQL stores: at most this many steps share one transaction (group commit).
    store_batch_max: int = Field(256, ge=1)
    api_key: str | None = None
    read_key: str | None = None
    # Failed-auth throttle per client address: after auth_fail_limit wrong keys within
    # auth_fail_window_s, 429 for auth_lockout_s (0 turns it off); at most auth_track_max
    # addresses are remembered.
    auth_fail_limit: int = Field(10, ge=0)
    auth_fail_window_s: float = Field(60.0, gt=0)
    auth_lockout_s: float = Field(60.0, gt=0)
    auth_track_max: int = Field(10_000, ge=1)
    log_level: str = "info"
    # WebSocket fan-out: per-client queue length, and how long a client may stay behind.
    ws_queue_size: int = Field(256, ge=1)
    ws_lag_timeout_s: float = Field(5.0, gt=0)
    # Namespace of all Redis keys and the channel, so deployments can share one Redis.
    redis_prefix: str = Field("twin:", pattern=r"^[A-Za-z0-9._:-]{0,64}$")
    # Vehicles the memory store keeps; beyond it the least recently updated is dropped.
    max_vehicles: int = Field(1000, ge=1)
    # Snapshots a /ws/fleet client gets on connect (the most recently updated vehicles).
    fleet_snapshot_limit: int = Field(1000, ge=0)
    # Redis: a command that takes longer fails and the step falls back (not stored).
    redis_command_timeout_s: float = Field(0.1, gt=0)
    # Connection caps and timeouts of the HTTP server.
    # max_connections counts WebSockets too: keep room for HTTP above max_websockets.
    max_connections: int = Field(2000, ge=1)
    max_websockets: int = Field(1000, ge=0)
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)

    @field_validator("hub_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not (value.startswith("memory://") or value.startswith(("redis://", "rediss://"))):
            raise ValueError("hub_url must be memory:// or redis://host:port/db")
        return value

    @field_validator("store_url")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        schemes = ("memory://", "redis://", "rediss://", "postgresql://", "postgres://",
                   "sqlite:///")  # fmt: skip
        if value in (None, ""):
            return None
        if not value.startswith(schemes):
            raise ValueError(
                "store_url must be memory://, redis://host:port/db, "
                "postgresql://user@host:port/db or sqlite:///path"
            )
        return value

    @property
    def store(self) -> str:
        """The store's URL (store_url, else the hub's)."""
        return self.store_url or self.hub_url

    @model_validator(mode="after")
    def _room_for_http(self) -> Settings:
        if self.max_websockets >= self.max_connections:
            raise ValueError(
                "max_websockets must be below max_connections (which counts WebSockets too)"
            )
        return self

    @field_validator("api_key", "read_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value in ("", None) else value


def _env_overrides(fields: set[str]) -> dict[str, str]:
    overrides = {}
    for key, value in os.environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in fields:
                overrides[name] = value
    return overrides


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (default: the repository's config.yaml), apply TWIN_* environment
    variables, then explicit overrides (command-line flags)."""
    path = Path(config_file or os.environ.get("TWIN_CONFIG") or DEFAULT_CONFIG)
    data: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        data.update(loaded)
    elif config_file is not None:
        raise FileNotFoundError(f"config file not found: {path}")
    fields = set(Settings.model_fields)
    data.update(_env_overrides(fields))
    data.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate({k: v for k, v in data.items() if k in fields})
