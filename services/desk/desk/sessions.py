"""Staff sessions in the desk's own database: the browser holds a random id in an HttpOnly cookie, the row
(found by the id's hash) holds who signed in, their roles and the bearer token the services are called with."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag

from eventkit.crypto import from_text, open_with, seal_with, to_text

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
class SessionStore:
    """The tokens are sealed (AES-GCM, the session's id hash bound in): a copy of the table opens no service."""

    pool: asyncpg.Pool
    idle_timeout: timedelta
    key: bytes

    def _seal(self, id_hash: str, access_token: str, id_token: str | None) -> str:
        return to_text(seal_with(self.key, id_hash, {"access_token": access_token, "id_token": id_token}))

    def _open(self, id_hash: str, sealed: str) -> dict[str, Any]:
        return open_with(self.key, id_hash, from_text(sealed))

    async def create(self, *, subject: str, display_name: str, roles: list[str], access_token: str,
                     token_expires_at: datetime, id_token: str | None = None, lang: str = "ja") -> StaffSession:
        session = StaffSession(id=secrets.token_urlsafe(32), subject=subject, display_name=display_name, roles=roles,
                               access_token=access_token, token_expires_at=token_expires_at,
                               csrf_token=secrets.token_urlsafe(32), lang=lang, id_token=id_token)
        await self.pool.execute(
            """INSERT INTO desk_sessions (id_hash, subject, display_name, roles, sealed_tokens, token_expires_at,
                                          csrf_token, lang)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            _hash(session.id), subject, display_name, json.dumps(roles),
            self._seal(_hash(session.id), access_token, id_token), token_expires_at, session.csrf_token, lang)
        return session

    async def get(self, session_id: str) -> StaffSession | None:
        """The live session with this id, its idle clock restarted; None when unknown, idle too long or its token
        expired (the row is then removed)."""
        now = datetime.now(UTC)
        row = await self.pool.fetchrow(
            """UPDATE desk_sessions SET last_seen_at = now()
               WHERE id_hash = $1 AND last_seen_at > $2 AND token_expires_at > now()
               RETURNING *""", _hash(session_id), now - self.idle_timeout)
        if row is None:
            await self.pool.execute("DELETE FROM desk_sessions WHERE id_hash = $1", _hash(session_id))
            return None
        try:
            tokens = self._open(row["id_hash"], row["sealed_tokens"])
        except InvalidTag:  # sealed with another key (DESK_SESSION_KEY changed): sign in again
            await self.delete(session_id)
            return None
        return StaffSession(id=session_id, subject=row["subject"], display_name=row["display_name"],
                            roles=json.loads(row["roles"]), access_token=tokens["access_token"],
                            token_expires_at=row["token_expires_at"], csrf_token=row["csrf_token"], lang=row["lang"],
                            flash=json.loads(row["flash"]) if row["flash"] else None, id_token=tokens["id_token"],
                            last_seen_at=row["last_seen_at"])

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
        result: str = await self.pool.execute(
            "DELETE FROM desk_sessions WHERE last_seen_at < $1 OR token_expires_at < now()",
            datetime.now(UTC) - self.idle_timeout)
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
