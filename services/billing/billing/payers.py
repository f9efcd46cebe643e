"""The payer's name on a receipt, without billing ever keeping it in clear.

Intake publishes the requester's name in CaseSubmitted sealed with the case's own key (eventkit.crypto), and
keeps the key. Billing stores the sealed name as it came, and only when a cashier prints a receipt asks intake
for the key, relaying the cashier's own token so that intake's access log names the person who read it. After
the case's personal data is erased intake answers 410 and the receipt shows the name masked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import httpx
from cryptography.exceptions import InvalidTag

from eventkit.crypto import MASK, from_text, open_with
from eventkit.db import Conn
from eventkit.unit_of_work import UnitOfWork, connection_of

log = logging.getLogger(__name__)


class IntakeUnavailable(Exception):
    """Intake could not say (unreachable, 5xx): the receipt can be printed again in a moment."""


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


@dataclass(frozen=True)
class IntakeKeys:
    """Intake's `GET /cases/{id}/personal-data/key`, called with the cashier's own bearer token."""

    base_url: str
    timeout: float = 5.0
    transport: httpx.AsyncBaseTransport | None = None

    async def key(self, case_id: UUID, authorization: str) -> bytes | None:
        """The case's key, or None once it was erased."""
        try:
            async with httpx.AsyncClient(base_url=self.base_url.rstrip("/"), timeout=self.timeout,
                                         transport=self.transport) as client:
                response = await client.get(f"/cases/{case_id}/personal-data/key",
                                            headers={"Authorization": authorization})
        except httpx.HTTPError as error:
            raise IntakeUnavailable(f"intake did not answer: {error.__class__.__name__}") from error
        if response.status_code == 410:
            return None
        if response.status_code != 200:
            raise IntakeUnavailable(f"intake answered {response.status_code} for the case's key")
        return from_text(response.json()["key"])

    async def payer_name(self, case_id: UUID, sealed: str | None, authorization: str) -> str | None:
        """The payer's name in clear, MASK once erased, None if intake never sent one."""
        if sealed is None:
            return None
        key = await self.key(case_id, authorization)
        if key is None:
            return MASK
        try:
            name = open_with(key, case_id, from_text(sealed)).get("payer_name")
        except (InvalidTag, ValueError):
            log.error("the sealed payer name of a case does not open with its key")
            return MASK
        return str(name) if name is not None else None
