"""Reporting consumes every event of every service (its inbox is bound to `#`): each one is logged once,
drives the report's reactions, and refreshes its case's board row, all in the inbox transaction."""

from __future__ import annotations

from collections.abc import Callable

from eventkit.consumer import Delivery, Handler
from eventkit.db import Conn
from eventkit.runtime import ServiceRuntime
from reporting.handlers import ReportingHandlers
from reporting.store import LoggedEvent, lock_case_and_log, recompute_case

EVERY_EVENT = ("#",)


def log_and_react(handlers_of: Callable[[ServiceRuntime], ReportingHandlers]) -> Callable[[ServiceRuntime], Handler]:
    """The catch-all handler factory for ServiceRuntime(catch_all=...)."""

    def factory(runtime: ServiceRuntime) -> Handler:
        handlers = handlers_of(runtime)

        async def handle(conn: Conn, delivery: Delivery) -> None:
            logged = LoggedEvent.from_envelope(delivery.envelope, delivery.data)
            if not await lock_case_and_log(conn, logged):
                return  # one of reporting's own events, already logged when it was appended
            await handlers.react(conn, delivery.data, delivery.context)
            await recompute_case(conn, logged.case_id)

        return handle

    return factory
