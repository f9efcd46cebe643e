"""Reporting consumes every event of every service (its inbox is bound to `#`): each one is logged once,
drives the report's reactions, and refreshes its case's board row, all in the inbox transaction. A batch of
deliveries logs its events in one statement before any of them drives a reaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eventkit.consumer import Delivery, HandledTogether, Handler
from eventkit.db import Conn
from eventkit.runtime import ServiceRuntime
from reporting.handlers import ReportingHandlers
from reporting.store import LoggedEvent, log_events, recompute_case

EVERY_EVENT = ("#",)


def log_and_react(handlers_of: Callable[[ServiceRuntime], ReportingHandlers]) -> Callable[[ServiceRuntime], Handler]:
    """The catch-all handler factory for ServiceRuntime(catch_all=...)."""

    def factory(runtime: ServiceRuntime) -> Handler:
        handlers = handlers_of(runtime)

        async def log(conn: Conn, deliveries: Sequence[Delivery]) -> list[LoggedEvent | None]:
            """Each delivery's event as logged now, or None where it was in the log already (one of reporting's own
            events, logged when it was appended)."""
            logged = [LoggedEvent.from_envelope(delivery.envelope, delivery.data) for delivery in deliveries]
            newly_logged = await log_events(conn, logged)
            return [event if event.event_id in newly_logged else None for event in logged]

        async def react(conn: Conn, delivery: Delivery, logged: LoggedEvent | None) -> None:
            if logged is None:
                return
            await handlers.react(conn, delivery.data, delivery.context)
            await recompute_case(conn, logged.case_id)

        return HandledTogether(log, react)

    return factory
