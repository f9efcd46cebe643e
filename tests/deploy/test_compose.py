"""deploy/compose.yaml: valid against the Compose Specification, and wired as docs/deployment.md says."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from ._support import (
    ALL_INTERFACES,
    CONSOLE,
    DEPLOY,
    SERVICES,
    TMP,
    WORKLOADS,
    Obj,
    compose_schema,
    interpolate,
    load_yaml,
)

COMPOSE = DEPLOY / "compose.yaml"
INFRASTRUCTURE = {"postgres", "rabbitmq", "otel-collector", "jaeger"}


@pytest.fixture(scope="module")
def compose() -> Obj:
    data: Obj = load_yaml(COMPOSE)
    return data


@pytest.fixture(scope="module")
def services(compose: Obj) -> dict[str, Obj]:
    result: dict[str, Obj] = compose["services"]
    return result


def _environment(service: Obj) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(str(value)) for key, value in env.items()}


def _depends(service: Obj) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def test_compose_file_is_valid_against_the_compose_specification(compose: Obj) -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = [f"at .{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
              for error in validator.iter_errors(compose)]
    assert not errors, "deploy/compose.yaml does not follow the Compose Specification:\n" + "\n".join(errors)


def test_the_schema_check_catches_a_misspelt_key(compose: Obj) -> None:
    broken: dict[str, Any] = {**compose, "services": {**compose["services"],
                                                      "intake": {**compose["services"]["intake"], "helthcheck": {}}}}
    assert not jsonschema.Draft202012Validator(compose_schema()).is_valid(broken)


def test_stack_has_broker_database_services_collector_and_jaeger(services: dict[str, Obj]) -> None:
    expected = INFRASTRUCTURE | set(WORKLOADS) | {f"{name}-migrate" for name in WORKLOADS} | {"rabbitmq-users"}
    assert set(services) == expected, f"unexpected or missing: {set(services) ^ expected}"
    assert re.fullmatch(r"rabbitmq:3\.[\d.]*-management", services["rabbitmq"]["image"]), \
        "RabbitMQ 3.x with the management UI"
    assert any(port.endswith(":15672") for port in services["rabbitmq"]["ports"]), "management UI published"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["jaeger"]["image"].startswith("jaegertracing/")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector")


def test_every_image_is_tagged_and_not_latest(services: dict[str, Obj]) -> None:
    for name, service in services.items():
        image = interpolate(service["image"])
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: image {image} has no tag"
        assert not image.endswith(":latest"), f"{name}: image {image} uses latest"


def test_depends_on_targets_exist_and_healthy_ones_have_healthchecks(services: dict[str, Obj]) -> None:
    for name, service in services.items():
        for target, condition in _depends(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: no healthcheck"
            if condition == "service_completed_successfully":
                assert target.endswith("-migrate") or target == "rabbitmq-users", \
                    f"{name} waits for {target} to complete"
    for name in ("postgres", "rabbitmq", *WORKLOADS):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"


def test_postgres_creates_one_database_per_service(services: dict[str, Obj]) -> None:
    postgres = services["postgres"]
    mounts = [volume for volume in postgres["volumes"] if "/docker-entrypoint-initdb.d/" in volume]
    assert len(mounts) == 1, "an init script mounted into /docker-entrypoint-initdb.d"
    script = DEPLOY / mounts[0].split(":")[0]
    assert script.is_file(), f"{script} is missing"
    assert _environment(postgres)["SERVICE_DATABASES"].split() == list(WORKLOADS)
    assert "CREATE DATABASE" in script.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", list(SERVICES))
def test_migration_runs_once_before_its_service(services: dict[str, Obj], name: str) -> None:
    migrate, service = services[f"{name}-migrate"], services[name]
    assert migrate["command"] == [name, "migrate"], "the one-shot runs `python -m <service> migrate`"
    assert migrate.get("restart") == "no"
    assert _depends(migrate) == {"postgres": "service_healthy", "rabbitmq": "service_healthy",
                                 "rabbitmq-users": "service_completed_successfully"}
    assert service["command"] == [name, "serve"]
    depends = _depends(service)
    assert depends[f"{name}-migrate"] == depends["rabbitmq-users"] == "service_completed_successfully"
    assert depends["postgres"] == depends["rabbitmq"] == "service_healthy"
    assert "otel-collector" in depends


@pytest.mark.parametrize("name", list(SERVICES))
def test_service_configuration_uses_the_contract_variables(services: dict[str, Obj], name: str) -> None:
    port = SERVICES[name]
    for container in (services[name], services[f"{name}-migrate"]):
        env = _environment(container)
        assert env["SERVICE"] == name
        assert env["HTTP_HOST"] == ALL_INTERFACES
        assert env["APP_PROFILE"] in {"development", "production"}
        assert env["LOG_LEVEL"]
        assert urlsplit(env["RABBITMQ_URL"]).scheme == "amqp"
        assert urlsplit(env["RABBITMQ_URL"]).hostname == "rabbitmq"
        dsn = urlsplit(env[f"{name.upper()}_DATABASE_URL"])
        assert (dsn.scheme, dsn.hostname, dsn.port, dsn.path) == ("postgresql", "postgres", 5432, f"/{name}")
        others = {key for key in env if key.endswith("_DATABASE_URL")} - {f"{name.upper()}_DATABASE_URL"}
        assert not others, f"{name} must not see another service's database"
        assert env["OTEL_SERVICE_NAME"].startswith(name)
        assert env["OTEL_TRACES_EXPORTER"] == "otlp"
        assert urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).hostname == "otel-collector"
    service = services[name]
    assert _environment(service)[f"{name.upper()}_HTTP_PORT"] == str(port)
    assert [interpolate(p).rsplit(":", 1)[-1] for p in service["ports"]] == [str(port)]
    assert [interpolate(p).split(":")[-2] for p in service["ports"]] == [str(port)], "host port = default port"
    probe = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in probe, f"{name}: the healthcheck must ask /readyz on {port}"


@pytest.mark.parametrize("name", [*WORKLOADS, *(f"{n}-migrate" for n in WORKLOADS)])
def test_app_containers_are_hardened(services: dict[str, Obj], name: str) -> None:
    service = services[name]
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert service["read_only"] is True
    assert any(str(mount).startswith(TMP) for mount in service["tmpfs"])
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert not str(service["user"]).startswith(("0", "root"))


def test_collector_receives_otlp_and_exports_to_jaeger(services: dict[str, Obj]) -> None:
    mounts = services["otel-collector"]["volumes"]
    config_file = DEPLOY / mounts[0].split(":")[0]
    config = load_yaml(config_file)
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    for name, pipeline in config["service"]["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config[section], f"pipeline {name} uses undefined {section[:-1]} {component}"
    traces = config["service"]["pipelines"]["traces"]
    jaeger_exporters = [e for e in traces["exporters"]
                        if str(config["exporters"][e].get("endpoint", "")).startswith("jaeger:")]
    assert jaeger_exporters, "traces must be exported to the jaeger service"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]
    assert "otel-collector" not in _depends(services["jaeger"])
    assert _depends(services["otel-collector"]).get("jaeger")


def test_interpolation_defaults_are_complete() -> None:
    """Every ${VAR} in the file has a default, so `docker compose up` works without an .env file."""
    missing = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", COMPOSE.read_text(encoding="utf-8"))
    assert not missing, f"variables without a default: {missing}"


def test_the_broker_users_are_set_up_once_and_no_service_uses_the_administrator(services: dict[str, Obj]) -> None:
    users = services["rabbitmq-users"]
    assert users["entrypoint"] == ["python", "-m", "eventkit.broker_users"]
    assert users.get("restart") == "no"
    admin = urlsplit(_environment(users)["RABBITMQ_ADMIN_URL"])
    assert admin.username == _environment(services["rabbitmq"])["RABBITMQ_DEFAULT_USER"]
    for name in SERVICES:
        for service in (services[name], services[f"{name}-migrate"]):
            url = urlsplit(_environment(service)["RABBITMQ_URL"])
            # No credentials: the service connects as its own broker user (eventkit.credentials).
            assert (url.username, url.password) == (None, None), f"{name}: RABBITMQ_URL carries credentials"


def test_postgres_creates_each_services_runtime_role() -> None:
    script = (DEPLOY / "postgres" / "init-databases.sh").read_text(encoding="utf-8")
    assert 'CREATE ROLE :"app" LOGIN PASSWORD :\'app_password\' NOSUPERUSER' in script
    assert '-v app="${name}_app"' in script


def test_the_desk_calls_the_four_services_over_http_and_has_its_own_database(services: dict[str, Obj]) -> None:
    [(name, port)] = CONSOLE.items()
    desk, migrate = services[name], services[f"{name}-migrate"]
    assert migrate["command"] == [name, "migrate"]
    assert desk["command"] == [name, "serve"]
    env = _environment(desk)
    assert env["DESK_HTTP_PORT"] == str(port)
    assert [interpolate(p).rsplit(":", 1)[-1] for p in desk["ports"]] == [str(port)]
    dsn = urlsplit(env["DESK_DATABASE_URL"])
    assert (dsn.hostname, dsn.path) == ("postgres", f"/{name}")
    assert not {key for key in env if key.endswith("_DATABASE_URL")} - {"DESK_DATABASE_URL"}
    for service, service_port in SERVICES.items():
        assert env[f"DESK_{service.upper()}_URL"] == f"http://{service}:{service_port}"
        assert _depends(desk)[service] == "service_healthy"
    assert _depends(desk)[f"{name}-migrate"] == "service_completed_successfully"
    assert f"127.0.0.1:{port}/readyz" in " ".join(desk["healthcheck"]["test"])
