"""Staff sessions in the desk's own database: the browser holds a random id in an HttpOnly cookie, the row
(found by the id's hash) holds who signed in, their roles and the bearer token the services are called with.
A token about to expire is renewed with the identity provider's refresh token, once across every replica."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag

from eventkit.crypto import from_text, open_with, seal_with, to_text

log = logging.getLogger(__name__)

SESSION_COOKIE = "desk_session"
CSRF_FIELD = "csrf_token"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class StaffSession:
    id: str
    subject: str
    display_name: str
    roles: list[str]
    access_token: str
    token_expires_at: datetime
    csrf_token: str
    lang: str = "ja"
    flash: dict[str, Any] | None = None
    id_token: str | None = None
    last_seen_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def holds(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


@dataclass(frozen=True)
class Tokens:
    """What the identity provider gave: the bearer token the services are called with, and what renews it."""

    access_token: str
    expires_at: datetime
    id_token: str | None = None
    refresh_token: str | None = None


# The identity provider's refresh grant: a refresh token in, the renewed tokens out (signin.OpenIdProvider).
Renew = Callable[[str], Awaitable[Tokens]]


@dataclass(frozen=True)
class SessionStore:
    """The tokens are sealed (AES-GCM, the session's id hash bound in): a copy of the table opens no service.
    `renew` (production sign-in) replaces an access token within `renew_before` of its expiry."""

    pool: asyncpg.Pool
    idle_timeout: timedelta
    key: bytes
    renew: Renew | None = None
    renew_before: timedelta = timedelta(seconds=60)

    def _seal(self, id_hash: str, access_token: str, id_token: str | None, refresh_token: str | None = None) -> str:
        return to_text(seal_with(self.key, id_hash, {"access_token": access_token, "id_token": id_token,
                                                     "refresh_token": refresh_token}))

    def _open(self, id_hash: str, sealed: str) -> dict[str, Any]:
        return open_with(self.key, id_hash, from_text(sealed))

    async def create(self, *, subject: str, display_name: str, roles: list[str], access_token: str,
                     token_expires_at: datetime, id_token: str | None = None, refresh_token: str | None = None,
                     lang: str = "ja") -> StaffSession:
        session = StaffSession(id=secrets.token_urlsafe(32), subject=subject, display_name=display_name, roles=roles,
                               access_token=access_token, token_expires_at=token_expires_at,
                               csrf_token=secrets.token_urlsafe(32), lang=lang, id_token=id_token)
        await self.pool.execute(
            """INSERT INTO desk_sessions (id_hash, subject, display_name, roles, sealed_tokens, token_expires_at,
                                          csrf_token, lang)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            _hash(session.id), subject, display_name, json.dumps(roles),
            self._seal(_hash(session.id), access_token, id_token, refresh_token), token_expires_at, session.csrf_token,
            lang)
        return session

    async def get(self, session_id: str, *, activity: bool = True) -> StaffSession | None:
        """The live session with this id, its idle clock restarted if this is the person's `activity` (a page's own
        live check is not); None when unknown, idle too long or its token expired and could not be renewed (the row
        is then removed)."""
        now = datetime.now(UTC)
        row = await self.pool.fetchrow(
            """UPDATE desk_sessions SET last_seen_at = CASE WHEN $3 THEN now() ELSE last_seen_at END
               WHERE id_hash = $1 AND last_seen_at > $2 RETURNING *""",
            _hash(session_id), now - self.idle_timeout, activity)
        tokens = self._tokens(row) if row is not None else None
        if row is not None and tokens is not None and tokens.expires_at <= now + self.renew_before:
            tokens = await self._renewed(row["id_hash"], now) or (tokens if tokens.expires_at > now else None)
        if row is None or tokens is None:
            await self.delete(session_id)
            return None
        return StaffSession(id=session_id, subject=row["subject"], display_name=row["display_name"],
                            roles=json.loads(row["roles"]), access_token=tokens.access_token,
                            token_expires_at=tokens.expires_at, csrf_token=row["csrf_token"], lang=row["lang"],
                            flash=json.loads(row["flash"]) if row["flash"] else None, id_token=tokens.id_token,
                            last_seen_at=row["last_seen_at"])

    def _tokens(self, row: asyncpg.Record) -> Tokens | None:
        try:
            sealed = self._open(row["id_hash"], row["sealed_tokens"])
        except InvalidTag:  # sealed with another key (DESK_SESSION_KEY changed): sign in again
            return None
        return Tokens(sealed["access_token"], row["token_expires_at"], sealed.get("id_token"),
                      sealed.get("refresh_token"))

    async def _renewed(self, id_hash: str, now: datetime) -> Tokens | None:
        """The session's tokens renewed at the identity provider, the row locked meanwhile: of two replicas (or two
        tabs) renewing at once, the second finds the first one's tokens and uses them (a refresh token the provider
        rotates is spent once). None when there is nothing to renew with or the provider refused."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM desk_sessions WHERE id_hash = $1 FOR UPDATE", id_hash)
            current = self._tokens(row) if row is not None else None
            if current is None or current.expires_at > now + self.renew_before:
                return current
            if self.renew is None or not current.refresh_token:
                return None
            try:
                renewed = await self.renew(current.refresh_token)
            except Exception as error:  # the provider refused or is unreachable: the session ends at its expiry
                log.warning("could not renew a session's token: %s", error.__class__.__name__)
                return None
            renewed = Tokens(renewed.access_token, renewed.expires_at, renewed.id_token or current.id_token,
                             renewed.refresh_token or current.refresh_token)
            await conn.execute("UPDATE desk_sessions SET sealed_tokens = $2, token_expires_at = $3 WHERE id_hash = $1",
                               id_hash, self._seal(id_hash, renewed.access_token, renewed.id_token,
                                                   renewed.refresh_token), renewed.expires_at)
            return renewed

    async def set_flash(self, session: StaffSession, flash: dict[str, Any] | None) -> None:
        await self.pool.execute("UPDATE desk_sessions SET flash = $2 WHERE id_hash = $1", _hash(session.id),
                                json.dumps(flash) if flash is not None else None)

    async def take_flash(self, session: StaffSession) -> dict[str, Any] | None:
        flash = session.flash
        if flash is not None:
            await self.set_flash(session, None)
            session.flash = None
        return flash

    async def set_lang(self, session: StaffSession, lang: str) -> None:
        await self.pool.execute("UPDATE desk_sessions SET lang = $2 WHERE id_hash = $1", _hash(session.id), lang)

    async def delete(self, session_id: str) -> None:
        await self.pool.execute("DELETE FROM desk_sessions WHERE id_hash = $1", _hash(session_id))

    async def purge_idle(self) -> int:
        """Sessions idle too long. (One whose token expired unrenewed ends at its next request, or once idle.)"""
        result: str = await self.pool.execute(
            "DELETE FROM desk_sessions WHERE last_seen_at < $1", datetime.now(UTC) - self.idle_timeout)
        return int(result.split()[-1])

    # --- sign-ins under way at the identity provider ---

    async def begin_sign_in(self, state: str, nonce: str, code_verifier: str) -> None:
        await self.pool.execute("DELETE FROM desk_sign_ins WHERE created_at < now() - interval '10 minutes'")
        await self.pool.execute("INSERT INTO desk_sign_ins (state, nonce, code_verifier) VALUES ($1, $2, $3)",
                                state, nonce, code_verifier)

    async def finish_sign_in(self, state: str) -> tuple[str, str] | None:
        """The nonce and PKCE verifier of the sign-in `state` started (once: the row is taken)."""
        row = await self.pool.fetchrow(
            """DELETE FROM desk_sign_ins WHERE state = $1 AND created_at > now() - interval '10 minutes'
               RETURNING nonce, code_verifier""", state)
        return (row["nonce"], row["code_verifier"]) if row else None
