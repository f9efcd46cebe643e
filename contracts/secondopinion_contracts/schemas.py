"""JSON Schemas of the envelope and of every event version, as checked in under secondopinion_contracts/published/.

`python -m secondopinion_contracts.schemas` (or `make contracts`) regenerates them; a test fails
when the checked-in files differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from secondopinion_contracts.base import EventData
from secondopinion_contracts.envelope import CloudEvent
from secondopinion_contracts.examples import EXAMPLES
from secondopinion_contracts.registry import ALL_EVENTS

SCHEMA_DIR = Path(__file__).resolve().parent / "published"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_schema(event: type[EventData]) -> dict[str, Any]:
    schema = event.model_json_schema(mode="serialization")
    # Producers forbid undeclared fields, but the published schema must let consumers accept fields
    # added later in a backward-compatible release of the same version.
    schema.pop("additionalProperties", None)
    deprecation = {"deprecated": True, "x-sunset": event.SUNSET} if event.SUNSET else {}
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": event.schema_uri(),
        "x-cloudevents-type": event.type_name(),
        "x-routing-key": event.routing_key(),
        **deprecation,
        **schema,
    }


def example_path(event: type[EventData]) -> Path:
    return Path("examples") / event.SERVICE / f"{event.NAME}.v{event.VERSION}.json"


def envelope_schema() -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, **CloudEvent.model_json_schema(mode="serialization")}


def rendered() -> dict[Path, str]:
    from secondopinion_contracts import asyncapi  # it builds on this module's schemas

    files = {Path("envelope.json"): envelope_schema()}
    for event in ALL_EVENTS:
        files[Path(event.SERVICE) / f"{event.NAME}.v{event.VERSION}.json"] = event_schema(event)
    for event, envelope in EXAMPLES.items():
        files[example_path(event)] = json.loads(envelope.to_json_bytes())
    texts = {path: json.dumps(schema, indent=2, sort_keys=True) + "\n" for path, schema in files.items()}
    texts[Path("asyncapi.json")] = asyncapi.rendered()
    return texts


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    written = []
    for relative, text in rendered().items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            written.append(target)
    return written


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Paths whose checked-in schema differs from the models (or is missing, or is orphaned)."""
    expected = rendered()
    problems = [
        str(relative)
        for relative, text in expected.items()
        if not (directory / relative).exists() or (directory / relative).read_text() != text
    ]
    on_disk = {path.relative_to(directory) for path in directory.rglob("*.json")} if directory.exists() else set()
    problems += [f"{path} (no model)" for path in sorted(on_disk - set(expected))]
    return problems


def release(version: str, directory: Path = SCHEMA_DIR) -> Path:
    """Snapshot the published event schemas as release `version`, the baseline of the compatibility check."""
    from secondopinion_contracts.compatibility import RELEASED_DIR

    target = RELEASED_DIR / version
    if target.exists():
        raise SystemExit(f"release {version} exists already; releases are immutable")
    for source in sorted(directory.rglob("*.json")):
        if source.name == "asyncapi.json" or source.relative_to(directory).parts[0] == "examples":
            continue
        copy = target / source.relative_to(directory)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(source.read_text())
    return target


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--release":
        print(f"released {release(sys.argv[2])}")
        sys.exit(0)
    for path in write():
        print(f"wrote {path}")
    sys.exit(0)
