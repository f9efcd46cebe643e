"""The charge worker's work list: the online charges requested and not yet settled (charge_queue, kept by
projections.ChargeQueueProjection), leased to one replica's worker at a time."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class DueCharge:
    invoice_id: UUID
    case_id: UUID
    attempt: int
    idempotency_key: str
    amount: int
    tries: int


@dataclass(frozen=True)
class ChargeQueue:
    pool: asyncpg.Pool

    async def claim(self, limit: int, lease_seconds: float) -> list[DueCharge]:
        """Lease due charges, so that one replica's worker calls the gateway for each at a time."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """UPDATE charge_queue q
                   SET leased_until = now() + make_interval(secs => $2), tries = q.tries + 1
                   FROM (SELECT invoice_id FROM charge_queue
                         WHERE next_try_at <= now() AND (leased_until IS NULL OR leased_until < now())
                         ORDER BY next_try_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
                   WHERE q.invoice_id = due.invoice_id
                   RETURNING q.invoice_id, q.case_id, q.attempt, q.idempotency_key, q.amount, q.tries""",
                limit, lease_seconds)
        return [DueCharge(**dict(row)) for row in rows]

    async def retry_later(self, charge: DueCharge, delay_seconds: float, error: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                """UPDATE charge_queue SET leased_until = NULL, last_error = $3,
                       next_try_at = now() + make_interval(secs => $4)
                   WHERE invoice_id = $1 AND attempt = $2""",
                charge.invoice_id, charge.attempt, error[:500], delay_seconds)

    async def discard(self, charge: DueCharge) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM charge_queue WHERE invoice_id = $1 AND attempt = $2",
                               charge.invoice_id, charge.attempt)
