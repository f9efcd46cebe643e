"""The four services' HTTP APIs, called with the signed-in person's own bearer token: every service still
authorizes, audits and decides. A refusal comes back as the service's `code` and `reasons`, never raised."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

SERVICES = ("intake", "scheduling", "billing", "reporting")
# What the desk passes on of a printed document's answer: the file name is the service's (ids only).
DOCUMENT_HEADERS = ("content-type", "content-disposition", "x-document-sha256")


@dataclass
class Answer:
    """A service's answer: `ok` with its body, or why not (`code`, `reasons`, field errors from a 422)."""

    status: int
    body: Any = None
    service: str | None = None
    code: str | None = None
    reasons: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    # A document's bytes and the headers it came with (`document`); the body then stays None.
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def signed_out(self) -> bool:
        return self.status == 401


class Backends:
    def __init__(self, urls: dict[str, str], timeout: float,
                 transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> None:
        # `transports` (tests): a service's app in process instead of its URL.
        self._clients = {name: httpx.AsyncClient(base_url=urls[name], timeout=timeout,
                                                 transport=(transports or {}).get(name))
                         for name in SERVICES}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def call(self, service: str, method: str, path: str, token: str, *, json: Any = None,
                   params: dict[str, Any] | None = None) -> Answer:
        client = self._clients[service]
        try:
            response = await client.request(method, path, json=json, params=params,
                                            headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            # The path may hold a case id, never personal data; the body is not logged.
            log.warning("%s %s %s unreachable: %s", service, method, path, error.__class__.__name__)
            return Answer(status=503, code="unreachable", service=service)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return Answer(status=response.status_code, body=body, service=service)
        answer = _refusal(response.status_code, body)
        answer.service = service
        return answer

    async def document(self, service: str, path: str, token: str) -> Answer:
        """A printed document (a PDF) as the service answered it: its bytes and the headers that go with it."""
        client = self._clients[service]
        try:
            response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            log.warning("%s GET %s unreachable: %s", service, path, error.__class__.__name__)
            return Answer(status=503, code="unreachable", service=service)
        if response.is_success:
            return Answer(status=response.status_code, service=service, content=response.content,
                          headers={name: response.headers[name] for name in DOCUMENT_HEADERS
                                   if name in response.headers})
        try:
            body = response.json()
        except ValueError:
            body = None
        answer = _refusal(response.status_code, body)
        answer.service = service
        return answer

    async def get(self, service: str, path: str, token: str, **params: Any) -> Answer:
        return await self.call(service, "GET", path, token,
                               params={key: value for key, value in params.items() if value is not None})

    async def post(self, service: str, path: str, token: str, body: Any = None) -> Answer:
        return await self.call(service, "POST", path, token, json=body)


def _refusal(status: int, body: Any) -> Answer:
    body = body if isinstance(body, dict) else {}
    detail = body.get("detail")
    if status == 422 and isinstance(detail, list):
        # FastAPI's validation errors: the field each is about, by its last name in `loc`.
        fields = {}
        for error in detail:
            location = [str(part) for part in error.get("loc", []) if part not in ("body", "query", "path")]
            fields[".".join(location) or "form"] = str(error.get("msg", ""))
        return Answer(status=status, code="invalid", fields=fields, body=body)
    code = body.get("code") or {401: "signed_out", 403: "forbidden", 404: "not_found", 410: "gone",
                                503: "unavailable"}.get(status, "conflict")
    reasons = [str(reason) for reason in body.get("reasons") or []]
    return Answer(status=status, body=body, code=code, reasons=reasons)
