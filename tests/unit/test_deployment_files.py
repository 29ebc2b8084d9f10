"""The deployment files say what docs/operations.md promises: unprivileged, read-only
containers with no capabilities, secrets only from an env file or mounted files, probes on
/livez and /readyz, and Prometheus configuration and alerts that promtool accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dragon.settings import Settings, secret_setting_names

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
SECRET_WORDS = re.compile(r"(SECRET|TOKEN|PASSWORD|_KEY$|DATABASE_URL|REDIS_URL)")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def kubernetes() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((ROOT / "deploy/kubernetes/dragon.yaml").read_text()))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: install Debian's `prometheus` package (.ci/run does)"
    return subprocess.run(
        [found, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "--syntax-only", "prometheus.yml"),
        ("check", "rules", "dragon-rules.yml"),
        ("test", "rules", "dragon-rules.test.yml"),
    ],
)
def test_promtool_accepts_the_prometheus_files(args: tuple[str, ...]) -> None:
    checked = promtool(*args)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_names_a_metric_dragon_exports() -> None:
    rules = yaml.safe_load((PROMETHEUS / "dragon-rules.yml").read_text())
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "dragon").rglob("*.py"))
    exported = set(re.findall(r'"(dragon_[a-z_]+)"', source))
    for rule in rules["groups"][0]["rules"]:
        used = {
            m.removesuffix("_bucket").removesuffix("_count")
            for m in re.findall(r"dragon_[a-z_]+", rule["expr"])
        }
        assert used <= exported, (rule["alert"], used - exported)


def test_dragon_containers_are_read_only_unprivileged_and_get_secrets_from_the_env_file() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "api", "worker", "migrate"} <= services.keys()
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["env_file"] == "deploy/dragon.env", name
        for key, value in (service.get("environment") or {}).items():
            assert not SECRET_WORDS.search(key), f"{name} sets {key} inline"
            assert "://" not in str(value), name


def test_on_one_host_the_workers_weigh_less_than_the_api_for_the_cpu() -> None:
    # Containers are cgroups: nice inside one does not order it against the others.
    services = compose()["services"]
    assert services["worker"]["cpu_shares"] < services["api"].get("cpu_shares", 1024)


def test_the_env_file_example_names_only_real_settings_and_holds_no_value() -> None:
    fields = {f"DRAGON_{name.upper()}" for name in Settings.model_fields}
    for line in (ROOT / "deploy/dragon.env.example").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        assert value == "", key
        assert key in fields or not key.startswith("DRAGON_"), key
    assert "deploy/dragon.env" in (ROOT / ".gitignore").read_text()


def test_the_image_is_pinned_runs_unprivileged_and_checks_readiness() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert bases
    for base in bases:
        assert re.fullmatch(r"[a-z.]+:\d+\.\d+\.\d+[-\w]*(@sha256:[0-9a-f]{64})?", base), base
    (user,) = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert not user.startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", dockerfile, flags=re.MULTILINE)


def test_kubernetes_pods_are_restricted_probed_and_read_secrets_from_files() -> None:
    documents = kubernetes()
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    file_settings = {k for k in config["data"] if k.endswith("_FILE")}
    allowed = {f"DRAGON_{n.upper()}_FILE" for n in secret_setting_names(Settings)}
    assert file_settings
    assert file_settings <= allowed
    assert not any(SECRET_WORDS.search(k) for k in config["data"] if not k.endswith("_FILE"))
    workloads = [d for d in documents if d["kind"] in ("Deployment", "Job")]
    assert {d["metadata"]["name"] for d in workloads} >= {"dragon-api", "dragon-worker"}
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
    (api,) = [d for d in workloads if d["metadata"]["name"] == "dragon-api"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert api["spec"]["replicas"] == 2


def test_pre_commit_runs_ruff_mypy_and_a_secrets_scan() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"] for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "detect-secrets"} <= hooks
    assert (ROOT / ".secrets.baseline").exists()
