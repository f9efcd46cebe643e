"""The Node.js example subscriber on the real broker: it validates every event, processes each id once, keeps one
of two published versions, rejects an invalid message to its own dead-letter queue and purges on erasure."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import aio_pika

from eventkit.testing import publish_raw
from secondopinion_contracts.events.intake import CaseDeclined, CaseDeclinedV2, CaseSubmitted, PersonalDataErased
from secondopinion_contracts.examples import CASE, DECLINED_CASE, EXAMPLES
from tests.contracts.node import subscriber


def body(event: type[Any], **changes: Any) -> bytes:
    message = json.loads(EXAMPLES[event].to_json_bytes())
    message.update(changes)
    return json.dumps(message).encode()


async def test_validates_dedupes_keeps_one_version_rejects_and_purges(rabbitmq_url: str, tmp_path: Path) -> None:
    await publish_raw(rabbitmq_url, b"{}", "nobody.listens")  # the exchange exists before anyone binds
    async with subscriber(rabbitmq_url, tmp_path / "state.json", "--binding", "intake.#") as running:
        await running.read_until(lambda lines: any(line["outcome"] == "bound" for line in lines))
        submitted = body(CaseSubmitted)
        broken = json.loads(submitted)
        broken["id"] = str(uuid.uuid4())
        broken["data"]["mode"] = "telepathy"
        for message, key in ((submitted, "intake.CaseSubmitted.v1"), (submitted, "intake.CaseSubmitted.v1"),
                             (body(CaseDeclined), "intake.CaseDeclined.v1"),
                             (body(CaseDeclinedV2), "intake.CaseDeclined.v2"),
                             (json.dumps(broken).encode(), "intake.CaseSubmitted.v1"),
                             (body(PersonalDataErased), "intake.PersonalDataErased.v1")):
            await publish_raw(rabbitmq_url, message, key)
        lines = await running.read_until(lambda lines: len(lines) == 7)
        saved = running.saved()

    assert [(line["outcome"], line.get("type", "").split(".")[-2:]) for line in lines[1:]] == [
        ("processed", ["CaseSubmitted", "v1"]), ("duplicate", ["CaseSubmitted", "v1"]),
        ("superseded", ["CaseDeclined", "v1"]), ("processed", ["CaseDeclined", "v2"]),
        ("invalid", ["CaseSubmitted", "v1"]), ("processed", ["PersonalDataErased", "v1"])]
    assert lines[5]["error"].startswith("data: data/mode must be equal to one of the allowed values")
    assert saved["cases"][str(DECLINED_CASE)]["status"] == "declined"
    assert saved["cases"][str(DECLINED_CASE)]["events"] == ["CaseDeclined"], "v1 skipped, v2 applied"
    erased = saved["cases"][str(CASE)]
    assert "payer_name_sealed" not in erased, "purged on PersonalDataErased"
    assert erased["erased_on"] == "2032-04-01"
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        dead = await (await connection.channel()).declare_queue("pharmacy.secondopinion.dead", passive=True)
        assert dead.declaration_result.message_count == 1
