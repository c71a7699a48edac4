"""A fresh PostgreSQL database per test on the machine's server (127.0.0.1:5432, trust auth),
dropped afterwards, so tests never see each other's tables. Skipped locally when the server is
not running; in CI (CI is set) that is a failure (.ci/run starts it)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.processes import free_port

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


class PostgresServer:
    """A private PostgreSQL server in a temporary directory (initdb as the `postgres` user, trust
    auth), for tests that stop and start the database; `stop()` and `start()` keep the data
    and the port."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found or shutil.which("runuser") is None:
            raise RuntimeError("PostgreSQL's server programs are not installed")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="twin-pg-"))
        self.data = self.dir / "data"
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                          "-U", "postgres", "--no-sync")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                       capture_output=True, timeout=60)  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                          "-l", str(self.dir / "log"), "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                              "stop")  # fmt: skip

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; required in CI")
        pytest.skip(str(exc))
    try:
        server.start()
        yield server
    finally:
        server.remove()
