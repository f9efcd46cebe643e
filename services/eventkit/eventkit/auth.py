"""Who is calling: bearer JWTs (RS256) with staff roles, checked on every HTTP endpoint.

Production verifies signatures with the identity provider's keys from `JWT_JWKS_URL`; development uses
the repository's fixed key pair (devkeys/), which the production profile refuses. Issuer, audience and
expiry are always checked, with a small leeway for clock skew. A token names its holder (`sub`) and
the roles they hold (`roles`, or a single `role`); an endpoint states the roles whose work it is.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.events import Actor

log = logging.getLogger(__name__)

# `integration`: another hospital system reading the catch-up feed (eventkit.feed), and nothing else.
ROLES = ("coordinator", "physician", "cashier", "auditor", "integration")
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
        return claims


def roles_of(claims: dict[str, Any]) -> list[str]:
    held = claims.get("roles", claims.get("role", []))
    held = [held] if isinstance(held, str) else held
    return [role for role in held if role in ROLES] if isinstance(held, list) else []


_bearer = HTTPBearer(auto_error=False, description="A JWT from the hospital's identity provider")


def allow(*roles: str) -> Callable[..., Coroutine[Any, Any, Actor]]:
    """A dependency admitting callers holding one of `roles`: 401 without a valid token, 403 without the role.

    The returned Actor (recorded on every event the command writes) carries the role it acted in.
    """
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    async def authorized(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        verifier: TokenVerifier = request.app.state.token_verifier
        try:
            claims = await verifier.verify_in_background(credentials.credentials)
        except jwt.PyJWKClientConnectionError as error:
            # Not the caller's fault, and not a verdict on the token: a 401 would send staff to log in again.
            log.warning("the identity provider's signing keys could not be fetched: %s", error)
            raise HTTPException(503, "the identity provider's signing keys could not be fetched; try again shortly",
                                headers={"Retry-After": "5"}) from None
        except jwt.PyJWTError as error:
            raise HTTPException(401, f"invalid token: {error}", headers={"WWW-Authenticate": "Bearer"}) from None
        acting = [role for role in roles_of(claims) if role in roles]
        if not acting:
            # Who was refused, for the access log (eventkit.audit writes every refusal).
            request.state.refused_actor = Actor(id=str(claims.get("sub", "")), role=",".join(roles_of(claims)))
            raise HTTPException(403, f"this needs one of the roles {', '.join(roles)}")
        actor = Actor(id=str(claims["sub"]), role=acting[0])
        request.state.actor = actor
        return actor

    authorized.allowed_roles = roles  # type: ignore[attr-defined]  # read by the route-table tests
    return authorized


def mint_development_token(subject: str, roles: list[str], *, lifetime_seconds: int = 3600,
                           issuer: str = DEV_ISSUER, audience: str = DEV_AUDIENCE,
                           issued_at: float | None = None) -> str:
    """A token signed with the development key (local runs and tests only)."""
    now = int(issued_at if issued_at is not None else time.time())
    claims = {"sub": subject, "roles": roles, "iss": issuer, "aud": audience, "iat": now,
              "exp": now + lifetime_seconds}
    return jwt.encode(claims, DEV_PRIVATE_KEY.read_text(), algorithm="RS256")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eventkit.auth", description="Mint a development token.")
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token")
    token.add_argument("--sub", required=True)
    token.add_argument("--role", action="append", choices=ROLES, required=True)
    token.add_argument("--minutes", type=int, default=480)
    args = parser.parse_args()
    print(mint_development_token(args.sub, args.role, lifetime_seconds=args.minutes * 60))


if __name__ == "__main__":
    main()
