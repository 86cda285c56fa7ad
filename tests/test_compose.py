"""The deployment files: docker-compose.yml validates and has the shape deploy/README.md promises.

No Docker engine is needed: `docker-compose config` only parses, merges and interpolates.
The docker-compose binary is required (Debian: `apt-get install docker-compose`); a machine
without it fails these tests rather than skipping them silently.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
TEST_SECRET = "compose-test-secret-0123456789abcdefghijklmnop"

APP_SERVICES = ("app1", "app2")
ONE_SHOT = {"migrate", "minio-init"}
EXPECTED = {
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "mailpit",
    "migrate",
    "app1",
    "app2",
    "proxy",
    "worker",
    "scheduler",
}


def _compose_cmd() -> list[str]:
    exe = shutil.which("docker-compose")
    if exe:
        return [exe]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    pytest.fail(
        "docker-compose is not installed, so docker-compose.yml cannot be validated: "
        "install it with `apt-get install -y --no-install-recommends docker-compose`"
    )


def _run_config(
    tmp_path: Path, secret: str | None, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    if secret is not None:
        env["SECRET_KEY"] = secret
    # An empty env file, so a developer's .env cannot change what is validated.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    cmd = [
        *_compose_cmd(),
        "--env-file",
        str(env_file),
        "-f",
        str(COMPOSE_FILE),
        "config",
        *extra,
    ]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = _run_config(tmp_path_factory.mktemp("compose"), TEST_SECRET)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def test_compose_file_validates(tmp_path: Path) -> None:
    result = _run_config(tmp_path, TEST_SECRET, "-q")
    assert result.returncode == 0, f"`docker-compose config -q` failed:\n{result.stderr}"


def test_secret_key_is_required_not_defaulted(tmp_path: Path) -> None:
    result = _run_config(tmp_path, None, "-q")
    assert result.returncode != 0, "docker-compose.yml must refuse to run without SECRET_KEY"
    assert "SECRET_KEY" in result.stderr
    text = COMPOSE_FILE.read_text()
    assert "${SECRET_KEY:?" in text
    assert not re.search(r"\$\{SECRET_KEY:?-", text), "SECRET_KEY must not have a default"


def test_expected_services_present(config: dict[str, Any]) -> None:
    missing = EXPECTED - set(config["services"])
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_app_instances_share_image_and_production_settings(config: dict[str, Any]) -> None:
    services = config["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, f"app1 and app2 must run the same image, got {images}"
    for name in APP_SERVICES:
        svc = services[name]
        assert "build" in svc
        env = svc["environment"]
        assert env["ENVIRONMENT"] == "production"
        assert env["SECRET_KEY"] == TEST_SECRET
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["STORAGE_URL"].startswith("s3://")
        assert env["TRUSTED_HOSTS"]
        assert "*" not in env["TRUSTED_HOSTS"].split(",")
        assert env["TRUSTED_PROXIES"]
        deps = _depends(svc)
        assert deps.get("postgres") == "service_healthy"
        assert deps.get("redis") == "service_healthy"
        assert deps.get("migrate") == "service_completed_successfully"
        assert deps.get("minio") == "service_healthy"
        assert deps.get("minio-init") == "service_completed_successfully"
        assert "mailpit" in deps


def test_app_healthcheck_probes_readiness_with_trusted_host(config: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        test = " ".join(config["services"][name]["healthcheck"]["test"])
        assert "/api/v1/ready" in test
        assert "urllib" in test
        assert "Host" in test
        assert "TRUSTED_HOSTS" in test


def test_proxy_depends_on_both_apps_and_publishes_8080(config: dict[str, Any]) -> None:
    proxy = config["services"]["proxy"]
    deps = _depends(proxy)
    for name in APP_SERVICES:
        assert deps.get(name) == "service_healthy", f"proxy must wait for {name} to be healthy"
    assert any("nginx.conf" in str(v) for v in proxy.get("volumes", []))
    ports = proxy["ports"]
    published = {
        (str(p.get("published")), str(p.get("target")))
        if isinstance(p, dict)
        else tuple(str(p).split("/")[0].split(":")[-2:])
        for p in ports
    }
    assert ("8080", "80") in published, f"proxy must publish 80 as 8080, got {ports}"


def test_trusted_proxies_names_the_proxy_address(config: dict[str, Any]) -> None:
    import ipaddress

    proxy_nets = config["services"]["proxy"]["networks"]
    addresses = [
        ipaddress.ip_address(spec["ipv4_address"])
        for spec in proxy_nets.values()
        if spec and spec.get("ipv4_address")
    ]
    assert addresses, "the proxy needs a fixed address for TRUSTED_PROXIES"
    for name in APP_SERVICES:
        trusted = [
            ipaddress.ip_network(item.strip(), strict=False)
            for item in config["services"][name]["environment"]["TRUSTED_PROXIES"].split(",")
        ]
        assert any(addr in net for addr in addresses for net in trusted)
    for net in config["networks"].values():
        assert net["ipam"]["config"][0]["subnet"], "networks need a fixed subnet"


def test_worker_and_scheduler(config: dict[str, Any]) -> None:
    services = config["services"]
    worker, scheduler = services["worker"], services["scheduler"]
    assert worker["command"][-1] == "worker"
    assert scheduler["command"][-1] == "scheduler"
    assert worker["stop_grace_period"] == "15s"
    assert worker["environment"].get("WORKER_METRICS_PORT")
    assert services["migrate"]["command"][-2:] == ["migrate", "upgrade"]
    assert _depends(services["migrate"]).get("postgres") == "service_healthy"


def test_every_long_running_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    lacking = [
        name
        for name, svc in config["services"].items()
        if name not in ONE_SHOT
        and (not svc.get("healthcheck") or svc["healthcheck"].get("disable"))
    ]
    assert not lacking, f"services without a healthcheck: {lacking}"


def test_backing_services(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["image"].startswith("redis:7")
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert services["minio"]["image"].startswith("minio/minio:")
    assert services["minio-init"]["image"].startswith("minio/mc:")
    assert _depends(services["minio-init"]).get("minio") == "service_healthy"
    assert services["mailpit"]["image"].startswith("axllent/mailpit:")
    assert any("pgdata" in str(v) for v in services["postgres"]["volumes"])


def test_images_are_pinned(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        image = svc.get("image")
        assert image, f"{name} has no image"
        name_part = image.rsplit("/", 1)[-1]
        assert ":" in name_part, f"{name}: image {image!r} has no tag"
        assert not image.endswith(":latest"), f"{name}: image {image!r} uses the latest tag"


def test_nginx_conf_sticky_and_websocket() -> None:
    conf = NGINX_CONF.read_text()
    code = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    assert re.search(r"upstream\s+\w+\s*\{[^}]*\bip_hash\s*;", code), "upstream needs ip_hash"
    assert re.search(r"server\s+app1:8080", code)
    assert re.search(r"server\s+app2:8080", code)
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade\s*\{", code)
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade\s*;", code)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade\s*;", code)
    assert re.search(r"proxy_http_version\s+1\.1\s*;", code)
    assert re.search(r"location\s+/socket\.io/", code)
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for\s*;", code)
    assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+", code)
    assert re.search(r"proxy_set_header\s+Host\s+", code)
    assert re.search(r"client_max_body_size\s+\d+m\s*;", code)


def test_dockerfile_basics() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    assert re.search(r"^USER (?!root)\S+", text, re.MULTILINE), "the image must not run as root"
    assert "EXPOSE 8080" in text
    assert '"lms-live", "serve"' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "var/"):
        assert entry in ignored
