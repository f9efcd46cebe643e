"""The access log against the real PostgreSQL and its roles: the service's runtime role can neither change the log
nor switch its guard off, the chain is keyed (a row rewritten with a recomputed plain hash is noticed), the newest
rows cannot be removed unnoticed (the head is anchored outside the database), and refusals and bulk listings are
logged too."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from eventkit.audit import GENESIS
from eventkit.testing import bearer, fetch, running_app, scalar
from intake.settings import IntakeSettings

CASE = {
    "requester": {"relationship": "self", "name": "A"}, "patient": {"name": "A", "birth_date": "1970-01-01"},
    "mode": "online", "department": "hematology", "question": "q",
    "attending_physician": {"name": "B", "institution": "C", "consents": True},
    "wants_treatment_here": False, "complaint_or_litigation": False}
AUDITOR = bearer("auditor", subject="audit-1")


@dataclass
class Intake:
    client: httpx.AsyncClient
    settings: IntakeSettings
    database: str  # the owner's (a superuser here: what an intruder with the database's keys could do)
    anchor: Path

    async def read_case(self, reader: str = "dr-1") -> str:
        created = await self.client.post("/cases", headers=bearer("coordinator"), json=CASE)
        case_id: str = created.json()["case_id"]
        assert (await self.client.get(f"/cases/{case_id}", headers=bearer("physician", subject=reader))
                ).status_code == 200
        return case_id

    async def verify(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get("/audit/access-log/verify", headers=AUDITOR, params=params)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
async def intake(database: str, rabbitmq_url: str, tmp_path: Path) -> AsyncIterator[Intake]:
    from intake.bootstrap import build

    anchor = tmp_path / "intake-access-log-head.json"
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url,
                              access_log_anchor=str(anchor))
    async with running_app(build(settings)) as client:
        yield Intake(client, settings, database, anchor)


async def as_superuser(database: str, *statements: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("SET session_replication_role = replica")  # triggers off: only a superuser may
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_the_service_runs_as_a_role_that_cannot_change_the_log_or_switch_its_guard_off(
        intake: Intake) -> None:
    await intake.read_case()
    runtime_dsn = intake.settings.database_url
    assert runtime_dsn.startswith("postgresql://intake_app:")
    conn = await asyncpg.connect(runtime_dsn)
    try:
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET session_replication_role = replica")
        for statement in ("UPDATE access_log SET actor_id = 'someone-else'", "DELETE FROM access_log",
                          "TRUNCATE access_log", "ALTER TABLE access_log DISABLE TRIGGER access_log_no_change",
                          "DROP TABLE access_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        # What it needs it has: reading and appending.
        assert await conn.fetchval("SELECT count(*) FROM access_log") == 1
    finally:
        await conn.close()


async def test_a_row_rewritten_with_a_recomputed_plain_hash_breaks_the_chain(intake: Intake) -> None:
    await intake.read_case("dr-1")
    await intake.read_case("dr-2")
    assert (await intake.verify())["intact"] is True
    rows = await fetch(intake.database, "SELECT * FROM access_log ORDER BY id")
    # The first entry's reader changed, and the whole chain recomputed after it as an unkeyed chain would be.
    prev_hash = GENESIS
    statements = []
    for row in rows:
        actor_id = "someone-else" if row["id"] == rows[0]["id"] else row["actor_id"]
        material = "\x1f".join([prev_hash, row["at"].isoformat(), actor_id, row["actor_role"], row["case_id"],
                                row["action"]])
        digest = hashlib.sha256(material.encode()).hexdigest()
        statements.append(f"UPDATE access_log SET actor_id = '{actor_id}', prev_hash = '{prev_hash}', "
                          f"hash = '{digest}' WHERE id = {row['id']}")
        prev_hash = digest
    await as_superuser(intake.database, *statements)
    verified = await intake.verify()
    assert verified["intact"] is False
    assert verified["broken_at_id"] == rows[0]["id"]


async def test_removing_the_newest_entries_is_noticed_against_the_anchored_head(intake: Intake) -> None:
    await intake.read_case("dr-1")
    await intake.read_case("dr-2")
    [newest] = await fetch(intake.database, "SELECT id, hash FROM access_log ORDER BY id DESC LIMIT 1")
    anchored = json.loads(intake.anchor.read_text())
    assert (anchored["id"], anchored["hash"]) == (newest["id"], newest["hash"])
    before = await intake.verify(head_id=newest["id"], head_hash=newest["hash"])
    assert before["intact"] is True
    assert before["anchor_head_matches"] is True
    assert before["archived_head_matches"] is True

    await as_superuser(intake.database, f"DELETE FROM access_log WHERE id = {newest['id']}")
    after = await intake.verify(head_id=newest["id"], head_hash=newest["hash"])
    assert after["intact"] is False
    assert after["broken_at_id"] is None  # what is left is a chain: only the anchor tells
    assert after["anchor_head_matches"] is False
    assert after["archived_head_matches"] is False


async def test_a_forged_anchor_file_is_not_believed(intake: Intake) -> None:
    await intake.read_case()
    anchored = json.loads(intake.anchor.read_text())
    intake.anchor.write_text(json.dumps({**anchored, "id": anchored["id"] - 1}))
    verified = await intake.verify()
    assert verified["intact"] is False
    assert verified["anchor_head_matches"] is False


async def test_refusals_and_bulk_listings_are_in_the_access_log(intake: Intake) -> None:
    case_id = await intake.read_case()
    refused = await intake.client.get(f"/cases/{case_id}", headers=bearer("cashier", subject="cash-3"))
    assert refused.status_code == 403
    assert (await intake.client.get("/audit/access-log", headers=bearer("coordinator", subject="coord-4"))
            ).status_code == 403
    assert (await intake.client.get("/cases", params={"limit": 5}, headers=bearer("physician", subject="dr-5"))
            ).status_code == 200
    rows = await fetch(intake.database, "SELECT actor_id, actor_role, case_id, action FROM access_log ORDER BY id")
    assert [tuple(row) for row in rows[1:]] == [
        ("cash-3", "cashier", case_id, "refused GET /cases/{case_id}"),
        ("coord-4", "coordinator", "*", "refused GET /audit/access-log"),
        ("dr-5", "physician", "*", "list_cases?limit=5"),
    ]
    assert (await intake.verify())["intact"] is True
    assert await scalar(intake.database, "SELECT last_id FROM access_log_unkeyed") == 0


async def test_a_service_that_does_not_migrate_holds_no_owners_credentials(database: str, rabbitmq_url: str) -> None:
    from eventkit import db_roles
    from intake.bootstrap import build, runtime_for

    owner = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    await db_roles.prepare(owner, runtime_for(owner).migrations)  # what the migration job does, as the owner
    name = database.rsplit("/", 1)[1]
    settings = IntakeSettings(INTAKE_DATABASE_URL=f"postgresql://127.0.0.1:5432/{name}", RABBITMQ_URL=rabbitmq_url,
                              MIGRATE_ON_START=False)
    async with running_app(build(settings)) as client:
        assert (await client.post("/cases", headers=bearer("coordinator"), json=CASE)).status_code == 201
        users = await fetch(database, "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = $1"
                                      " AND pid <> pg_backend_pid()", name)
    assert [row["usename"] for row in users] == ["intake_app"]


async def test_the_access_log_pages_back_by_the_last_entry_shown(intake: Intake) -> None:
    for reader in ("dr-1", "dr-2", "dr-3"):
        await intake.read_case(reader)

    async def entries(**params: Any) -> list[int]:
        response = await intake.client.get("/audit/access-log", headers=AUDITOR, params=params)
        assert response.status_code == 200, response.text
        return [entry["id"] for entry in response.json()["entries"]]

    first = await entries(limit=2)
    older = await entries(limit=2, before_id=first[-1])
    # Each listing is logged too: the whole, as it stood when the first page was read, ends at its newest entry.
    assert first + older == await entries(limit=4, before_id=first[0] + 1)
    assert first == sorted(first, reverse=True), "newest first"
    assert (await intake.client.get("/audit/access-log", headers=AUDITOR, params={"before_id": 0})).status_code == 422


async def test_replicas_starting_at_once_prepare_the_database_without_tripping_over_each_other(
        database: str, rabbitmq_url: str) -> None:
    import asyncio

    from eventkit import db_roles
    from intake.bootstrap import runtime_for

    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    migrations = runtime_for(settings).migrations
    await db_roles.prepare(settings, migrations)
    # Eight replicas at once, as a Deployment scaled up with MIGRATE_ON_START: each grants on the same catalog rows.
    for _ in range(3):
        results = await asyncio.gather(*(db_roles.prepare(settings, migrations) for _ in range(8)),
                                       return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
