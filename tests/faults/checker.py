"""The checker, after the manner of the RabbitMQ Jepsen suite: once the system is quiet again, every command
the desk sent and every event the services published is accounted for.

Commands (from the desk's history, found in the service's event store by the command's own actor id):
- applied: answered with success, and recorded exactly once;
- recovered: met a fault on some attempt (503, refused or reset connection, timeout) and was still
  recorded exactly once in the end (the desk retries with the command's Idempotency-Key);
- lost: answered with success, or needed by the flow, but never recorded;
- duplicated: recorded more than once (two distinct causations).

Events (every outbox row of the scenario's cases, and each inbox bound to its routing key):
- applied: published, taken into the subscriber's inbox once, its effects once, at the first delivery;
- recovered: the same, after a delivery that did not settle cleanly (the consumer died with it, the
  database was down, the broker took it back, it came again and the inbox absorbed it);
- lost: never published, or never taken into a bound subscriber's inbox, or missing from reporting's log;
- duplicated: handled to a commit twice (the consumer's journal), or its effect recorded twice in the
  subscriber's store (two events of one type in one stream caused by it).

Anything else that must never happen is a problem: a 503 without Retry-After, a command whose last answer
refused it (a 4xx, or a 503 the desk gave up on) although it was recorded, another 5xx, a good message in a
dead-letter queue, a case whose events differ from what its flow must produce.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from eventkit.consumer import REASON_HEADER
from eventkit.testing import drain_queue
from secondopinion_contracts import BY_TYPE

from .cluster import Cluster, JournalEntry
from .desk import CaseRun, Desk, Outcome

# Every public event a finished case must have produced, exactly this many times, by mode.
EXPECTED_EVENTS: Mapping[str, Mapping[str, int]] = {
    "in_person": {
        "CaseSubmitted": 1, "DocumentReceived": 3, "ConsentVerified": 1, "CaseAccepted": 1,
        "SlotsProposed": 1, "SlotConfirmed": 1, "AppointmentSlipIssued": 1, "ConsultationCompleted": 1,
        "InvoiceIssued": 1, "PaymentCaptured": 1,
        "ReportDrafted": 1, "ReportFinalized": 1, "ReportDelivered": 1, "CaseClosed": 1,
    },
    "online": {
        "CaseSubmitted": 1, "DocumentReceived": 3, "ConsentVerified": 1, "CaseAccepted": 1,
        "SlotsProposed": 1, "SlotConfirmed": 1, "OnlineBookingRegistered": 1, "ConsultationCompleted": 1,
        "InvoiceIssued": 1, "PaymentCaptured": 1,
        "ReportDrafted": 1, "ReportFinalized": 1, "ReportDelivered": 1, "CaseClosed": 1,
    },
}
SETTLED_CLEANLY = ["begin", "done"]


@dataclass
class Tally:
    applied: int = 0
    recovered: int = 0
    lost: int = 0
    duplicated: int = 0
    lost_examples: list[str] = field(default_factory=list)
    duplicated_examples: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.applied += other.applied
        self.recovered += other.recovered
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.lost_examples += other.lost_examples[:5]
        self.duplicated_examples += other.duplicated_examples[:5]

    def counts(self) -> str:
        return (f"applied={self.applied} recovered={self.recovered} lost={self.lost} "
                f"duplicated={self.duplicated}")


@dataclass
class Report:
    commands: Tally = field(default_factory=Tally)
    events: Tally = field(default_factory=Tally)
    published: int = 0
    deliveries: int = 0
    problems: list[str] = field(default_factory=list)
    dead_letters: list[AbstractIncomingMessage] = field(default_factory=list)
    journal: list[JournalEntry] = field(default_factory=list)

    def add(self, other: Report) -> None:
        self.commands.add(other.commands)
        self.events.add(other.events)
        self.published += other.published
        self.deliveries += other.deliveries
        self.problems += other.problems

    def summary(self) -> str:
        return (f"commands: {self.commands.counts()}\n"
                f"events ({self.published} published, {self.deliveries} deliveries): {self.events.counts()}\n"
                f"problems: {len(self.problems)}")

    def assert_clean(self) -> None:
        """Nothing lost, nothing duplicated, nothing else that must never happen."""
        trouble = []
        for kind, tally in (("commands", self.commands), ("events", self.events)):
            if tally.lost:
                trouble.append(f"{tally.lost} {kind} lost, e.g. {tally.lost_examples[:3]}")
            if tally.duplicated:
                trouble.append(f"{tally.duplicated} {kind} duplicated, e.g. {tally.duplicated_examples[:3]}")
        trouble += self.problems[:10]
        assert not trouble, "\n".join([self.summary(), *trouble])


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""
    words, keys = pattern.split("."), routing_key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(keys)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(keys) + 1))
        return j < len(keys) and words[i] in ("*", keys[j]) and match(i + 1, j + 1)

    return match(0, 0)


def dead_letter_reason(message: AbstractIncomingMessage) -> str:
    reason = (message.headers or {}).get(REASON_HEADER)
    return reason.decode() if isinstance(reason, bytes) else str(reason)


@dataclass(frozen=True)
class Published:
    service: str
    event_id: str
    name: str
    case_id: str
    routing_key: str
    published: bool


class Checker:
    def __init__(self, cluster: Cluster, desk: Desk) -> None:
        self.cluster = cluster
        self.desk = desk

    async def _fetch(self, service: str, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self.desk.store_rows(service, query, *args)

    # --- the scenario's events --------------------------------------------------------------------------

    async def outbox(self, case_ids: Iterable[str]) -> list[Published]:
        wanted = set(case_ids)
        found = []
        for service in self.cluster.services:
            rows = await self._fetch(service, "SELECT event_id, routing_key, body, published_at IS NOT NULL AS sent"
                                              " FROM outbox ORDER BY id")
            for row in rows:
                body = json.loads(row["body"])
                if body.get("subject") in wanted:
                    found.append(Published(service, str(row["event_id"]), body["type"].split(".")[2],
                                           body["subject"], row["routing_key"], row["sent"]))
        return found

    async def subscribers(self) -> dict[str, list[str]]:
        return {service: await self.cluster.inbox_bindings(service) for service in self.cluster.consumers}

    async def inboxes(self, event_ids: list[str]) -> dict[str, set[str]]:
        return {service: {row["message_id"] for row in await self._fetch(
            service, "SELECT message_id FROM inbox WHERE message_id = ANY($1::text[])", event_ids)}
            for service in self.cluster.consumers}

    async def settle(self, case_ids: Iterable[str], timeout: float = 180.0) -> None:
        """Until every event of these cases is published and taken in by every bound inbox, the inbox queues are
        empty and no consumer holds a delivery: the system is quiet. Returns at the deadline too: what is missing
        then is lost."""
        case_ids = list(case_ids)
        deadline = time.monotonic() + timeout
        bindings = await self.subscribers()
        while time.monotonic() < deadline:
            events = await self.outbox(case_ids)
            inboxes = await self.inboxes([event.event_id for event in events])
            waiting = [event for event in events if not event.published] + [
                event for event in events for service, patterns in bindings.items()
                if any(topic_matches(pattern, event.routing_key) for pattern in patterns)
                and event.event_id not in inboxes[service]]
            if not waiting:
                depths = [await self.cluster.queue_depth(f"{service}.inbox") for service in self.cluster.consumers]
                if not any(depths) and not self.cluster.deliveries_in_hand():
                    return
            await asyncio.sleep(0.3)

    # --- accounting ---------------------------------------------------------------------------------------

    async def account(self, *, settle_timeout: float = 180.0, allow_dead_letters: Iterable[str] = ()) -> Report:
        runs = [run for run in self.desk.runs if run.case_id]
        case_ids = [run.case_id for run in runs if run.case_id]
        await self.settle(case_ids, settle_timeout)
        report = Report()
        await self._account_commands(report)
        await self._account_events(report, runs, set(allow_dead_letters))
        await self._check_all_or_nothing(report)
        return report

    async def _check_all_or_nothing(self, report: Report) -> None:
        """Each store is whole: every published kind of event has its outbox row and every outbox row its event
        (they are written in one transaction, so a fault can leave neither half)."""
        public = sorted({type_name.split(".")[2] for type_name in BY_TYPE})
        for service in self.cluster.services:
            rows = await self._fetch(service, """
                SELECT (SELECT count(*) FROM events e WHERE e.event_type = ANY($1::text[])
                          AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.event_id)) AS without_outbox,
                       (SELECT count(*) FROM outbox o
                        WHERE convert_from(o.body, 'UTF8')::jsonb ->> 'supersededby' IS NULL
                          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = o.event_id)) AS without_event""",
                public)
            if rows[0]["without_outbox"] or rows[0]["without_event"]:
                report.problems.append(f"{service}: {rows[0]['without_outbox']} events without their outbox row, "
                                       f"{rows[0]['without_event']} outbox rows without their event")

    async def _account_commands(self, report: Report) -> None:
        tally = report.commands
        by_service: dict[str, list[str]] = defaultdict(list)
        for command in self.desk.commands:
            by_service[command.service].append(command.actor)
        causations: dict[tuple[str, str], int] = {}
        for service, actors in by_service.items():
            for row in await self._fetch(
                    service, "SELECT metadata->'actor'->>'id' AS actor, count(DISTINCT metadata->>'causation_id') AS n"
                             " FROM events WHERE metadata->'actor'->>'id' = ANY($1::text[]) GROUP BY 1", actors):
                causations[(service, row["actor"])] = int(row["n"])
        for command in self.desk.commands:
            recorded = causations.get((command.service, command.actor), 0)
            label = f"{command.service} {command.name} ({command.actor})"
            if recorded > 1:
                tally.duplicated += 1
                tally.duplicated_examples.append(f"{label} recorded {recorded} times")
            elif recorded == 0:
                if command.rejected and not command.acknowledged:
                    continue  # refused and recording nothing, as it says
                tally.lost += 1
                tally.lost_examples.append(f"{label}: {[attempt.outcome.value for attempt in command.attempts]}")
            elif command.faulted:
                tally.recovered += 1
            else:
                tally.applied += 1
            for attempt in command.attempts:
                if attempt.outcome is Outcome.ERROR:
                    report.problems.append(f"{label} answered {attempt.status}: {attempt.detail[:200]}")
            if recorded and not command.acknowledged and command.attempts:
                last = command.attempts[-1]
                report.problems.append(f"{label} was last answered {last.status or last.outcome.value}, "
                                       "yet it was recorded")
        if self.desk.missing_retry_after:
            report.problems.append(f"{self.desk.missing_retry_after} answers of 503 without Retry-After")

    async def _account_events(self, report: Report, runs: list[CaseRun], allowed_dead: set[str]) -> None:
        tally = report.events
        case_ids = [run.case_id for run in runs if run.case_id]
        events = await self.outbox(case_ids)
        event_ids = [event.event_id for event in events]
        report.published = sum(event.published for event in events)
        bindings = await self.subscribers()
        inboxes = await self.inboxes(event_ids)
        journal = self.cluster.journal()
        report.journal = journal
        verdicts: dict[tuple[str, str], list[str]] = defaultdict(list)
        for entry in journal:
            verdicts[(entry.service, entry.event_id)].append(entry.verdict)
        twice = await self._effects_twice(event_ids)
        logged = {str(row["event_id"]) for row in await self._fetch(
            "reporting", "SELECT event_id FROM received_events WHERE event_id = ANY($1::uuid[])", event_ids)} \
            if "reporting" in self.cluster.services else set(event_ids)
        for event in events:
            label = f"{event.service} {event.name} {event.event_id} (case {event.case_id})"
            if not event.published:
                tally.lost += 1
                tally.lost_examples.append(f"{label} never published")
                continue
            if event.event_id not in logged:
                tally.lost += 1
                tally.lost_examples.append(f"{label} missing from reporting's log")
            for service, patterns in bindings.items():
                if not any(topic_matches(pattern, event.routing_key) for pattern in patterns):
                    continue
                report.deliveries += 1
                seen = verdicts.get((service, event.event_id), [])
                if event.event_id not in inboxes[service]:
                    tally.lost += 1
                    tally.lost_examples.append(f"{label} never taken in by {service} (journal: {seen})")
                elif seen.count("done") > 1 or (service, event.event_id) in twice:
                    tally.duplicated += 1
                    tally.duplicated_examples.append(f"{label} handled twice by {service} (journal: {seen})")
                elif seen == SETTLED_CLEANLY:
                    tally.applied += 1
                else:
                    tally.recovered += 1
        for run in runs:
            if run.finished:
                self._check_case(report, run, [event for event in events if event.case_id == run.case_id])
        await self._check_dead_letters(report, set(event_ids), allowed_dead)

    async def _effects_twice(self, event_ids: list[str]) -> set[tuple[str, str]]:
        """(subscriber, event id) pairs where handling the event recorded one event type twice in one stream."""
        found = set()
        causes = [f"{event_id}" for event_id in event_ids]
        for service in self.cluster.consumers:
            for row in await self._fetch(
                    service, "SELECT metadata->>'causation_id' AS cause FROM events"
                             " WHERE metadata->>'causation_id' = ANY($1::text[])"
                             " GROUP BY metadata->>'causation_id', stream_id, event_type HAVING count(*) > 1", causes):
                found.add((service, row["cause"]))
        return found

    def _check_case(self, report: Report, run: CaseRun, events: list[Published]) -> None:
        counted = Counter(event.name for event in events)
        expected = {**EXPECTED_EVENTS[run.mode], "DocumentReceived": 3 + run.extra_documents}
        wrong = {name: (counted.get(name, 0), times) for name, times in expected.items()
                 if counted.get(name, 0) != times}
        if wrong:
            report.problems.append(f"case {run.case_id} ({run.mode}): events (found, expected) {wrong}")

    async def _check_dead_letters(self, report: Report, event_ids: set[str], allowed: set[str]) -> None:
        for service in self.cluster.consumers:
            dead = await drain_queue(self.cluster.rabbitmq_url, f"{service}.inbox.dlq", timeout=1.0,
                                     until=lambda _: True)
            report.dead_letters += dead
            for message in dead:
                message_id = message.message_id or ""
                if message_id in event_ids or message_id not in allowed:
                    report.problems.append(f"{service} dead-lettered {message_id} ({dead_letter_reason(message)})")
