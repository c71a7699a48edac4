"""A fresh PostgreSQL database per test on the machine's server (127.0.0.1:5432, trust auth),
dropped afterwards, so tests never see each other's tables. Skipped locally when the server is
not running; in CI (CI is set) that is a failure (.ci/run starts it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
ADMIN_URL = f"postgresql://{USER}@{HOST}:{PORT}/postgres"


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL, timeout=3)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _run(statement: str) -> None:
    """On a thread of its own: callers may be inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin(statement)).result()


def available() -> bool:
    try:
        _run("SELECT 1")
    except (OSError, Exception):  # noqa: BLE001  (any failure: no usable server)
        return False
    return True


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Yields the URL of a new, empty database."""
    if not available():
        message = f"PostgreSQL is not running on {HOST}:{PORT}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; the PostgreSQL tests are required in CI")
        pytest.skip(message)
    name = f"twin_test_{uuid.uuid4().hex[:12]}"
    _run(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{USER}@{HOST}:{PORT}/{name}"
    finally:
        with contextlib.suppress(Exception):
            _run(f'DROP DATABASE "{name}" WITH (FORCE)')
