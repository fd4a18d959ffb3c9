"""docker-compose.yml, Dockerfile and .env.example, checked without Docker (parsed with PyYAML).

When a Compose CLI is installed (``docker compose`` or ``docker-compose``), ``config`` validates the
file as well; otherwise that one test is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = ("postgres", "create", "worker", "dashboard")
HPSEARCH_SERVICES = ("create", "worker", "dashboard")
LOOPBACK = ("127.0.0.1", "::1", "[::1]", "localhost")
# ${VAR}, ${VAR:-default}, ${VAR:?message}: the whole value is an interpolation
INTERPOLATION = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(?:(?::?[-?])[^}]*)?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list syntax
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def command_text(svc: dict[str, Any]) -> str:
    parts = []
    for key in ("entrypoint", "command"):
        value = svc.get(key) or []
        parts += value if isinstance(value, list) else [value]
    return " ".join(map(str, parts))


def published(svc: dict[str, Any]) -> Iterator[tuple[str | None, str, str]]:
    """(host ip or None, host port, container port) of each published port, short or long syntax."""
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            yield p.get("host_ip"), str(p.get("published", "")), str(p.get("target"))
            continue
        text = str(p).split("/")[0]
        m = re.match(r"^(?:(\[[^\]]+\]|[^:]+):)?(?:([^:]*):)?([^:]+)$", text)
        assert m, f"cannot parse port {p!r}"
        ip, host, target = m.groups()
        if host is None and ip is not None and not re.search(r"[a-z.\[]", ip):  # "8080:8080"
            ip, host = None, ip
        yield ip, host or "", target


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (key path, string value) in the document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f"{path}[{i}]")
    elif node is not None:
        yield path, str(node)


# -- services ------------------------------------------------------------------------------------------
def test_services(compose: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(compose["services"])
    for name in HPSEARCH_SERVICES:
        svc = service(compose, name)
        assert svc.get("build") or svc.get("image"), f"{name}: no image to run"
    assert re.search(r"\bcreate\b.*--exist-ok", command_text(service(compose, "create")))
    assert str(service(compose, "create").get("restart", "no")) == "no"  # one shot
    assert re.search(r"\bworker\b.*--study", command_text(service(compose, "worker")))
    assert "dashboard" in command_text(service(compose, "dashboard"))


def test_postgres_has_a_named_volume_and_a_health_check(compose: dict[str, Any]) -> None:
    pg = service(compose, "postgres")
    assert str(pg["image"]).startswith("postgres:")
    mounts = [str(v).split(":") for v in pg.get("volumes", [])]
    named = [m[0] for m in mounts if len(m) >= 2 and m[1] == "/var/lib/postgresql/data" and "/" not in m[0]]
    assert named and named[0] in (compose.get("volumes") or {}), "the data directory must be a named volume"
    hc = pg["healthcheck"]
    test = hc["test"] if isinstance(hc["test"], str) else " ".join(hc["test"])
    assert "pg_isready" in test
    env = env_of(pg)
    assert f"-U {env['POSTGRES_USER']}" in test and f"-d {env['POSTGRES_DB']}" in test
    assert hc.get("interval") and hc.get("retries")


def test_startup_order(compose: dict[str, Any]) -> None:
    def conditions(name: str) -> dict[str, str]:
        deps = service(compose, name).get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on needs the long form with conditions"
        return {k: v.get("condition") for k, v in deps.items()}

    assert conditions("create") == {"postgres": "service_healthy"}
    for name in ("worker", "dashboard"):
        c = conditions(name)
        assert c.get("postgres") == "service_healthy", name
        assert c.get("create") == "service_completed_successfully", name


def test_workers_reserve_gpus_and_scale(compose: dict[str, Any]) -> None:
    w = service(compose, "worker")
    devices = (((w.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    # `--scale worker=N` needs: no fixed container name, no published port, no fixed replica count
    assert "container_name" not in w and not w.get("ports")
    assert "replicas" not in w.get("deploy", {})
    assert str(w.get("restart", "")).startswith("on-failure")  # exit 0 (budget spent) is final


def test_worker_replicas_get_distinct_sampler_seeds(compose: dict[str, Any], monkeypatch: Any) -> None:
    """Replicas run plain `hpsearch worker`; each derives its seed offset from hostname and pid."""
    import socket

    from hpsearch._worker import worker_index

    w = service(compose, "worker")
    assert w["command"][:2] == ["worker", "--study"] and "entrypoint" not in w
    monkeypatch.delenv("HPSEARCH_WORKER_INDEX", raising=False)
    seen = set()
    for host in ("a1b2c3d4e5f6", "0f9e8d7c6b5a"):
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        seen.add(worker_index())
    assert len(seen) == 2
    monkeypatch.setenv("HPSEARCH_WORKER_INDEX", "7")
    assert worker_index() == 7  # an explicit index (hpsearch run / launch) wins


def test_only_the_dashboard_is_published_and_only_on_loopback(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for ip, host, target in published(svc):
            assert ip in LOOPBACK, f"{name} publishes port {target} on {ip or 'all interfaces'}"
            assert target != "5432" and host != "5432", f"{name} publishes the database port"
    assert not service(compose, "postgres").get("ports")
    assert list(published(service(compose, "dashboard"))) == [("127.0.0.1", "8080", "8080")]


# -- passwords -----------------------------------------------------------------------------------------
def test_no_literal_passwords(compose: dict[str, Any]) -> None:
    from hpsearch.storage._url import url_password

    for path, value in strings(compose):
        key = path.rsplit(".", 1)[-1]
        if re.search(r"password|secret|token", key, re.I):
            assert INTERPOLATION.match(value), f"{path} holds a literal value; use ${{VAR:?...}} from .env"
        assert url_password(value) is None, f"{path} has a password in a URL"
    pg = env_of(service(compose, "postgres"))
    assert pg["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?"), "the password must be required"
    text = COMPOSE.read_text()
    assert not re.search(
        r"(?i)password\s*[:=]\s*['\"]?(?!\$\{)[^\s'\"$]+",
        text.replace("POSTGRES_PASSWORD:", "").replace("HPSEARCH_STORAGE_PASSWORD:", ""),
    ), "a literal password in the file"


def test_services_get_the_url_without_password_and_the_password_apart(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    from hpsearch.storage import resolve_url

    pg = env_of(service(compose, "postgres"))
    for name in HPSEARCH_SERVICES:
        env = env_of(service(compose, name))
        url = make_url(env["HPSEARCH_STORAGE"])
        assert url.password is None, f"{name}: HPSEARCH_STORAGE carries a password"
        assert url.drivername.startswith("postgresql")
        assert (url.host, url.port, url.username, url.database) == (
            "postgres",
            5432,
            pg["POSTGRES_USER"],
            pg["POSTGRES_DB"],
        ), name
        assert env["HPSEARCH_STORAGE_PASSWORD"] == pg["POSTGRES_PASSWORD"], name  # the same ${...} from .env
        # what hpsearch does with them (storage/_url.py)
        monkeypatch.setenv("HPSEARCH_STORAGE", env["HPSEARCH_STORAGE"])
        monkeypatch.setenv("HPSEARCH_STORAGE_PASSWORD", "pw-from-dotenv")
        assert make_url(resolve_url()).password == "pw-from-dotenv"


def test_env_example_and_ignores() -> None:
    example = (ROOT / ".env.example").read_text()
    values = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert "POSTGRES_PASSWORD" in values and values["POSTGRES_PASSWORD"].strip() == "", (
        ".env.example must not ship a password"
    )
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))  # not $${...} (escaped)
    assert used <= set(values), f"variables missing from .env.example: {sorted(used - set(values))}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in (ROOT / ".dockerignore").read_text().split()


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"(?m)^FROM\s+(\S+)", text)
    assert froms and re.match(r"(tensorflow/tensorflow:.*-gpu|python:3\.\d+)", froms[-1]), froms
    assert re.search(r"(?m)^RUN .*pip install .*\.(\s|$)", text)
    assert re.search(r'(?m)^ENTRYPOINT \["hpsearch"\]', text)
    assert re.search(r"(?m)^USER (?!root)\S+", text), "run as a non-root user"


def test_compose_config_validates(tmp_path: Path) -> None:
    cli = (
        ["docker", "compose"]
        if shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
        else ["docker-compose"]
        if shutil.which("docker-compose")
        else None
    )
    if cli is None:
        pytest.skip("no Compose CLI (docker compose / docker-compose) to validate with")
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD",)}
    no_dotenv = tmp_path / "empty.env"  # a developer's own .env must not decide the outcome
    no_dotenv.write_text("")
    args = [*cli, "-f", str(COMPOSE), "--env-file", str(no_dotenv), "config", "-q"]
    r = subprocess.run(
        args, cwd=ROOT, env={**env, "POSTGRES_PASSWORD": "x"}, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "POSTGRES_PASSWORD" in r.stderr  # refuses to start without it
