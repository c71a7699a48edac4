"""Start real processes for tests: the twin service (uvicorn) and a private redis-server.

    from support.processes import start_redis, start_service

    with start_redis() as redis, start_service(hub_url=redis.url) as base_url:
        httpx.get(f"{base_url}/health")

    with start_redis() as redis, start_services(2, hub_url=redis.url) as (url_a, url_b):
        ...

`start_service` runs `python -m twin_service --host 127.0.0.1 --port P --hub-url URL` with the
repository's config.yaml, inherited TWIN_* variables removed and `env` added (for example
{"TWIN_READ_KEY": "k"}); it returns once GET /health answers and stops the process (SIGTERM,
then SIGKILL) on exit. `start_redis` runs a throwaway redis-server (no persistence, own port
and directory) that a test may stop and start again on the same port. Neither touches the
shared Redis on 6379. Process output goes to a log file whose tail is put into the error when
a process does not come up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
# A cold numba cache compiles for ~25 s on an idle machine; under a loaded CI run it can take
# longer. The wait polls /health, so a healthy service is not slowed down by it.
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


class MissingTool(RuntimeError):
    """A program the test needs (redis-server) is not installed."""


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)


class ServiceProcess:
    """One `python -m twin_service` process; `url` is its base URL."""

    def __init__(
        self,
        port: int | None = None,
        hub_url: str = "memory://",
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        send_buffer_bytes: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.hub_url = hub_url
        self.send_buffer_bytes = send_buffer_bytes
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="twin-service-"))
        self.log_path = self.log_dir / f"service-{self.port}.log"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        self.env = {**base_env, "TWIN_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        """Launch and wait until GET /health answers; returns the base URL."""
        self.launch()
        return self.wait_healthy(timeout_s)

    def launch(self) -> None:
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--hub-url", self.hub_url]
        if self.send_buffer_bytes is None:
            command, cwd = [sys.executable, "-m", "twin_service", *args], REPO_ROOT
        else:  # same app, small socket send buffer (see support/serve.py)
            command = [
                sys.executable,
                "-m",
                "support.serve",
                *args,
                "--send-buffer-bytes",
                str(self.send_buffer_bytes),
            ]
            cwd = REPO_ROOT / "tests"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_healthy(self, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"twin service exited with {self.process.returncode}:\n"
                    f"{_log_tail(self.log_path)}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self.url
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(
            f"twin service not healthy after {timeout_s} s:\n{_log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)
            self.process = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), like a crash; `start()` brings it back on the same port."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
            self.process = None

    def log(self) -> str:
        return _log_tail(self.log_path, 200)


@contextlib.contextmanager
def start_service(
    port: int | None = None,
    hub_url: str = "memory://",
    env: dict[str, str] | None = None,
    send_buffer_bytes: int | None = None,
) -> Iterator[str]:
    """Run the service for the duration of the block; yields its base URL.
    `send_buffer_bytes` runs it on a socket with that SO_SNDBUF (slow-client tests)."""
    service = ServiceProcess(port, hub_url, env, send_buffer_bytes=send_buffer_bytes)
    service.start()
    try:
        yield service.url
    finally:
        service.stop()


@contextlib.contextmanager
def start_services(
    count: int, hub_url: str = "memory://", env: dict[str, str] | None = None
) -> Iterator[list[str]]:
    """Run `count` replicas on one hub, started in parallel; yields their base URLs."""
    services = [ServiceProcess(None, hub_url, env) for _ in range(count)]
    try:
        for service in services:
            service.launch()
        yield [service.wait_healthy() for service in services]
    finally:
        for service in services:
            service.stop()


class RedisServer:
    """A private redis-server, without persistence unless `appendonly` (then its append-only
    file, fsynced on every write, survives `stop()` and `start()`, which keep the port)."""

    def __init__(self, port: int | None = None, appendonly: bool = False) -> None:
        self.appendonly = appendonly
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingTool("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="twin-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout_s: float = 10.0) -> None:
        log_path = self.dir / "redis.log"
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--logfile",
                str(log_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{_log_tail(log_path)}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server not answering on {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)
            self.process = None

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def start_redis(port: int | None = None) -> Iterator[RedisServer]:
    """Run a private redis-server for the block; raises MissingTool if none is installed."""
    server = RedisServer(port)
    with server:
        server.start()
        yield server
