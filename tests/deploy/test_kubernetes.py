"""deploy/k8s: every kustomize target renders, every rendered object is schema-valid (offline), and the
rendered manifests have the properties the deployment promises (docs/deployment.md)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ._support import (
    ALL_INTERFACES,
    CONSOLE,
    CONSOLE_DOC,
    DEPLOYMENT_DOC,
    OLDEST_KUBERNETES,
    OVERLAYS,
    SERVICES,
    TMP,
    WORKLOADS,
    Obj,
    by_name,
    env_of,
    ident,
    kubernetes_versions,
    objects_of,
    pod_templates,
    render,
    schema_errors,
)

TARGETS = ["base", *(f"overlays/{overlay}" for overlay in OVERLAYS)]
VERSIONS = sorted({OLDEST_KUBERNETES, kubernetes_versions()[-1]})
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
SECRET_LOOKING_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|CREDENTIAL|API_?KEY)", re.IGNORECASE)
NAMESPACED = {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
              "Job", "ConfigMap", "ServiceAccount", "RabbitmqCluster"}
SERVER = {"app.kubernetes.io/component": "server"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels + matchExpressions In/NotIn/Exists) selects these labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _server_deployments(objects: tuple[Obj, ...]) -> dict[str, Obj]:
    return by_name(objects, "Deployment")


def _container(deployment: Obj) -> Obj:
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{ident(deployment)}: expected one container"
    return containers[0]


# --- rendering and schemas -------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_kustomize_target_renders(target: str) -> None:
    objects = render(target)
    assert objects, f"kubectl kustomize {target} rendered nothing"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(target: str, version: str) -> None:
    errors = [error for obj in render(target) for error in schema_errors(obj, version)]
    assert not errors, f"{target} against Kubernetes {version}:\n" + "\n".join(errors)


def test_the_schema_check_catches_an_unknown_field_and_a_wrong_type() -> None:
    """The validators really are strict (a misspelt field is an error, not silently ignored)."""
    deployment = dict(_server_deployments(render("overlays/prod"))["intake"])
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    assert any("replica" in error for error in schema_errors(broken, VERSIONS[-1]))
    rabbit = objects_of(render("overlays/prod"), "RabbitmqCluster")[0]
    broken = {**rabbit, "spec": {**rabbit["spec"], "replicas": "three", "persistance": {}}}
    errors = schema_errors(broken, VERSIONS[-1])
    assert any("three" in error for error in errors)
    assert any("persistance" in error for error in errors)


# --- per-service objects ---------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_deployment_service_hpa_pdb_and_migration_job(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    deployments = _server_deployments(objects)
    services = by_name(objects, "Service")
    hpas = by_name(objects, "HorizontalPodAutoscaler")
    pdbs = objects_of(objects, "PodDisruptionBudget")
    jobs = objects_of(objects, "Job")
    assert set(deployments) == set(WORKLOADS), f"Deployments: {sorted(deployments)}"
    for name, port in WORKLOADS.items():
        deployment = deployments[name]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(deployment["spec"]["selector"], pod_labels), f"{name}: selector misses its pods"

        service = services[name]
        assert service["spec"]["selector"].items() <= pod_labels.items(), f"Service {name} selects no pod"
        assert [p["port"] for p in service["spec"]["ports"]] == [port]

        hpa = hpas[name]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the replica count"

        covering = [pdb for pdb in pdbs if _selects(pdb["spec"]["selector"], pod_labels)]
        assert len(covering) == 1, f"{name}: expected one PodDisruptionBudget, found {len(covering)}"

        migrations = [job for job in jobs
                      if job["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == name]
        assert len(migrations) == 1, f"{name}: expected one migration Job"
        migrate = migrations[0]["spec"]["template"]["spec"]["containers"][0]
        assert migrate["args"] == [name, "migrate"], "the Job must run `python -m <service> migrate`"
        assert migrations[0]["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}
        assert not _selects({"matchLabels": service["spec"]["selector"]},
                            migrations[0]["spec"]["template"]["metadata"]["labels"]), \
            f"Service {name} must not route to its migration Job's pod"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_deployment_runs_its_service_with_probes_and_graceful_shutdown(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    config = objects_of(objects, "ConfigMap")
    for name, port in WORKLOADS.items():
        deployment = _server_deployments(objects)[name]
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        where = f"{overlay} {ident(deployment)}"
        assert container["args"] == [name, "serve"], f"{where}: must run `python -m {name} serve`"
        assert env_of(container)["SERVICE"]["value"] == name
        assert env_of(container)["OTEL_SERVICE_NAME"]["value"] == name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": port}, f"{where}: container port"
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/port") == str(port), f"{where}: Prometheus scrape port"
        assert annotations.get("prometheus.io/path") == "/metrics"
        # the port the app listens on (<SERVICE>_HTTP_PORT from the ConfigMap) is the container port
        port_settings = {cm["data"].get(f"{name.upper()}_HTTP_PORT") for cm in config} - {None}
        assert port_settings == {str(port)}, f"{where}: {name.upper()}_HTTP_PORT"
        assert {cm["data"].get("HTTP_HOST") for cm in config} - {None} == {ALL_INTERFACES}

        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            assert probe in container, f"{where}: no {probe}"
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{where}: {probe} must GET {path}"
            assert get["port"] in {"http", port}, f"{where}: {probe} on the wrong port"

        pre_stop = container["lifecycle"]["preStop"]
        sleep = int(pre_stop["exec"]["command"][-1]) if "exec" in pre_stop else int(pre_stop["sleep"]["seconds"])
        assert sleep > 0
        assert pod["terminationGracePeriodSeconds"] > sleep + 20, \
            f"{where}: grace period must cover the preStop sleep and the app's 20 s graceful shutdown"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_hardened_and_has_resources(overlay: str) -> None:
    """Deployments and Jobs alike: non-root, read-only root filesystem (with /tmp as an emptyDir), no
    privilege escalation, ALL capabilities dropped, RuntimeDefault seccomp, requests and limits."""
    problems: list[str] = []
    for owner, template in pod_templates(render(f"overlays/{overlay}")):
        pod = template["spec"]
        pod_security = pod.get("securityContext", {})
        if pod_security.get("runAsNonRoot") is not True:
            problems.append(f"{ident(owner)}: pod securityContext.runAsNonRoot is not true")
        if pod_security.get("runAsUser", 0) == 0:
            problems.append(f"{ident(owner)}: pod securityContext.runAsUser must be a non-zero uid")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{ident(owner)}: seccompProfile is not RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{ident(owner)}: the service account token must not be mounted")
        empty_dirs = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{ident(owner)} container {container['name']}"
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if security.get("privileged"):
                problems.append(f"{where}: privileged")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities.drop does not contain ALL")
            if security.get("capabilities", {}).get("add"):
                problems.append(f"{where}: adds capabilities")
            if security.get("runAsUser") == 0:
                problems.append(f"{where}: runs as root")
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == TMP]
            if not tmp or tmp[0]["name"] not in empty_dirs:
                problems.append(f"{where}: /tmp is not an emptyDir mount")
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(section, {}))
                if missing:
                    problems.append(f"{where}: resources.{section} lacks {sorted(missing)}")
            image = container["image"]
            if image.endswith(":latest") or (":" not in image.rsplit("/", 1)[-1] and "@" not in image):
                problems.append(f"{where}: image {image} has no tag, or `latest`")
    assert not problems, "\n".join(problems)


# --- secrets ---------------------------------------------------------------------------------------

def _secret_references(objects: tuple[Obj, ...]) -> set[tuple[str, str]]:
    references: set[tuple[str, str]] = set()
    for _, template in pod_templates(objects):
        for container in template["spec"]["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    references.add((ref["name"], ref["key"]))
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    references.add((source["secretRef"]["name"], "*"))
    return references


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_are_referenced_never_inlined(target: str) -> None:
    objects = render(target)
    assert not objects_of(objects, "Secret"), \
        f"{target} renders Secret objects: secrets are created outside the repository and referenced"
    problems: list[str] = []
    for owner, template in pod_templates(objects):
        for container in template["spec"]["containers"]:
            for entry in container.get("env", []):
                name, value = entry["name"], entry.get("value")
                secret_like = (name.endswith("_DATABASE_URL") or name == "RABBITMQ_URL" or name.startswith("JWT_")
                               or SECRET_LOOKING_NAME.search(name))
                if secret_like and "secretKeyRef" not in entry.get("valueFrom", {}):
                    problems.append(f"{ident(owner)}: {name} must come from a secretKeyRef")
                if isinstance(value, str) and CREDENTIALS_IN_URL.search(value):
                    problems.append(f"{ident(owner)}: {name} has credentials inline")
    for config_map in objects_of(objects, "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            if SECRET_LOOKING_NAME.search(key) or CREDENTIALS_IN_URL.search(str(value)):
                problems.append(f"{ident(config_map)}: {key} looks like a secret; use a Secret")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_gets_its_dsn_broker_url_and_jwt_settings_from_secrets(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    for name in SERVICES:
        env = env_of(_container(_server_deployments(objects)[name]))
        for variable in (f"{name.upper()}_DATABASE_URL", "RABBITMQ_URL", "JWT_JWKS_URL", "JWT_ISSUER",
                         "JWT_AUDIENCE"):
            assert variable in env, f"{name}: {variable} is not set"
            assert "secretKeyRef" in env[variable].get("valueFrom", {}), f"{name}: {variable} not from a Secret"
        other_dsns = {v for v in env if v.endswith("_DATABASE_URL")} - {f"{name.upper()}_DATABASE_URL"}
        assert not other_dsns, f"{name} must not see another service's database: {other_dsns}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_desk_gets_its_database_and_sign_in_from_secrets_and_no_broker(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    env = env_of(_container(_server_deployments(objects)["desk"]))
    for variable in ("DESK_DATABASE_URL", "DESK_SESSION_KEY", "OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET",
                     "OIDC_RESOURCE"):
        assert "secretKeyRef" in env[variable].get("valueFrom", {}), f"desk: {variable} not from a Secret"
    assert not {v for v in env if v.endswith("_DATABASE_URL")} - {"DESK_DATABASE_URL"}, "only its own database"
    assert "RABBITMQ_URL" not in env, "the desk uses no broker"
    config = {key: value for cm in objects_of(objects, "ConfigMap") for key, value in cm["data"].items()}
    for name, port in SERVICES.items():
        assert config[f"DESK_{name.upper()}_URL"] == f"http://{name}:{port}"
    assert config["DESK_PUBLIC_URL"].startswith("https://")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_desk_is_served_through_an_ingress_with_tls(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    [ingress] = objects_of(objects, "Ingress")
    spec = ingress["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    assert hosts, "the Ingress names its host"
    assert hosts <= {host for tls in spec["tls"] for host in tls["hosts"]}, "every host has TLS"
    assert all(tls.get("secretName") for tls in spec["tls"])
    backends = {(p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
                for rule in spec["rules"] for p in rule["http"]["paths"]}
    assert backends == {("desk", "http")}, "only the console is exposed"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    config = {key: value for cm in objects_of(objects, "ConfigMap") for key, value in cm["data"].items()}
    assert config["DESK_PUBLIC_URL"] in {f"https://{host}" for host in hosts}, "the OIDC redirect base is the host"


def test_every_referenced_secret_and_key_is_documented() -> None:
    """docs/deployment.md names every Secret and key the manifests need (they must exist beforehand)."""
    doc = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    doc += CONSOLE_DOC.read_text(encoding="utf-8")  # the console's own Secrets are in its guide
    missing = sorted(f"{name}/{key}" for target in TARGETS for name, key in _secret_references(render(target))
                     if name not in doc or (key != "*" and key not in doc))
    assert not missing, f"not documented in {DEPLOYMENT_DOC.relative_to(DEPLOYMENT_DOC.parents[1])}: {missing}"


# --- network policies ------------------------------------------------------------------------------

# 443: the identity provider's JWKS and the payment gateway, from the servers only; 8001: billing, scheduling
# and reporting to intake (the fields a printed document shows), to intake's pods only; 8001-8004: the desk to
# the four services.
INTAKE_CALLERS = {"billing", "scheduling", "reporting", *CONSOLE}
ALLOWED_EGRESS_PORTS = {53, 5432, 5671, 5672, 4317, 4318, 443, *SERVICES.values()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_limit_ingress_and_egress(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    policies = objects_of(objects, "NetworkPolicy")
    for owner, template in pod_templates(objects):
        labels = template["metadata"]["labels"]
        applying = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        types = {t for p in applying for t in p["spec"].get("policyTypes", [])}
        assert types >= {"Ingress", "Egress"}, f"{ident(owner)}: not isolated for {({'Ingress', 'Egress'} - types)}"
        egress_ports = {port["port"] for p in applying for rule in p["spec"].get("egress", [])
                        for port in rule.get("ports", [])}
        assert egress_ports <= ALLOWED_EGRESS_PORTS, f"{ident(owner)}: egress to {egress_ports - ALLOWED_EGRESS_PORTS}"
        for p in applying:
            for rule in p["spec"].get("egress", []):
                assert rule.get("to"), f"{ident(p)}: an egress rule open to any destination"
                assert rule.get("ports"), f"{ident(p)}: an egress rule open to any port"
        name = labels["app.kubernetes.io/name"]
        if name in CONSOLE:
            assert 5672 not in egress_ports, f"{ident(owner)}: the desk uses no broker"
            if owner["kind"] == "Deployment":
                assert set(SERVICES.values()) <= egress_ports, f"{ident(owner)}: must reach the four services"
        else:
            assert {5672} <= egress_ports, f"{ident(owner)}: needs RabbitMQ"
            assert not (set(SERVICES.values()) - {8001}) & egress_ports, f"{ident(owner)}: calls no service"
        assert {53, 5432} <= egress_ports, f"{ident(owner)}: needs DNS and PostgreSQL"
        if owner["kind"] != "Deployment":
            assert 443 not in egress_ports, f"{ident(owner)}: a migration needs no HTTPS egress"
        if 8001 in egress_ports:
            assert owner["kind"] == "Deployment", f"{ident(owner)}: a migration does not call intake"
            assert labels["app.kubernetes.io/name"] in INTAKE_CALLERS, \
                f"{ident(owner)}: only {', '.join(sorted(INTAKE_CALLERS))} call intake"
        if owner["kind"] == "Deployment":
            assert {4317, 4318} & egress_ports, f"{ident(owner)}: needs the OpenTelemetry collector"
            assert 443 in egress_ports, f"{ident(owner)}: needs HTTPS to the identity provider's JWKS"
            sources = [peer for p in applying for rule in p["spec"].get("ingress", [])
                       for peer in rule.get("from", [])]
            namespaces = {peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                          for peer in sources}
            assert {"ingress-nginx", "monitoring"} <= namespaces, \
                f"{ident(owner)}: HTTP from the ingress controller and Prometheus scrapes must be allowed"
            for p in applying:
                for rule in p["spec"].get("ingress", []):
                    assert rule.get("from"), f"{ident(p)}: an ingress rule open to any source"
                    assert rule.get("ports"), f"{ident(p)}: an ingress rule open to any port"
        else:
            assert not any(p["spec"].get("ingress") for p in applying), f"{ident(owner)}: a Job accepts no traffic"


# --- RabbitMQ, namespaces, overlays ----------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rabbitmq_is_a_three_node_cluster_from_the_operator(overlay: str) -> None:
    clusters = objects_of(render(f"overlays/{overlay}"), "RabbitmqCluster")
    assert len(clusters) == 1
    spec = clusters[0]["spec"]
    assert clusters[0]["apiVersion"] == "rabbitmq.com/v1beta1"
    assert spec["replicas"] == 3
    assert re.fullmatch(r"rabbitmq:3\.\d+\.\d+-management", spec["image"]), "RabbitMQ 3.x, pinned"
    assert "app.kubernetes.io/part-of" not in clusters[0]["metadata"].get("labels", {}), \
        "the operator copies these labels to the RabbitMQ pods: they must not match the services' policies"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_puts_everything_in_its_namespace(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    namespaces = [obj for obj in objects if obj["kind"] == "Namespace"]
    assert len(namespaces) == 1
    namespace = namespaces[0]["metadata"]["name"]
    wrong = [ident(obj) for obj in objects if obj["kind"] in NAMESPACED
             and obj["metadata"].get("namespace") != namespace]
    assert not wrong, f"not in namespace {namespace}: {wrong}"


def test_dev_runs_one_replica_and_prod_more_with_a_pinned_image() -> None:
    dev, prod = render("overlays/dev"), render("overlays/prod")
    for name in SERVICES:
        dev_hpa = by_name(dev, "HorizontalPodAutoscaler")[name]["spec"]
        prod_hpa = by_name(prod, "HorizontalPodAutoscaler")[name]["spec"]
        assert dev_hpa["minReplicas"] == dev_hpa["maxReplicas"] == 1, f"dev {name}: one replica"
        assert prod_hpa["minReplicas"] >= 3, f"prod {name}: at least 3 replicas"
        assert prod_hpa["maxReplicas"] > prod_hpa["minReplicas"], f"prod {name}: room to scale"
        dev_limits = _container(by_name(dev, "Deployment")[name])["resources"]["limits"]
        prod_limits = _container(by_name(prod, "Deployment")[name])["resources"]["limits"]
        assert _memory(prod_limits["memory"]) > _memory(dev_limits["memory"]), f"prod {name}: more memory"
    pinned = re.compile(r".+(:v?\d+\.\d+\.\d+(-[\w.]+)?|@sha256:[0-9a-f]{64})$")
    for owner, template in pod_templates(prod):
        for container in template["spec"]["containers"]:
            assert pinned.match(container["image"]), f"prod {ident(owner)}: image {container['image']} not pinned"


def _memory(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    match = re.fullmatch(r"(\d+)([KMG]i?)?", quantity)
    assert match, f"unexpected memory quantity {quantity}"
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_documented_apply_steps_select_every_object_once(overlay: str) -> None:
    """docs/deployment.md applies an overlay in steps by label: (1a) part-of=secondopinion without a
    component label: Namespace, ServiceAccount, ConfigMap, shared NetworkPolicies; (1b) the RabbitMQ
    cluster by name label; (1c) component broker-access / broker-topology: its users, permissions and exchanges;
    (2) component=migration: the Jobs; (3) the rest (component=server)."""
    steps: dict[str, list[str]] = {"1a": [], "1b": [], "1c": [], "2": [], "3": [], "none": []}
    for obj in render(f"overlays/{overlay}"):
        labels = obj["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/part-of") == "secondopinion" and "app.kubernetes.io/component" not in labels:
            steps["1a"].append(obj["kind"])
        elif labels.get("app.kubernetes.io/name") == "secondopinion-rabbitmq":
            steps["1b"].append(obj["kind"])
        elif labels.get("app.kubernetes.io/component") in {"broker-access", "broker-topology"}:
            steps["1c"].append(obj["kind"])
        elif labels.get("app.kubernetes.io/component") == "migration":
            steps["2"].append(obj["kind"])
        elif labels.get("app.kubernetes.io/component") == "server":
            steps["3"].append(obj["kind"])
        else:
            steps["none"].append(ident(obj))
    assert not steps["none"], f"objects no documented step applies: {steps['none']}"
    assert {"Namespace", "ServiceAccount", "ConfigMap", "NetworkPolicy"} == set(steps["1a"])
    assert steps["1b"] == ["RabbitmqCluster"]
    assert {"User", "Permission", "TopicPermission", "Exchange"} <= set(steps["1c"])
    assert steps["2"] == ["Job"] * len(WORKLOADS)
    assert "Deployment" in steps["3"]
    assert "Job" not in steps["3"]


def test_the_broker_users_and_their_permissions_are_those_eventkit_defines() -> None:
    """base/rabbitmq-access.yaml says what eventkit.broker_users says (the tests' vhosts, `make run` and compose
    set the broker up from the latter), and each service reads its own user's password."""
    from eventkit.broker_users import users

    objects = render("base")
    by_kind = {kind: {obj["metadata"]["name"]: obj["spec"] for obj in objects_of(objects, kind)}
               for kind in ("User", "Permission", "TopicPermission")}
    for user in users():
        name = f"secondopinion-{user.name}"
        assert by_kind["User"][name]["importCredentialsSecret"] == {"name": f"{name}-rabbitmq-user"}
        assert by_kind["User"][name]["tags"] == [], f"{user.name} must not be an administrator or monitor"
        assert by_kind["Permission"][name]["userReference"] == {"name": name}
        assert by_kind["Permission"][name]["permissions"] == user.permissions()
        assert by_kind["TopicPermission"][name]["permissions"] == user.topic_permissions()
    deployments = _server_deployments(objects)
    for service in SERVICES:
        env = env_of(_container(deployments[service]))
        password = env[f"{service.upper()}_RABBITMQ_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": f"secondopinion-{service}-rabbitmq-user", "key": "password"}
        for variable in (f"{service.upper()}_DATABASE_PASSWORD", f"{service.upper()}_ACCESS_LOG_KEY"):
            assert "secretKeyRef" in env[variable]["valueFrom"], f"{service}: {variable} not from a Secret"


def test_the_services_hold_no_owners_credentials_and_leave_migrating_to_the_jobs() -> None:
    objects = render("base")
    [config] = objects_of(objects, "ConfigMap")
    assert config["data"]["MIGRATE_ON_START"] == "false"
    deployments = _server_deployments(objects)
    jobs = {job["metadata"]["name"]: job for job in objects_of(objects, "Job")}
    for service in SERVICES:
        variable = f"{service.upper()}_DATABASE_URL"
        served = env_of(_container(deployments[service]))[variable]["valueFrom"]["secretKeyRef"]
        job_containers = jobs[f"{service}-migrate"]["spec"]["template"]["spec"]["containers"]
        migrating = env_of(job_containers[0])[variable]["valueFrom"]["secretKeyRef"]
        assert migrating["key"] == variable, "the migration Job runs as the owner"
        assert served["key"] == f"{service.upper()}_DATABASE_ADDRESS", f"{service} must not see the owner's DSN"
