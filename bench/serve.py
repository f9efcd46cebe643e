"""Run one service as `python -m <service> serve` does, with its clock moved to the benchmark's day.

    BENCH_CLOCK_OFFSET_SECONDS=... python -m bench.serve billing

Why a moved clock: the fee is paid at the counter on the consultation day and the consultation is completed
on or after it, so a complete case flow can only run in real time if "today" is a consultation day. Every
service of a load run gets the same offset, so they agree on the time; the offset is chosen (bench.flows)
so that "now" is early on a business day whose slots the run books. Only the services' own notion of now
moves: events are stamped by PostgreSQL, so every latency the benchmark reports is real time.
The app is built and served exactly as eventkit.cli does for `serve`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta

import uvicorn
from fastapi import FastAPI

from eventkit import logs
from eventkit.clock import Clock, utc_now
from eventkit.settings import ServiceSettings
from eventkit.testing import RequestInstant, with_request_instant

OFFSET_VARIABLE = "BENCH_CLOCK_OFFSET_SECONDS"


def shifted_clock(offset: timedelta) -> Clock:
    def now() -> datetime:
        return utc_now() + offset

    return now


def _builder(service: str) -> tuple[ServiceSettings, Callable[[ServiceSettings, Clock], FastAPI]]:
    if service == "intake":
        from intake.bootstrap import build as build_intake
        from intake.settings import IntakeSettings

        return IntakeSettings(), lambda settings, clock: build_intake(settings, clock=clock)
    if service == "scheduling":
        from scheduling.bootstrap import build as build_scheduling
        from scheduling.settings import SchedulingSettings

        return SchedulingSettings(), lambda settings, clock: build_scheduling(settings, clock=clock)
    if service == "billing":
        from billing.bootstrap import build as build_billing
        from billing.settings import BillingSettings

        def billing(settings: ServiceSettings, clock: Clock) -> FastAPI:
            assert isinstance(settings, BillingSettings)
            return build_billing(settings, clock=clock)

        return BillingSettings(), billing
    if service == "reporting":
        from reporting.bootstrap import build as build_reporting
        from reporting.settings import ReportingSettings

        return ReportingSettings(), lambda settings, clock: build_reporting(settings, clock=clock)
    raise SystemExit(f"no service {service!r}: intake, scheduling, billing or reporting")


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bench.serve SERVICE")
    settings, build = _builder(sys.argv[1])
    logs.configure(settings.service, settings.log_level)
    clock = shifted_clock(timedelta(seconds=float(os.environ.get(OFFSET_VARIABLE, "0"))))
    app = build(settings, with_request_instant(clock))
    app.add_middleware(RequestInstant)  # a completion names its own instant (bench.flows)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                access_log=False, timeout_graceful_shutdown=20)


if __name__ == "__main__":
    main()
