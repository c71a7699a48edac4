"""Annotated dependency aliases used by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from twin_service.live import LiveBackend
from twin_service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_live(request: Request) -> LiveBackend:
    return request.app.state.live


SettingsDep = Annotated[Settings, Depends(get_settings)]
LiveDep = Annotated[LiveBackend, Depends(get_live)]
