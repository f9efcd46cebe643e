"""A service's two PostgreSQL roles: the database's owner, which runs the migrations, and the runtime role the
service itself connects as (`<service>_app`, eventkit.credentials). The runtime role is no superuser and owns
nothing: it may read and write the service's tables, but only read and append to the access log, so neither it nor
anyone holding its password can rewrite the log or switch its triggers off (`session_replication_role` is a
superuser's setting).

`prepare` runs at every start and on `migrate`: the migrations, the runtime role if missing (creating roles needs
CREATEROLE; in production the DBA creates it beforehand), then the runtime role's grants on every table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import asyncpg
from pydantic import SecretStr

from eventkit import db

# Tables the runtime role only reads and appends to.
APPEND_ONLY_TABLES = ("access_log",)
# Tables the runtime role only reads.
READ_ONLY_TABLES = ("access_log_unkeyed",)
# Tables the runtime role has no business with.
OWNER_ONLY_TABLES = ("schema_migrations",)


class UnsafeRole(RuntimeError):
    pass


class TwoRoles(Protocol):
    """What a deployable's settings say of its database: the owner's DSN, and the runtime role it connects as
    (eventkit.settings.ServiceSettings for the four services, desk.settings.DeskSettings for the console)."""

    owner_database_url: str
    database_user: str
    database_password: SecretStr
    migrate_on_start: bool


async def prepare(settings: TwoRoles, directories: Sequence[Path]) -> list[str]:
    """Migrate as the owner, then make sure the runtime role exists with exactly the grants it needs; returns the
    migrations applied now."""
    applied = await db.migrate(settings.owner_database_url, directories)
    role = settings.database_user
    if role != urlsplit(settings.owner_database_url).username:
        await ensure_runtime_role(settings.owner_database_url, role, settings.database_password.get_secret_value())
        await grant_runtime_privileges(settings.owner_database_url, role)
    return applied


async def at_start(settings: TwoRoles, directories: Sequence[Path]) -> None:
    """What a starting service does to its database: `prepare`, unless MIGRATE_ON_START is off (in Kubernetes the
    migration Job has run it, and the service is given no owner's credentials at all)."""
    if settings.migrate_on_start:
        await prepare(settings, directories)


async def ensure_runtime_role(owner_dsn: str, role: str, password: str) -> None:
    """Create the login role if it does not exist (roles belong to the whole cluster: another database's service,
    or a test running beside this one, may create it at the same moment). Refuses a role with powers it must not
    have."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        existing = await conn.fetchrow("SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = $1",
                                       role)
        if existing is None:
            statement = await conn.fetchval(
                "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',"
                " $1::text, $2::text)", role, password)
            with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                await conn.execute(statement)  # unless someone else created it meanwhile
        elif any(existing.values()):
            raise UnsafeRole(f"the runtime role {role} may bypass the database's rules (superuser, BYPASSRLS or "
                             "CREATEROLE): give the service a plain login role")
    finally:
        await conn.close()


async def grant_runtime_privileges(owner_dsn: str, role: str) -> None:
    """The runtime role's grants on everything the migrations created (run after each migration)."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        tables = [row["tablename"] for row in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        quoted_role = await conn.fetchval("SELECT quote_ident($1)", role)
        quoted_database = await conn.fetchval("SELECT quote_ident(current_database())")
        async with conn.transaction():
            # Two replicas starting at once grant on the same catalog rows ("tuple concurrently updated"): one at a
            # time per database (advisory locks are the database's own).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventkit.db_roles.grants'))")
            await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {quoted_database} TO {quoted_role}")
            await conn.execute(f"GRANT USAGE ON SCHEMA public TO {quoted_role}")
            await conn.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted_role}")
            for table in tables:
                quoted_table = await conn.fetchval("SELECT quote_ident($1)", table)
                if table in OWNER_ONLY_TABLES:
                    await conn.execute(f"REVOKE ALL ON {quoted_table} FROM {quoted_role}")
                elif table in READ_ONLY_TABLES:
                    await conn.execute(f"REVOKE ALL ON {quoted_table} FROM {quoted_role}")
                    await conn.execute(f"GRANT SELECT ON {quoted_table} TO {quoted_role}")
                elif table in APPEND_ONLY_TABLES:
                    await conn.execute(f"REVOKE ALL ON {quoted_table} FROM {quoted_role}")
                    await conn.execute(f"GRANT SELECT, INSERT ON {quoted_table} TO {quoted_role}")
                else:
                    await conn.execute(
                        f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {quoted_table} TO {quoted_role}")
    finally:
        await conn.close()
