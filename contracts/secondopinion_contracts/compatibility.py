"""Is each published event schema backward compatible with the last released one?

A consumer built against a released version must keep working: within one event version, no field may be
removed or retyped, no new field may be required, and no code may be removed from an enum. Such a change
needs a new version (a new model class with VERSION + 1) published beside the old one. The envelope is held to
the same rules. What a release marked deprecated with a sunset date (`x-sunset`: an event version, or a field)
may go once that date has passed, and only then (docs/subscribing.md, versioning and deprecation).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from secondopinion_contracts.schemas import SCHEMA_DIR

RELEASED_DIR = Path(__file__).resolve().parent / "released"


def last_release(directory: Path = RELEASED_DIR) -> Path | None:
    releases = sorted((path for path in directory.iterdir() if path.is_dir()),
                      key=lambda path: tuple(int(part) for part in path.name.split(".")))
    return releases[-1] if releases else None


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {}).get(name, {})
    return schema


def _types(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return set().union(*(_types(option, root) for option in schema["anyOf"]))
    if "const" in schema:
        return {f"const:{schema['const']}"}
    kind = schema.get("type", "any")
    if kind == "array":
        return {f"array<{','.join(sorted(_types(schema.get('items', {}), root)))}>"}
    if kind == "string" and "format" in schema:
        return {f"string:{schema['format']}"}
    return {kind}


def _enum(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    schema = _resolve(schema, root)
    if "items" in schema:
        return _enum(schema["items"], root)
    if "anyOf" in schema:
        return set().union(*(_enum(option, root) for option in schema["anyOf"]))
    return set(schema.get("enum", []))


def past_sunset(schema: dict[str, Any], today: date) -> bool:
    sunset = schema.get("x-sunset")
    return bool(schema.get("deprecated")) and sunset is not None and date.fromisoformat(sunset) < today


def breaking_changes(released: dict[str, Any], current: dict[str, Any], path: str = "",
                     today: date | None = None) -> list[str]:
    today = today or date.today()
    problems: list[str] = []
    old_props: dict[str, Any] = _resolve(released, released).get("properties", {})
    new_props: dict[str, Any] = _resolve(current, current).get("properties", {})
    for field, old in old_props.items():
        where = f"{path}{field}"
        if field not in new_props:
            if not past_sunset(old, today):
                problems.append(f"field `{where}` was removed")
            continue
        new = new_props[field]
        if not _types(old, released) <= _types(new, current):
            problems.append(f"field `{where}` changed type from {sorted(_types(old, released))} "
                            f"to {sorted(_types(new, current))}")
        removed_codes = _enum(old, released) - _enum(new, current)
        if removed_codes and _enum(new, current):
            problems.append(f"field `{where}` no longer allows {sorted(removed_codes)}")
        old_object = _resolve(old.get("items", old), released)
        if old_object.get("properties"):
            new_object = _resolve(new.get("items", new), current)
            problems += breaking_changes({**old_object, "$defs": released.get("$defs", {})},
                                         {**new_object, "$defs": current.get("$defs", {})}, f"{where}.", today)
    newly_required = set(_resolve(current, current).get("required", [])) - set(
        _resolve(released, released).get("required", []))
    problems += [f"field `{path}{field}` is newly required" for field in sorted(newly_required)]
    return problems


def check(published: Path = SCHEMA_DIR, released_dir: Path = RELEASED_DIR,
          today: date | None = None) -> dict[str, list[str]]:
    """Breaking changes per schema file, against the last release (files missing now count too, unless their
    sunset has passed)."""
    today = today or date.today()
    release = last_release(released_dir)
    if release is None:
        return {}
    report: dict[str, list[str]] = {}
    for released_file in sorted(release.rglob("*.json")):
        relative = released_file.relative_to(release)
        if relative.name == "asyncapi.json":
            continue
        current_file = published / relative
        released_schema = json.loads(released_file.read_text())
        if not current_file.exists():
            if not past_sunset(released_schema, today):
                report[str(relative)] = [f"event version {relative} was released and is no longer published"]
            continue
        problems = breaking_changes(released_schema, json.loads(current_file.read_text()), today=today)
        if problems:
            report[str(relative)] = problems
    return report
