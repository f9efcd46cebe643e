"""The payment-gateway port: charge the card registered on the telemedicine platform, idempotently.

The platform (CLINICS, operated by Medley, Inc.) intermediates the payment; billing only asks it to
charge an amount for an invoice. Adapters: `gateway_http.HttpPaymentGateway` (its HTTP payment API);
`gateway_simulator` is that API's stand-in for local runs and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from billing.commands import ChargeCaptured, ChargeDeclined
from secondopinion_contracts.codes import PaymentFailureReason


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    invoice_id: UUID
    amount: int
    currency: str = "JPY"


class GatewayUnavailable(Exception):
    """No answer that settles the charge (timeout, connection failure, 5xx): retry with the same key."""

    def __init__(self, reason: PaymentFailureReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class PaymentGateway(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeCaptured | ChargeDeclined:
        """Charge once per idempotency key: repeating a key returns the first call's outcome.

        Raises GatewayUnavailable when the outcome is unknown.
        """
        ...

    async def aclose(self) -> None: ...
