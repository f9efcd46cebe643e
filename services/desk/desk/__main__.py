"""`python -m desk serve|migrate|check`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from desk.bootstrap import MIGRATIONS, build
from desk.settings import DeskSettings
from eventkit import db, db_roles, logs
from eventkit.cli import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m desk")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", "check"])
    args = parser.parse_args()
    settings = DeskSettings()
    logs.configure("desk", settings.log_level)
    try:
        asyncio.run(db.create_database_if_missing(settings.owner_database_url))
    except Exception as error:
        print(f"desk: PostgreSQL is unreachable ({error.__class__.__name__}); start it first", file=sys.stderr)
        raise SystemExit(2) from None
    if args.command == "check":
        return
    if args.command == "migrate":
        applied = asyncio.run(db_roles.prepare(settings, [MIGRATIONS]))
        print(f"desk: {len(applied)} migration(s) applied", file=sys.stderr)
        return
    serve(build, settings)


main()
