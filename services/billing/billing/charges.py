"""The charge worker: charges the online fees that were requested, through the payment-gateway port.

It runs beside the consumer in every replica, never inside a database transaction: it leases due rows of
`charge_queue` (so replicas do not call the gateway for the same charge at once), calls the gateway with
the attempt's idempotency key, and records the outcome as events of the invoice. A timeout or a 5xx
leaves the outcome unknown: the same key is tried again after an exponential backoff, so a charge that
went through is answered, not repeated; after `max_tries` the attempt is recorded as PaymentFailed
(gateway_timeout / gateway_error) and the desk may retry it, still with the same key. A decline is final
for its key and is recorded as PaymentFailed(card_declined).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC

import asyncpg
from prometheus_client import Counter

from billing.charge_queue import ChargeQueue, DueCharge
from billing.commands import ChargeCaptured, ChargeOutcome, ChargeUnavailable, RecordChargeOutcome
from billing.gateway import ChargeRequest, GatewayUnavailable, PaymentGateway
from billing.projections import CHARGES_CHANNEL
from eventkit.bootstrap import Dispatcher
from eventkit.clock import Clock
from eventkit.events import Actor, CommandContext
from eventkit.worker import BackgroundWorker

log = logging.getLogger(__name__)

SERVICE = "billing"
GATEWAY_CALLS = Counter("billing_gateway_calls_total", "Payment gateway calls by outcome", ["outcome"])


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 6
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 120.0

    def delay(self, tries: int) -> float:
        """Exponential backoff with jitter, so that charges failing together do not retry in lockstep."""
        ceiling = min(self.backoff_seconds * 2.0 ** (tries - 1), self.backoff_max_seconds)
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311


class ChargeWorker(BackgroundWorker):
    def __init__(self, queue: ChargeQueue, handle: Dispatcher, clock: Clock, gateway: PaymentGateway, *, dsn: str,
                 policy: RetryPolicy, gateway_timeout: float, sweep_seconds: float = 1.0,
                 concurrency: int = 4) -> None:
        super().__init__("billing-charge-worker", sweep_interval=sweep_seconds, retry_delay=sweep_seconds)
        self.queue = queue
        self.handle = handle
        self.clock = clock
        self.gateway = gateway
        self.dsn = dsn
        self.policy = policy
        self.concurrency = concurrency
        # Longer than one gateway call can take, so a lease only lapses when its holder died.
        self.lease_seconds = gateway_timeout + 30.0

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Lets the gateway calls in flight be answered and recorded (within the grace period), then closes."""
        await super().stop(grace_seconds)
        await self.gateway.aclose()

    async def session(self) -> None:
        listener = await asyncpg.connect(self.dsn)
        try:
            await listener.add_listener(CHARGES_CHANNEL, self.wake)
            while not self.stopping:
                self.expect_work()
                if await self.work_once() < self.concurrency:
                    # Woken by a new request (NOTIFY), or after the sweep interval for retries that fell due.
                    await self.wait_for_work()
        finally:
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)

    async def work_once(self) -> int:
        """Charge what is due now (up to `concurrency` at a time); returns how many were taken."""
        due = await self.queue.claim(self.concurrency, self.lease_seconds)
        results = await asyncio.gather(*(self._charge(charge) for charge in due), return_exceptions=True)
        for charge, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                # Left leased: it is tried again, with the same key, once the lease lapses.
                log.error("charge %s could not be settled: %s", charge.idempotency_key, result.__class__.__name__,
                          exc_info=result)
        return len(due)

    async def _charge(self, charge: DueCharge) -> None:
        request = ChargeRequest(idempotency_key=charge.idempotency_key, invoice_id=charge.invoice_id,
                                amount=charge.amount)
        outcome: ChargeOutcome
        try:
            outcome = await self.gateway.charge(request)
        except GatewayUnavailable as error:
            GATEWAY_CALLS.labels(error.reason.value).inc()
            if charge.tries < self.policy.max_tries:
                log.warning("charge %s: %s (try %d of %d), retrying", charge.idempotency_key, error, charge.tries,
                            self.policy.max_tries)
                await self.queue.retry_later(charge, self.policy.delay(charge.tries), str(error))
                return
            outcome = ChargeUnavailable(reason=error.reason)
        else:
            GATEWAY_CALLS.labels("captured" if isinstance(outcome, ChargeCaptured) else "declined").inc()
        command = RecordChargeOutcome(invoice_id=charge.invoice_id, attempt=charge.attempt, outcome=outcome,
                                      at=self.clock().astimezone(UTC))
        context = CommandContext(actor=Actor.service(SERVICE), correlation_id=str(charge.case_id),
                                 causation_id=f"charge:{charge.idempotency_key}", command="RecordChargeOutcome")
        recorded = await self.handle(command, context)
        if not recorded:
            await self.queue.discard(charge)  # the attempt was settled already: nothing left to do
