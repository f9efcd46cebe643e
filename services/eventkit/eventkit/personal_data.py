"""The personal data a printed document needs, read from intake at print time (scheduling's appointment slip,
reporting's report letter): the staff member's own bearer token is relayed, so intake checks their role and its
access log names them. Nothing is kept: the names and addresses live only in the PDF being answered. After the
case's personal data is erased intake answers every field as *** (eventkit.crypto.MASK)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import httpx
from fastapi import HTTPException

PrintedDocument = Literal["slip", "report"]


@dataclass(frozen=True)
class IntakePersonalData:
    """Intake's `GET /cases/{id}/personal-data/documents/{document}`."""

    base_url: str
    timeout: float = 5.0
    transport: httpx.AsyncBaseTransport | None = None

    async def for_document(self, case_id: UUID, document: PrintedDocument, authorization: str) -> dict[str, Any]:
        """The fields the document prints and `received_documents` (kinds); 503 (try again) when intake cannot
        say, its 403/404 passed on."""
        try:
            async with httpx.AsyncClient(base_url=self.base_url.rstrip("/"), timeout=self.timeout,
                                         transport=self.transport) as client:
                response = await client.get(f"/cases/{case_id}/personal-data/documents/{document}",
                                            headers={"Authorization": authorization})
        except httpx.HTTPError as error:
            raise HTTPException(503, detail=f"intake did not answer ({error.__class__.__name__}); try again",
                                headers={"Retry-After": "2"}) from error
        if response.status_code in (403, 404):
            raise HTTPException(response.status_code, detail=f"intake: {response.json().get('detail')}")
        if response.status_code != 200:
            raise HTTPException(503, detail=f"intake answered {response.status_code}; try again",
                                headers={"Retry-After": "2"})
        body = response.json()
        fields: dict[str, Any] = body["fields"]
        return {**fields, "received_documents": body.get("received_documents", [])}
