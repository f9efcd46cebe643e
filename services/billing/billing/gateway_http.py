"""The payment gateway over its HTTP API (httpx): `POST /v1/charges` with an `Idempotency-Key` header.

201/200 with `status: succeeded` is a capture; 402 with an error code is a decline (final for that key);
anything else (timeout, connection error, 5xx, 409 "same key still in progress", an unexpected reply)
leaves the outcome unknown and is raised as GatewayUnavailable, to be retried with the same key.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from billing.commands import ChargeCaptured, ChargeDeclined
from billing.gateway import ChargeRequest, GatewayUnavailable
from secondopinion_contracts.codes import PaymentFailureReason

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"


class HttpPaymentGateway:
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                         transport=transport)

    async def charge(self, request: ChargeRequest) -> ChargeCaptured | ChargeDeclined:
        body = {"amount": request.amount, "currency": request.currency, "reference": str(request.invoice_id),
                "description": "Second-opinion consultation fee"}
        try:
            response = await self._client.post("/v1/charges", json=body,
                                               headers={IDEMPOTENCY_HEADER: request.idempotency_key})
        except httpx.TimeoutException as error:
            raise GatewayUnavailable(PaymentFailureReason.GATEWAY_TIMEOUT, error.__class__.__name__) from None
        except httpx.TransportError as error:
            raise GatewayUnavailable(PaymentFailureReason.GATEWAY_ERROR, error.__class__.__name__) from None
        payload = _json(response)
        if response.status_code in (200, 201) and payload.get("status") == "succeeded":
            if payload.get("amount") != request.amount or not isinstance(payload.get("id"), str):
                raise GatewayUnavailable(PaymentFailureReason.GATEWAY_ERROR,
                                         f"unexpected charge in the reply to {request.idempotency_key}")
            return ChargeCaptured(charge_id=payload["id"])
        if response.status_code == 402:
            details = payload.get("error") or {}
            code = details.get("code") if isinstance(details, dict) else None
            return ChargeDeclined(code=str(code or "card_declined"))
        log.warning("payment gateway answered %s for %s", response.status_code, request.idempotency_key)
        raise GatewayUnavailable(PaymentFailureReason.GATEWAY_ERROR, f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}
