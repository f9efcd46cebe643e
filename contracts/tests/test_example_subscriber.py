"""The documented example subscriber works against the real broker: binds, validates, dedupes on id."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

from eventkit.credentials import development_secret, with_credentials
from eventkit.testing import make_envelope, publish_raw
from secondopinion_contracts.codes import Mode
from secondopinion_contracts.events.intake import CaseAccepted
from secondopinion_contracts.schemas import SCHEMA_DIR

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "subscriber.py"


async def test_the_example_subscriber_processes_once_and_rejects_invalid(rabbitmq_url: str, tmp_path: Path) -> None:
    # The exchange must exist before the example binds (it declares it passively, as a consumer should).
    await publish_raw(rabbitmq_url, b"{}", "nobody.listens")
    # As other hospital systems run it: the subscriber user, which may only use queues named `subscriber.*`.
    subscriber = with_credentials(rabbitmq_url, "subscriber", development_secret("subscriber", "rabbitmq_password"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--url", subscriber, "--queue", "subscriber.example", "--binding", "intake.#",
        "--schemas", str(SCHEMA_DIR),
        "--state", str(tmp_path / "seen.sqlite3"), "--limit", "3", stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(1.5)  # let it declare and bind its queue
    accepted = make_envelope(CaseAccepted(case_id=uuid.uuid4(), department="hematology", mode=Mode.IN_PERSON,
                                          screened_by="dr-1"))
    for _ in range(2):
        await publish_raw(rabbitmq_url, accepted.to_json_bytes(), accepted.routing_key, message_id=str(accepted.id))
    broken = json.loads(accepted.to_json_bytes())
    broken["id"] = str(uuid.uuid4())
    broken["data"]["mode"] = "telepathy"
    await publish_raw(rabbitmq_url, json.dumps(broken).encode(), accepted.routing_key)
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [line["outcome"] for line in lines] == ["processed", "duplicate", "invalid"]
    assert lines[0]["type"] == "secondopinion.intake.CaseAccepted.v1"
    assert "telepathy" in lines[2]["error"]
