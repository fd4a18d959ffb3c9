"""deploy/k8s: every manifest against the Kubernetes schemas, and the invariants that keep it safe.

Schemas: the ``kubernetes-validate`` package (its schemas ship inside the wheel: offline). No
cluster runs here. ``kubectl kustomize`` (no cluster needed) builds both kustomizations when
kubectl is installed; otherwise those tests are skipped with the reason.

The invariant checker must fail on a manifest that publishes the dashboard (NodePort,
LoadBalancer, Ingress), inlines a password, or drops a worker's GPU: the last tests mutate a
loaded copy and expect it to.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import copy
from pathlib import Path
import re
import shutil
import subprocess
from typing import Any

from conftest import ROOT
import pytest
import yaml

K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
KUBERNETES_VERSION = "1.33"  # backoffLimitPerIndex and podFailurePolicy FailIndex: GA in 1.33
GPU = "nvidia.com/gpu"
SECRET_NAME = "hpsearch-db"
# scheme://user:password@host: a password inside a URL
CREDENTIALS = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:[^@\s]+@")
SECRETISH = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN", re.IGNORECASE)
EXPOSING_KINDS = ("Ingress", "Gateway", "HTTPRoute", "Route")

Docs = list[dict[str, Any]]


def manifest_files() -> list[Path]:
    return sorted(p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")


def load_docs(paths: list[Path] | None = None) -> Docs:
    docs: Docs = []
    for path in paths or manifest_files():
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def kustomize(folder: Path) -> Docs:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl is not installed (apt-get install kubectl, or any kubectl >= 1.27): cannot build kustomize"
        )
    out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs: Docs, kind: str) -> Docs:
    return [d for d in docs if d.get("kind") == kind]


def named(docs: Docs, kind: str, name: str) -> dict[str, Any] | None:
    return next((d for d in by_kind(docs, kind) if d["metadata"]["name"] == name), None)


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f"{path}[{i}]")
    elif node is not None:
        yield path, str(node)


# -- the invariants ------------------------------------------------------------------------------------
def problems(docs: Docs) -> list[str]:
    """Every broken invariant, in words; [] when the manifests are safe."""
    out: list[str] = []
    name = lambda d: f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"  # noqa: E731

    # 1. Nothing is published outside the cluster; the dashboard only through port-forward.
    for d in docs:
        if d.get("kind") in EXPOSING_KINDS:
            out.append(f"{name(d)} publishes a service outside the cluster")
    for svc in by_kind(docs, "Service"):
        spec = svc.get("spec") or {}
        if spec.get("type", "ClusterIP") != "ClusterIP":
            out.append(f"{name(svc)} has type {spec.get('type')}; only ClusterIP (use kubectl port-forward)")
        if spec.get("externalIPs") or any("nodePort" in p for p in spec.get("ports") or []):
            out.append(f"{name(svc)} has externalIPs or a nodePort")
    for d in docs:
        spec = pod_spec(d)
        if spec is None:
            continue
        if spec.get("hostNetwork"):
            out.append(f"{name(d)} uses hostNetwork")
        for c in containers(spec):
            if any("hostPort" in p for p in c.get("ports") or []):
                out.append(f"{name(d)} container {c['name']} has a hostPort")

    # 2. No password in any manifest: no Secret with data, no literal secret-looking env, no URL password.
    for d in by_kind(docs, "Secret"):
        if d.get("data") or d.get("stringData"):
            out.append(f"{name(d)} holds secret data in a manifest; create it with kubectl create secret")
    for d in docs:
        for path, text in strings(d):
            if CREDENTIALS.search(text):
                out.append(f"{name(d)} {path} has a password inside a URL")
        spec = pod_spec(d)
        for c in containers(spec) if spec else []:
            for e in c.get("env") or []:
                if SECRETISH.search(e["name"]) and "value" in e:
                    if not (e["name"].endswith("_FILE") and str(e["value"]).startswith("/")):
                        out.append(f"{name(d)} container {c['name']} sets {e['name']} inline")
    for cm in by_kind(docs, "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            if SECRETISH.search(key) and not (key.endswith("_FILE") and str(value).startswith("/")):
                out.append(f"{name(cm)} holds {key}")

    # 3. The workers: an Indexed Job, one GPU each, parallelism = completions, the index from Kubernetes.
    workers = [
        d
        for d in by_kind(docs, "Job")
        if "worker" in (pod_spec(d) or {}).get("containers", [{}])[0].get("args", [])[:1]
    ]
    if len(workers) != 1:
        out.append(f"expected one Job running `hpsearch worker`, found {len(workers)}")
    for job in workers:
        spec = job["spec"]
        if spec.get("completionMode") != "Indexed":
            out.append(f"{name(job)} is not completionMode: Indexed")
        if spec.get("parallelism") != spec.get("completions"):
            out.append(f"{name(job)} parallelism {spec.get('parallelism')} != completions {spec.get('completions')}")
        if not isinstance(spec.get("backoffLimitPerIndex"), int):
            out.append(f"{name(job)} has no backoffLimitPerIndex")
        pspec = spec["template"]["spec"]
        if pspec.get("restartPolicy") != "Never":
            out.append(f"{name(job)} restartPolicy must be Never (backoffLimitPerIndex)")
        for c in pspec["containers"]:
            limits = (c.get("resources") or {}).get("limits") or {}
            if str(limits.get(GPU)) != "1":
                out.append(f"{name(job)} container {c['name']} does not request {GPU}: 1")
            if "--worker-index" in c.get("args", []) or any(
                e["name"] == "HPSEARCH_WORKER_INDEX" for e in c.get("env") or []
            ):
                out.append(f"{name(job)} sets the worker index itself; it must come from JOB_COMPLETION_INDEX")

    # 4. The password reaches every pod that needs it from the Secret only.
    for d in docs:
        spec = pod_spec(d)
        if spec is None:
            continue
        secret_volumes = {
            v["name"] for v in spec.get("volumes") or [] if (v.get("secret") or {}).get("secretName") == SECRET_NAME
        }
        for c in containers(spec):
            mounted = {m["name"]: m["mountPath"] for m in c.get("volumeMounts") or [] if m["name"] in secret_volumes}
            if not mounted:
                out.append(f"{name(d)} container {c['name']} does not mount the Secret {SECRET_NAME}")

    # 5. The other pieces exist.
    if not any((pod_spec(j) or {})["containers"][0].get("args", [])[:1] == ["create"] for j in by_kind(docs, "Job")):
        out.append("no one-shot Job running `hpsearch create`")
    dash = [d for d in by_kind(docs, "Deployment") if pod_spec(d)["containers"][0].get("args", [])[:1] == ["dashboard"]]
    if len(dash) != 1:
        out.append("no Deployment running `hpsearch dashboard`")
    else:
        labels = dash[0]["spec"]["template"]["metadata"]["labels"]
        selecting = [
            s
            for s in by_kind(docs, "Service")
            if (s["spec"].get("selector") or {}) and (s["spec"]["selector"].items() <= labels.items())
        ]
        if not selecting:
            out.append("no Service selects the dashboard's pods")
    return out


# -- schemas -----------------------------------------------------------------------------------------------
def _validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise AssertionError(
            f"{doc.get('kind')}/{doc['metadata'].get('name')}: {e.message} at {list(e.path)}"
        ) from None


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_every_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    docs = load_docs([path])
    assert docs
    for doc in docs:
        _validate(doc)


def test_the_schema_check_can_fail() -> None:
    job = copy.deepcopy(named(load_docs(), "Job", "hpsearch-workers"))
    assert job is not None
    job["spec"]["completionMode"] = "Sequential"  # not an enum value
    job["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}  # unknown field (strict)
    with pytest.raises(AssertionError):
        _validate(job)


def test_the_kustomization_lists_every_manifest() -> None:
    k = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert sorted(k["resources"]) == [p.name for p in manifest_files()]


@pytest.mark.parametrize("folder", [BASE, K8S / "external-db"], ids=["base", "external-db"])
def test_kustomize_builds_valid_safe_manifests(folder: Path) -> None:
    docs = kustomize(folder)
    for doc in docs:
        _validate(doc)
        assert doc["metadata"].get("namespace") == "hpsearch"
    assert problems(docs) == []
    statefulsets = by_kind(docs, "StatefulSet")
    if folder == BASE:
        assert statefulsets and statefulsets[0]["spec"]["volumeClaimTemplates"]
    else:
        assert not statefulsets and not named(docs, "Service", "hpsearch-postgres")


# -- invariants ---------------------------------------------------------------------------------------------
def test_the_manifests_keep_every_invariant() -> None:
    docs = load_docs()
    assert problems(docs) == []
    job = named(docs, "Job", "hpsearch-workers")
    assert job is not None
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JOB_INDEX_FAILURE_COUNT"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-index-failure-count']"
    )
    pg = named(docs, "StatefulSet", "hpsearch-postgres")
    assert pg is not None and pg["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    config = named(docs, "ConfigMap", "hpsearch-config")
    assert config is not None and "@" in config["data"]["HPSEARCH_STORAGE"]


def _dashboard_service(docs: Docs) -> dict[str, Any]:
    svc = named(docs, "Service", "hpsearch-dashboard")
    assert svc is not None
    return svc


def _nodeport(docs: Docs) -> None:
    svc = _dashboard_service(docs)
    svc["spec"]["type"] = "NodePort"
    svc["spec"]["ports"][0]["nodePort"] = 30080


def _loadbalancer(docs: Docs) -> None:
    _dashboard_service(docs)["spec"]["type"] = "LoadBalancer"


def _ingress(docs: Docs) -> None:
    docs.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "dash"},
            "spec": {"defaultBackend": {"service": {"name": "hpsearch-dashboard", "port": {"number": 8080}}}},
        }
    )


def _inline_pg_password(docs: Docs) -> None:
    pg = named(docs, "StatefulSet", "hpsearch-postgres")
    assert pg is not None
    pg["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "POSTGRES_PASSWORD", "value": "hunter2"})


def _password_in_url(docs: Docs) -> None:
    config = named(docs, "ConfigMap", "hpsearch-config")
    assert config is not None
    config["data"]["HPSEARCH_STORAGE"] = "postgresql+psycopg2://hpsearch:hunter2@hpsearch-postgres:5432/hpsearch"


def _secret_manifest(docs: Docs) -> None:
    docs.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET_NAME}, "stringData": {"password": "x"}}
    )


def _password_in_configmap(docs: Docs) -> None:
    config = named(docs, "ConfigMap", "hpsearch-config")
    assert config is not None
    config["data"]["HPSEARCH_STORAGE_PASSWORD"] = "hunter2"


def _no_gpu(docs: Docs) -> None:
    job = named(docs, "Job", "hpsearch-workers")
    assert job is not None
    del job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][GPU]


def _two_gpus(docs: Docs) -> None:
    job = named(docs, "Job", "hpsearch-workers")
    assert job is not None
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][GPU] = 2


def _not_indexed(docs: Docs) -> None:
    job = named(docs, "Job", "hpsearch-workers")
    assert job is not None
    del job["spec"]["completionMode"]


def _parallelism(docs: Docs) -> None:
    job = named(docs, "Job", "hpsearch-workers")
    assert job is not None
    job["spec"]["parallelism"] = 2


def _fixed_index(docs: Docs) -> None:
    job = named(docs, "Job", "hpsearch-workers")
    assert job is not None
    job["spec"]["template"]["spec"]["containers"][0]["args"] += ["--worker-index", "0"]


def _no_secret_mount(docs: Docs) -> None:
    dash = named(docs, "Deployment", "hpsearch-dashboard")
    assert dash is not None
    dash["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = []


MUTATIONS: dict[str, tuple[Callable[[Docs], None], str]] = {
    "dashboard NodePort": (_nodeport, "only ClusterIP"),
    "dashboard LoadBalancer": (_loadbalancer, "only ClusterIP"),
    "dashboard Ingress": (_ingress, "publishes a service outside"),
    "inline POSTGRES_PASSWORD": (_inline_pg_password, "sets POSTGRES_PASSWORD inline"),
    "password in the URL": (_password_in_url, "password inside a URL"),
    "Secret with data": (_secret_manifest, "holds secret data"),
    "password in the ConfigMap": (_password_in_configmap, "holds HPSEARCH_STORAGE_PASSWORD"),
    "worker without GPU": (_no_gpu, f"does not request {GPU}: 1"),
    "worker with 2 GPUs": (_two_gpus, f"does not request {GPU}: 1"),
    "not Indexed": (_not_indexed, "not completionMode: Indexed"),
    "parallelism != completions": (_parallelism, "parallelism 2 != completions"),
    "fixed worker index": (_fixed_index, "JOB_COMPLETION_INDEX"),
    "Secret not mounted": (_no_secret_mount, "does not mount the Secret"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_the_invariants_fail_on_a_broken_copy(mutation: str) -> None:
    docs = copy.deepcopy(load_docs())
    mutate, expected = MUTATIONS[mutation]
    mutate(docs)
    found = problems(docs)
    assert any(expected in p for p in found), found
    assert problems(load_docs()) == []  # the files themselves are untouched
