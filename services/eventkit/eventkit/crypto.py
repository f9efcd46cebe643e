"""Crypto-shredding: personal data sealed with a key of its own per case, so erasing one patient is
deleting one key. Everything sealed with it (rows, event fields) stays in place and becomes unreadable,
without rewriting any history. AES-256-GCM; the case id is bound in as associated data so a sealed
value cannot be moved to another case.

The case keys themselves are kept wrapped (AES-GCM) by a key-encryption key from the secret
`CASE_KEY_ENCRYPTION_KEY` (32 bytes, base64url), so a dump of the database alone opens nothing; the
repository's development key is refused in production (eventkit.settings.production_problems)."""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.db import Conn

MASK = "***"
_NONCE_BYTES = 12


def seal_with(key: bytes, case_id: object, values: dict[str, Any]) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, json.dumps(values, default=str).encode(), str(case_id).encode())


def open_with(key: bytes, case_id: object, sealed: bytes) -> dict[str, Any]:
    """The sealed values; raises cryptography's InvalidTag if the key, the case or the bytes do not match."""
    opened: dict[str, Any] = json.loads(
        AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], str(case_id).encode()))
    return opened


def to_text(sealed: bytes) -> str:
    """Sealed bytes as they travel in an event field or a JSON body (base64url)."""
    return base64.urlsafe_b64encode(sealed).decode()


def from_text(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode())



# For local runs and tests only: production refuses it.
DEVELOPMENT_KEY_ENCRYPTION_KEY = "ZGV2ZWxvcG1lbnQtb25seS1rZXktZW5jcnlwdGlvbi0="
_WRAPPED_PREFIX = b"w1"


class KeySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    case_key_encryption_key: str = Field(DEVELOPMENT_KEY_ENCRYPTION_KEY, validation_alias="CASE_KEY_ENCRYPTION_KEY")

    def key_encryption_key(self) -> bytes:
        kek = from_text(self.case_key_encryption_key)
        if len(kek) != 32:
            raise ValueError("CASE_KEY_ENCRYPTION_KEY must be 32 bytes, base64url")
        return kek


class CaseKeys:
    """The per-case keys, in the owning service's database (table `case_keys`), wrapped by the KEK."""

    def __init__(self, key_encryption_key: bytes | None = None) -> None:
        self._kek = key_encryption_key

    @property
    def kek(self) -> AESGCM:
        if self._kek is None:
            self._kek = KeySettings().key_encryption_key()
        return AESGCM(self._kek)

    def wrap(self, case_id: object, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _WRAPPED_PREFIX + nonce + self.kek.encrypt(nonce, key, str(case_id).encode())

    def unwrap(self, case_id: object, stored: bytes) -> bytes:
        if not stored.startswith(_WRAPPED_PREFIX):
            # A key written before wrapping (development data of earlier releases): used as it is.
            return stored
        body = stored[len(_WRAPPED_PREFIX):]
        return self.kek.decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], str(case_id).encode())

    async def create(self, conn: Conn, case_id: object) -> bytes:
        key = AESGCM.generate_key(bit_length=256)
        await conn.execute("INSERT INTO case_keys (case_id, key) VALUES ($1, $2)", str(case_id),
                           self.wrap(case_id, key))
        return key

    async def key(self, conn: Conn, case_id: object) -> bytes | None:
        stored: bytes | None = await conn.fetchval("SELECT key FROM case_keys WHERE case_id = $1", str(case_id))
        return None if stored is None else self.unwrap(case_id, bytes(stored))

    async def seal(self, conn: Conn, case_id: object, values: dict[str, Any]) -> bytes:
        key = await self.key(conn, case_id) or await self.create(conn, case_id)
        return seal_with(key, case_id, values)

    async def open(self, conn: Conn, case_id: object, sealed: bytes) -> dict[str, Any] | None:
        """The values, or None once the case's key has been erased."""
        key = await self.key(conn, case_id)
        return None if key is None else open_with(key, case_id, sealed)

    async def erase(self, conn: Conn, case_id: object, erased_by: str, erased_at: datetime) -> bool:
        """Forget the key for good; True if there was one to forget."""
        status = await conn.execute(
            "UPDATE case_keys SET key = NULL, erased_at = $2, erased_by = $3 WHERE case_id = $1 AND key IS NOT NULL",
            str(case_id), erased_at, erased_by)
        return bool(status.endswith(" 1"))

    async def erased_at(self, conn: Conn, case_id: object) -> datetime | None:
        erased: datetime | None = await conn.fetchval(
            "SELECT erased_at FROM case_keys WHERE case_id = $1", str(case_id))
        return erased
