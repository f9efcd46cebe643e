"""A service's own identity toward another service, and the person it acts for.

Personal data never leaves intake on a person's role alone: billing (receipts), scheduling (appointment slips)
and reporting (report letters) each ask intake with their OWN token (OAuth 2.0 client credentials from the
identity provider; in development one minted with the development key, subject `service:<name>`), and forward
the staff member's token in `X-On-Behalf-Of` so that intake checks that person's role too and its access log
names both. The caller side is `IntakeDisclosure.personal_data`, the one helper all three call; the receiving
side is the `allow_service` dependency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any
from uuid import UUID

import httpx
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.auth import ROLES, _bearer, mint_development_token, signed_in_member, verified_claims
from eventkit.staff import StaffMember

SERVICE_SUBJECT_PREFIX = "service:"
ON_BEHALF_OF = "X-On-Behalf-Of"
# Development service tokens live this long; a fresh one is taken a minute before the held one expires.
DEVELOPMENT_TOKEN_SECONDS = 600
_RENEW_AHEAD_SECONDS = 60


class ServiceIdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    # Production: the identity provider's token endpoint and this service's client credentials.
    service_token_url: str | None = Field(None, validation_alias="SERVICE_TOKEN_URL")
    service_client_id: str | None = Field(None, validation_alias="SERVICE_CLIENT_ID")
    service_client_secret: str | None = Field(None, validation_alias="SERVICE_CLIENT_SECRET")
    # The token subjects of the services: {subject: service}. Development: `service:<name>`.
    service_subjects: dict[str, str] = Field(
        {f"{SERVICE_SUBJECT_PREFIX}{name}": name for name in ("billing", "scheduling", "reporting")},
        validation_alias="SERVICE_SUBJECTS")


@cache
def _settings() -> ServiceIdentitySettings:
    return ServiceIdentitySettings()


def is_service_subject(subject: object) -> bool:
    """A service's token subject: such a token never acts for a person (eventkit.auth refuses it there)."""
    return isinstance(subject, str) and (
        subject.startswith(SERVICE_SUBJECT_PREFIX) or subject in _settings().service_subjects)


@dataclass
class ServiceCredentials:
    """This service's own bearer token, renewed before it expires."""

    service: str
    settings: ServiceIdentitySettings = field(default_factory=_settings)
    transport: httpx.AsyncBaseTransport | None = None
    _token: str = ""
    _expires_at: float = 0.0

    async def token(self) -> str:
        if time.time() < self._expires_at - _RENEW_AHEAD_SECONDS:
            return self._token
        if self.settings.service_token_url:
            token, lifetime = await self._client_credentials()
        else:
            token = mint_development_token(f"{SERVICE_SUBJECT_PREFIX}{self.service}", [],
                                           lifetime_seconds=DEVELOPMENT_TOKEN_SECONDS)
            lifetime = DEVELOPMENT_TOKEN_SECONDS
        self._token, self._expires_at = token, time.time() + lifetime
        return token

    async def _client_credentials(self) -> tuple[str, int]:
        assert self.settings.service_token_url
        async with httpx.AsyncClient(timeout=5.0, transport=self.transport) as client:
            response = await client.post(self.settings.service_token_url, data={"grant_type": "client_credentials"},
                                         auth=(self.settings.service_client_id or self.service,
                                               self.settings.service_client_secret or ""))
        response.raise_for_status()
        body = response.json()
        return str(body["access_token"]), int(body.get("expires_in", 300))


@dataclass(frozen=True)
class ServiceCall:
    """A call from another service: which one, and the staff member it acts for."""

    service: str
    person: StaffMember


def allow_service(*services: str) -> Callable[..., Coroutine[Any, Any, ServiceCall]]:
    """A dependency admitting only the services named, each forwarding a signed-in staff member's token."""

    async def authorized(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ServiceCall:
        claims = await verified_claims(request, credentials)
        service = _settings().service_subjects.get(str(claims["sub"]))
        if service is None:
            raise HTTPException(403, f"only the {', '.join(services)} service may call this, not a person")
        if service not in services:
            raise HTTPException(403, f"the {service} service may not call this")
        forwarded = request.headers.get(ON_BEHALF_OF, "")
        scheme, _, token = forwarded.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(403, f"{ON_BEHALF_OF} must carry the staff member's bearer token")
        person = await signed_in_member(request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token),
                                        ROLES)
        return ServiceCall(service, person)

    authorized.allowed_roles = tuple(f"{SERVICE_SUBJECT_PREFIX}{s}" for s in services)  # type: ignore[attr-defined]
    return authorized


BESIDE_FIELDS = ("received_documents", "case_number")


@dataclass
class IntakeDisclosure:
    """Intake's `GET /cases/{id}/personal-data/for/{purpose}`: the fields one purpose needs, opened by intake."""

    base_url: str
    credentials: ServiceCredentials
    timeout: float = 5.0
    transport: httpx.AsyncBaseTransport | None = None

    async def personal_data(self, case_id: UUID, purpose: str, on_behalf_of: str) -> Mapping[str, Any]:
        """The purpose's fields (*** each once erased). `on_behalf_of` is the staff member's Authorization
        header. 503 (try again) when intake cannot say; its 403/404/409 passed on."""
        try:
            headers = {"Authorization": f"Bearer {await self.credentials.token()}", ON_BEHALF_OF: on_behalf_of}
            async with httpx.AsyncClient(base_url=self.base_url.rstrip("/"), timeout=self.timeout,
                                         transport=self.transport) as client:
                response = await client.get(f"/cases/{case_id}/personal-data/for/{purpose}", headers=headers)
        except httpx.HTTPError as error:
            raise HTTPException(503, detail=f"intake did not answer ({error.__class__.__name__}); try again",
                                headers={"Retry-After": "2"}) from error
        if response.status_code in (403, 404, 409):
            raise HTTPException(response.status_code, detail=f"intake: {response.json().get('detail')}")
        if response.status_code != 200:
            raise HTTPException(503, detail=f"intake answered {response.status_code}; try again",
                                headers={"Retry-After": "2"})
        body = response.json()
        fields: dict[str, Any] = body["fields"]
        # Beside the fields, not personal data: the slip's kinds of documents received so far, and the slip's and
        # the report's case number.
        return {**fields, **{name: body[name] for name in BESIDE_FIELDS if name in body}}


def intake_disclosure(service: str, base_url: str,
                      transport: httpx.AsyncBaseTransport | None = None) -> IntakeDisclosure:
    """Intake, asked with `service`'s own token: what billing, scheduling and reporting print with."""
    return IntakeDisclosure(base_url, ServiceCredentials(service), transport=transport)
