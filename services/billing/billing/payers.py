"""The payer's name on a receipt, without billing ever keeping it in clear.

Intake publishes the requester's name in CaseSubmitted sealed with the case's own key (eventkit.crypto), and
keeps the key: it never leaves intake. Billing stores the sealed name as it came; when a cashier prints a
receipt, billing asks intake with its own service token, forwarding the cashier's, and intake opens the name
and answers it for this receipt only (its access log names the cashier and billing). After the case's
personal data is erased intake answers *** and so does the receipt.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from eventkit.db import Conn
from eventkit.service_identity import IntakeDisclosure
from eventkit.unit_of_work import UnitOfWork, connection_of


async def save_sealed_payer(conn: Conn, case_id: UUID, sealed: str) -> None:
    await conn.execute(
        "INSERT INTO case_payers (case_id, payer_name_sealed) VALUES ($1, $2) ON CONFLICT (case_id) DO NOTHING",
        case_id, sealed)


async def sealed_payer(conn: Conn, case_id: UUID) -> str | None:
    sealed: str | None = await conn.fetchval("SELECT payer_name_sealed FROM case_payers WHERE case_id = $1", case_id)
    return sealed


class SealedPayers(Protocol):
    """The payers' names as intake sealed them, kept in the handler's unit of work. `PostgresSealedPayers` in the
    service; a fake in handler tests."""

    async def keep(self, uow: UnitOfWork, case_id: UUID, sealed: str) -> None:
        """Kept once per case (a repeat keeps the first)."""
        ...


class PostgresSealedPayers:
    async def keep(self, uow: UnitOfWork, case_id: UUID, sealed: str) -> None:
        await save_sealed_payer(await connection_of(uow), case_id, sealed)


async def payer_name(intake: IntakeDisclosure, case_id: UUID, authorization: str) -> str | None:
    """The payer's name as intake opens it for a receipt (*** once erased; None if none was recorded)."""
    name = (await intake.personal_data(case_id, "receipt", authorization)).get("payer_name")
    return str(name) if name is not None else None
