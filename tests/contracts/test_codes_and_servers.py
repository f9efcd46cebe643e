"""The published contracts agree with what runs: intake's department roster uses only the published codes, and
the AsyncAPI servers are the broker addresses of the compose stack and the Kubernetes overlays."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from intake.settings import DEFAULT_DEPARTMENTS, IntakeSettings
from secondopinion_contracts.codes import Department
from secondopinion_contracts.schemas import SCHEMA_DIR

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_intake_accepts_cases_only_for_published_department_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(DEFAULT_DEPARTMENTS) <= {code.value for code in Department}
    monkeypatch.setenv("INTAKE_DEPARTMENTS", '["cardiology", "astrology"]')
    with pytest.raises(ValidationError, match="astrology"):
        IntakeSettings()
    monkeypatch.setenv("INTAKE_DEPARTMENTS", '["cardiology", "urology"]')
    assert IntakeSettings().departments == (Department.CARDIOLOGY, Department.UROLOGY)


def test_the_asyncapi_servers_are_the_deployed_brokers() -> None:
    servers = json.loads((SCHEMA_DIR / "asyncapi.json").read_text())["servers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    broker = compose["services"]["rabbitmq"]
    assert servers["compose"]["host"] == f"{broker['hostname']}:5672"
    published = next(port for port in broker["ports"] if port.endswith(":5672"))  # 127.0.0.1:${VAR:-port}:5672
    host_port = re.fullmatch(r"127\.0\.0\.1:\$\{RABBITMQ_HOST_PORT:-(\d+)\}:5672", published)
    assert host_port is not None, published
    assert f"`127.0.0.1:{host_port[1]}`" in servers["compose"]["description"]
    cluster = yaml.safe_load((DEPLOY / "k8s" / "base" / "rabbitmq-cluster.yaml").read_text())["metadata"]["name"]
    for server, overlay in (("production", "prod"), ("development", "dev")):
        kustomization = DEPLOY / "k8s" / "overlays" / overlay / "kustomization.yaml"
        namespace = yaml.safe_load(kustomization.read_text())["namespace"]
        assert servers[server]["host"] == f"{cluster}.{namespace}.svc.cluster.local:5672"
    assert all(server["security"] for server in servers.values())
