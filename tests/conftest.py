"""Shared fixtures. Process helpers live in tests/support/processes.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.processes import MissingTool, RedisServer, ServiceProcess, start_redis


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the model core once (numba writes its on-disk cache) before any test starts a
    service process: a cold compile takes longer than a service's start-up timeout allows."""
    from twin_service.models.pack import warm_up

    warm_up()


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


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A service process with default settings for the test module, its log kept in the
    module's temporary directory. Modules that need other settings (keys) or another kind of
    twin define their own `twin`."""
    process = ServiceProcess(log_dir=tmp_path_factory.mktemp("twin"))
    process.start()
    yield process
    process.stop()
