"""Who is calling: bearer JWTs (RS256) with staff roles, checked on every HTTP endpoint.

Production verifies signatures with the identity provider's keys from `JWT_JWKS_URL`; development uses
the repository's fixed key pair (devkeys/), which the production profile refuses. Issuer, audience and
expiry are always checked, with a small leeway for clock skew. A token names its holder (`sub`) and
the roles they hold (`roles`, or a single `role`); an endpoint states the roles whose work it is. A token
must name a subject, hold its roles as strings and live at most `JWT_MAX_LIFETIME_SECONDS` (12 h by default);
who the subject is (staff id, name, departments) comes from the staff directory (eventkit.staff).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.events import Actor
from eventkit.staff import StaffDirectory, StaffMember

log = logging.getLogger(__name__)

# The roles of the people who work at the desk (the console offers these).
STAFF_ROLES = ("coordinator", "physician", "cashier", "auditor", "privacy_officer")
# `integration`: another hospital system reading the catch-up feed (eventkit.feed), and nothing else.
ROLES = (*STAFF_ROLES, "integration")
# A signed-in shift at most; the development CLI mints shorter ones.
MAX_LIFETIME_SECONDS = 12 * 3600
CLI_DEFAULT_MINUTES = 60
DEV_KEYS = Path(__file__).resolve().parent / "devkeys"
DEV_PRIVATE_KEY = DEV_KEYS / "development-private.pem"
DEV_PUBLIC_KEY = DEV_KEYS / "development-public.pem"
DEV_ISSUER = "https://idp.secondopinion.local/dev"
DEV_AUDIENCE = "secondopinion-desk"


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    jwt_issuer: str = Field(DEV_ISSUER, validation_alias="JWT_ISSUER")
    jwt_audience: str = Field(DEV_AUDIENCE, validation_alias="JWT_AUDIENCE")
    jwt_jwks_url: str | None = Field(None, validation_alias="JWT_JWKS_URL")
    jwt_public_key_file: Path | None = Field(None, validation_alias="JWT_PUBLIC_KEY_FILE")
    jwt_leeway_seconds: int = Field(30, validation_alias="JWT_LEEWAY_SECONDS", ge=0, le=300)
    jwt_max_lifetime_seconds: int = Field(MAX_LIFETIME_SECONDS, validation_alias="JWT_MAX_LIFETIME_SECONDS",
                                          ge=60, le=MAX_LIFETIME_SECONDS)

    def uses_development_key(self) -> bool:
        if self.jwt_jwks_url:
            return False
        key_file = self.jwt_public_key_file or DEV_PUBLIC_KEY
        return key_file.read_text().strip() == DEV_PUBLIC_KEY.read_text().strip()


# A request that needs the identity provider's keys waits at most this long for them: then it is a 503.
JWKS_FETCH_TIMEOUT_SECONDS = 5.0


class TokenVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient | None:
        if not self.settings.jwt_jwks_url:
            return None
        return jwt.PyJWKClient(self.settings.jwt_jwks_url, cache_keys=True, timeout=JWKS_FETCH_TIMEOUT_SECONDS)

    async def verify_in_background(self, token: str) -> dict[str, Any]:
        """`verify`, off the event loop when it may fetch the identity provider's keys over HTTP (PyJWKClient is
        synchronous: at start, when the cached key set expires, on an unknown key id), so that a slow or
        unreachable provider holds up only the requests that need its keys."""
        if self._jwks is None:
            return self.verify(token)
        return await asyncio.to_thread(self.verify, token)

    @cached_property
    def _public_key(self) -> str:
        return (self.settings.jwt_public_key_file or DEV_PUBLIC_KEY).read_text()

    def verify(self, token: str) -> dict[str, Any]:
        key: Any = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._public_key
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["RS256"], audience=self.settings.jwt_audience, issuer=self.settings.jwt_issuer,
            leeway=self.settings.jwt_leeway_seconds, options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise jwt.InvalidTokenError("`sub` must be a non-empty string")
        if not isinstance(claims["exp"], int | float) or not isinstance(claims["iat"], int | float):
            raise jwt.InvalidTokenError("`exp` and `iat` must be numbers")
        if claims["exp"] - claims["iat"] > self.settings.jwt_max_lifetime_seconds:
            raise jwt.InvalidTokenError(
                f"the token lives longer than {self.settings.jwt_max_lifetime_seconds} seconds")
        held = claims.get("roles", claims.get("role", []))
        held = [held] if isinstance(held, str) else held
        if not isinstance(held, list) or not all(isinstance(role, str) for role in held):
            raise jwt.InvalidTokenError("`roles` must be a list of strings")
        return claims


def roles_of(claims: dict[str, Any]) -> list[str]:
    held = claims.get("roles", claims.get("role", []))
    held = [held] if isinstance(held, str) else held
    return [role for role in held if role in ROLES] if isinstance(held, list) else []


_bearer = HTTPBearer(auto_error=False, description="A JWT from the hospital's identity provider")


def _checked_roles(roles: tuple[str, ...]) -> None:
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles {sorted(unknown)}")


async def verified_claims(request: Request, credentials: HTTPAuthorizationCredentials | None) -> dict[str, Any]:
    """The claims of the request's bearer token: 401 without a valid one, 503 if the keys cannot be fetched."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return await verifier.verify_in_background(credentials.credentials)
    except jwt.PyJWKClientConnectionError as error:
        # Not the caller's fault, and not a verdict on the token: a 401 would send staff to log in again.
        log.warning("the identity provider's signing keys could not be fetched: %s", error)
        raise HTTPException(503, "the identity provider's signing keys could not be fetched; try again shortly",
                            headers={"Retry-After": "5"}) from None
    except jwt.PyJWTError as error:
        raise HTTPException(401, f"invalid token: {error}", headers={"WWW-Authenticate": "Bearer"}) from None


def staff_directory(request: Request) -> StaffDirectory:
    directory = getattr(request.app.state, "staff_directory", None)
    if directory is None:
        directory = request.app.state.staff_directory = StaffDirectory()
    assert isinstance(directory, StaffDirectory)
    return directory


async def signed_in_member(request: Request, credentials: HTTPAuthorizationCredentials | None,
                           roles: tuple[str, ...]) -> StaffMember:
    """The staff member behind the token, acting in the first of their roles that `roles` admits (else 403)."""
    claims = await verified_claims(request, credentials)
    from eventkit.service_identity import is_service_subject

    if is_service_subject(claims["sub"]):
        raise HTTPException(403, "a service's token does not act for a person")
    member = staff_directory(request).member(claims, roles_of(claims))
    acting = [role for role in member.roles if role in roles]
    if not acting:
        # Who was refused, for the access log (eventkit.audit writes every refusal).
        request.state.refused_actor = Actor(id=member.staff_id, role=",".join(member.roles))
        raise HTTPException(403, f"this needs one of the roles {', '.join(roles)}")
    member = replace(member, acting_role=acting[0])
    request.state.actor = member.actor
    request.state.staff = member
    return member


def allow_staff(*roles: str) -> Callable[..., Coroutine[Any, Any, StaffMember]]:
    """A dependency admitting staff holding one of `roles`, answering who they are (eventkit.staff.StaffMember)."""
    _checked_roles(roles)

    async def authorized(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> StaffMember:
        return await signed_in_member(request, credentials, roles)

    authorized.allowed_roles = roles  # type: ignore[attr-defined]  # read by the route-table tests
    return authorized


def allow(*roles: str) -> Callable[..., Coroutine[Any, Any, Actor]]:
    """A dependency admitting callers holding one of `roles`: 401 without a valid token, 403 without the role.

    The returned Actor (recorded on every event the command writes) is the member's staff id and the role
    they acted in.
    """
    _checked_roles(roles)

    async def authorized(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
        return (await signed_in_member(request, credentials, roles)).actor

    authorized.allowed_roles = roles  # type: ignore[attr-defined]  # read by the route-table tests
    return authorized


def mint_development_token(subject: str, roles: list[str], *, lifetime_seconds: int = 3600,
                           issuer: str = DEV_ISSUER, audience: str = DEV_AUDIENCE,
                           issued_at: float | None = None, **extra_claims: Any) -> str:
    """A token signed with the development key (local runs and tests only); `extra_claims` such as
    `departments` or `name` describe the holder as an identity provider would."""
    now = int(issued_at if issued_at is not None else time.time())
    claims = {"sub": subject, "roles": roles, "iss": issuer, "aud": audience, "iat": now,
              "exp": now + lifetime_seconds, **extra_claims}
    return jwt.encode(claims, DEV_PRIVATE_KEY.read_text(), algorithm="RS256")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eventkit.auth", description="Mint a development token.")
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token")
    token.add_argument("--sub", required=True)
    token.add_argument("--role", action="append", choices=ROLES, required=True)
    token.add_argument("--department", action="append", default=[], help="a department the holder works in")
    token.add_argument("--name", help="the holder's name as printed (default: the subject)")
    token.add_argument("--minutes", type=int, default=CLI_DEFAULT_MINUTES,
                       choices=range(1, MAX_LIFETIME_SECONDS // 60 + 1), metavar=f"1..{MAX_LIFETIME_SECONDS // 60}")
    args = parser.parse_args()
    described = {"departments": args.department, **({"name": args.name} if args.name else {})}
    print(mint_development_token(args.sub, args.role, lifetime_seconds=args.minutes * 60, **described))


if __name__ == "__main__":
    main()
