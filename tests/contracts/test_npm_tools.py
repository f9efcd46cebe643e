"""The published contracts as a team that does not use Python would try them: the AsyncAPI reference parser
(@asyncapi/parser 3.x) reports no error and no warning, every JSON Schema compiles in ajv (2020-12, strict, with
ajv-formats), every example validates in it and is read by the CloudEvents SDK for JavaScript."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from secondopinion_contracts import ALL_EVENTS
from secondopinion_contracts.schemas import SCHEMA_DIR
from tests.contracts.node import run_node


def check(published: Path) -> tuple[int, dict[str, Any]]:
    result = run_node("check-contracts.mjs", str(published))
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_the_published_contracts_pass_tools_nobody_here_wrote() -> None:
    returncode, report = check(SCHEMA_DIR)
    assert report["problems"] == []
    assert returncode == 0
    assert report["counts"] == {"schemas": len(ALL_EVENTS) + 1, "examples": len(ALL_EVENTS),
                                "asyncapiMessages": len(ALL_EVENTS), "asyncapiExamples": len(ALL_EVENTS)}


def test_the_tools_catch_what_the_issue_found(tmp_path: Path) -> None:
    published = tmp_path / "published"
    shutil.copytree(SCHEMA_DIR, published)

    def edit(relative: str, change: Any) -> None:
        target = published / relative
        content = json.loads(target.read_text())
        change(content)
        target.write_text(json.dumps(content))

    # a payload `$ref` pointing at the document's root, as the first AsyncAPI document had
    edit("asyncapi.json", lambda doc: doc["components"]["messages"]["intake_CaseAccepted_v1"]["payload"]["properties"]
         ["data"]["properties"]["mode"].update({"$ref": "#/$defs/Mode"}))
    # examples that are not CloudEvents (the SDK supplies a missing specversion by itself; the schema does not)
    edit("examples/intake/CaseWithdrawn.v1.json", lambda message: message.pop("specversion"))
    edit("examples/intake/DocumentReceived.v1.json", lambda message: message.pop("source"))
    # a keyword nobody declared
    edit("billing/InvoiceVoided.v1.json", lambda schema: schema.update({"x-undeclared": 1}))
    (published / "examples" / "reporting" / "CaseClosed.v1.json").unlink()

    returncode, report = check(published)
    assert returncode == 1
    problems = "\n".join(report["problems"])
    assert "asyncapi.json: error invalid-ref" in problems
    assert "examples/intake/CaseWithdrawn.v1.json: envelope: data must have required property 'specversion'" in problems
    assert "examples/intake/DocumentReceived.v1.json: rejected by the CloudEvents SDK" in problems
    assert 'InvoiceVoided.v1.json: does not compile in ajv strict mode: strict mode: unknown keyword: "x-undeclared"' \
        in problems
    assert "reporting/CaseClosed.v1.json: no example" in problems
