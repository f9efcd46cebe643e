"""`python -m tests.faults.serve <service>`: the service's own `serve` command (eventkit.cli.main, the code
`python -m <service> serve` runs), with three things a fault scenario needs and production never sets:

- FAULTS_CLOCK: an ISO instant the service's clock stands still at, so a whole case (consultation day,
  counter payment, completion, report) can be driven at any hour the tests happen to run; a request may name
  its own instant (eventkit.testing.REQUEST_CLOCK_HEADER: the completion, after the consultation's start);
- FAULTS_JOURNAL: a file where the consumer notes each delivery it begins and how it ended, so the checker
  can tell a delivery handled twice from one handled once after a redelivery; and beside it (`.settled`) a line
  each time the consumer has finished with a delivery (acked, or handed back, or its retry copy sent after the
  backoff), so the checker knows no delivery is still in hand;
- FAULTS_CONTROL: a directory of switches a scenario flips while the service runs. `<service>.crash-after-commit`
  holding an event name: the next time a delivery of that event has been committed, and before it is acked,
  the process SIGKILLs itself (once: the file is renamed as it fires). `<service>.delay` holding seconds:
  each delivery waits that long before it is handled, so a signal finds work in flight.

Nothing else differs: the same settings from the environment, runtime, consumer, relay and uvicorn.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream.rabbit import RabbitBroker, RabbitMessage

from eventkit import cli
from eventkit.consumer import Consumer, Outcome, Verdict
from eventkit.settings import ServiceSettings
from eventkit.testing import RequestInstant, with_request_instant
from secondopinion_contracts import CloudEvent

SETTINGS_CLASSES = {"intake": "IntakeSettings", "scheduling": "SchedulingSettings", "billing": "BillingSettings",
                    "reporting": "ReportingSettings"}


def _journal(path: str) -> Callable[[str], None]:
    journal = Path(path).open("a", buffering=1)  # noqa: SIM115 (kept open for the life of the process)
    pid = os.getpid()

    def note(line: str) -> None:
        journal.write(f"{pid}\t{line}\n")

    return note


def _identify(body: bytes) -> tuple[str, str]:
    try:
        envelope = CloudEvent.model_validate_json(body)
    except Exception:
        return "-", "-"
    return str(envelope.id), envelope.event_name


def _read(path: str) -> str | None:
    try:
        with open(path) as control:
            return control.read().strip()
    except OSError:
        return None


def instrument_consumer(service: str) -> None:
    journal_path = os.environ.get("FAULTS_JOURNAL")
    control = os.environ.get("FAULTS_CONTROL")
    if not (journal_path or control):
        return
    note = _journal(journal_path) if journal_path else (lambda _: None)
    crash_file = os.path.join(control, f"{service}.crash-after-commit") if control else ""
    delay_file = os.path.join(control, f"{service}.delay") if control else ""
    settled_note = _journal(f"{journal_path}.settled") if journal_path else (lambda _: None)
    original = Consumer.process
    original_settle = Consumer.settle

    async def settle(self: Consumer, broker: RabbitBroker, message: RabbitMessage) -> None:
        try:
            await original_settle(self, broker, message)
        finally:
            settled_note(f"{service}\t{_identify(message.raw_message.body)[0]}")

    async def process(self: Consumer, body: bytes, publisher: str | None = None) -> Outcome:
        event_id, name = _identify(body)
        note(f"{service}\tbegin\t{event_id}\t{name}\t")
        delay = _read(delay_file) if control else None
        if delay:
            await asyncio.sleep(float(delay))
        outcome = await original(self, body, publisher)
        if control and outcome.verdict is Verdict.DONE and _read(crash_file) == name:
            try:
                # Claimed by renaming: of two replicas only one dies, and only once.
                os.rename(crash_file, f"{crash_file}.fired")
            except OSError:
                pass
            else:
                # Committed, not yet acked: die here, as a node lost at this instant would.
                note(f"{service}\tcrash\t{event_id}\t{name}\t")
                os.kill(os.getpid(), signal.SIGKILL)
        note(f"{service}\t{outcome.verdict.value}\t{event_id}\t{name}\t{outcome.reason}")
        return outcome

    Consumer.process = process  # type: ignore[method-assign]
    Consumer.settle = settle  # type: ignore[method-assign]


def fixed_clock() -> Callable[[], datetime] | None:
    value = os.environ.get("FAULTS_CLOCK")
    if not value:
        return None
    instant = datetime.fromisoformat(value)
    return lambda: instant


def main(service: str) -> None:
    if service not in SETTINGS_CLASSES:
        raise SystemExit(f"unknown service {service!r}; one of {', '.join(SETTINGS_CLASSES)}")
    settings_type: type[ServiceSettings] = getattr(importlib.import_module(f"{service}.settings"),
                                                   SETTINGS_CLASSES[service])
    app_module: Any = importlib.import_module(f"{service}.bootstrap")
    clock = fixed_clock()
    instrument_consumer(service)

    def build(settings: ServiceSettings) -> FastAPI:
        built: FastAPI = app_module.build(settings, clock=with_request_instant(clock) if clock else None)
        built.add_middleware(RequestInstant)
        return built

    sys.argv = [f"python -m {service}", *sys.argv[2:]]
    cli.main(settings_type, app_module.runtime_for, build)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
