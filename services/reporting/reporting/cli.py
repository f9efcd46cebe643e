"""`python -m reporting rebuild`: reporting's read models are built from the log of received events (every
service's events), not from its own event store, so it rebuilds them itself; every other command is the
shared eventkit command line."""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from eventkit import cli, logs
from reporting.app import build, runtime_for
from reporting.settings import ReportingSettings
from reporting.store import rebuild_case_board


def progress_bar(done: int, total: int) -> None:
    width = 40
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} events")
    sys.stderr.flush()


async def rebuild(settings: ReportingSettings) -> int:
    runtime = runtime_for(settings)
    await runtime.start(relay=False, consume=False)
    try:
        count = await rebuild_case_board(runtime.pool, progress_bar)
    finally:
        await runtime.stop()
    sys.stderr.write("\n")
    return count


def main(argv: list[str]) -> None:
    if argv[1:2] == ["rebuild"]:
        settings = ReportingSettings()
        logs.configure(settings.service, settings.log_level)
        try:
            count = asyncio.run(rebuild(settings))
        except (OSError, asyncpg.PostgresError) as error:
            print(f"reporting: PostgreSQL is unreachable or failing ({error.__class__.__name__}); "
                  f"{cli.HOW_TO_START['database']}", file=sys.stderr)
            raise SystemExit(2) from None
        print(f"reporting: projections rebuilt from {count} received events", file=sys.stderr)
        return
    cli.main(ReportingSettings, runtime_for, build)
