"""Shared fixtures. Process helpers live in tests/support/processes.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.processes import MissingTool, RedisServer, start_redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the test module. Skipped locally when redis-server is not
    installed; in CI (CI is set) that is a failure."""
    try:
        with start_redis() as server:
            yield server
    except MissingTool as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; Redis tests are required in CI")
        pytest.skip(str(exc))
