"""`make chaos N=100000`: the long soak. About N commands' worth of whole cases (12 commands each) are driven
through two replicas of every service while, spread over the run, the broker is killed (SIGKILL of its VM,
then a cold start), PostgreSQL is restarted (`-m immediate`) and consumer replicas are killed (SIGKILL at a
random moment, or right after a commit and before its ack) and restarted. The desk's clients send every command
with an Idempotency-Key and retry with it after a 503 or a timeout. At N=100000: 10 broker kills,
3 PostgreSQL restarts, 20 consumer kills; proportionally fewer for a smaller N (CHAOS_BROKER_KILLS,
CHAOS_POSTGRES_RESTARTS and CHAOS_CONSUMER_KILLS set them outright). Then the checker accounts for every
command and event, prints the counts, and the exit status says whether anything was lost or duplicated.

Whole-server faults are taken only while no other test run is going on this machine (tests.faults.infra).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from .checker import Checker
from .cluster import Cluster, running_cluster
from .desk import Desk, FlowFailed
from .infra import EXCLUSIVE_TIMEOUT, MachineBusy, broker_killed, restart_postgres, whole_server_fault

COMMANDS_PER_CASE = 12
AT_FULL_SCALE = {"broker kills": 10, "postgres restarts": 3, "consumer kills": 20}
FULL_SCALE = 100_000
# Events each consumer reacts to, for crashes right after a commit.
CRASH_POINTS = {"scheduling": ("CaseAccepted", "PaymentCaptured"),
                "billing": ("SlotConfirmed", "ConsultationCompleted"),
                "reporting": ("CaseSubmitted", "SlotConfirmed", "ReportDrafted")}


def planned_faults(n: int) -> dict[str, int]:
    overrides = {"broker kills": "CHAOS_BROKER_KILLS", "postgres restarts": "CHAOS_POSTGRES_RESTARTS",
                 "consumer kills": "CHAOS_CONSUMER_KILLS"}
    return {kind: int(os.environ.get(overrides[kind], max(1, math.ceil(full * n / FULL_SCALE))))
            for kind, full in AT_FULL_SCALE.items()}


async def poll(condition: Callable[[], bool], timeout: float = math.inf) -> None:
    """Until `condition` holds or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if condition() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.1)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Soak:
    def __init__(self, cluster: Cluster, desk: Desk, cases: int, faults: dict[str, int], seed: int) -> None:
        self.cluster = cluster
        self.desk = desk
        self.cases = cases
        self.random = random.Random(seed)
        self.plan = [kind for kind, times in faults.items() for _ in range(times)]
        self.random.shuffle(self.plan)
        self.done: Counter[str] = Counter()

    async def run(self, concurrency: int) -> None:
        runs, flows = self.desk.start(self.cases, concurrency=concurrency)
        started = time.monotonic()
        for index, kind in enumerate(self.plan):
            # Faults spread evenly over the stream, by cases closed.
            target = math.ceil(self.cases * (index + 1) / (len(self.plan) + 1))

            def reached(at_least: int = target) -> bool:
                return flows.done() or sum(run.finished for run in runs) >= at_least

            await poll(reached)
            if flows.done():
                break
            log(f"{sum(r.finished for r in runs)}/{self.cases} cases closed; fault {index + 1}/{len(self.plan)}: "
                f"{kind}")
            await self.inject(kind)
            self.done[kind] += 1
        await flows
        log(f"all {self.cases} cases closed in {time.monotonic() - started:.0f}s")

    async def inject(self, kind: str) -> None:
        faults: dict[str, Callable[[], Awaitable[None]]] = {
            "broker kills": self.kill_broker, "postgres restarts": self.restart_postgres,
            "consumer kills": self.kill_consumer}
        await faults[kind]()
        await self.cluster.heal()

    async def kill_broker(self) -> None:
        async with broker_killed():
            await asyncio.sleep(self.random.uniform(0.5, 3.0))

    async def restart_postgres(self) -> None:
        await restart_postgres()

    async def kill_consumer(self) -> None:
        service = self.random.choice(self.cluster.consumers)
        process = self.random.choice([p for p in self.cluster.replicas[service] if p.alive])
        if self.random.random() < 0.5:
            process.kill()
            log(f"  SIGKILL {process.name}")
        else:
            event = self.random.choice(CRASH_POINTS[service])
            self.cluster.arm_crash_after_commit(service, event)
            log(f"  {service}: the next replica to commit {event} dies before its ack")
            await poll(lambda: self.cluster.crash_fired(service), timeout=60)
            if not self.cluster.crash_fired(service):
                (self.cluster.control / f"{service}.crash-after-commit").unlink(missing_ok=True)
                process.kill()
                log(f"  {event} did not come in a minute: SIGKILL {process.name} instead")
            else:
                # The switch fires just before the SIGKILL: wait for the death itself, so heal() restarts it.
                await poll(lambda: any(not p.alive for p in self.cluster.replicas[service]), timeout=30)
                (self.cluster.control / f"{service}.crash-after-commit.fired").unlink(missing_ok=True)


async def soak(n: int, replicas: int, concurrency: int, seed: int) -> int:
    cases = max(3, n // COMMANDS_PER_CASE)
    faults = planned_faults(n)
    log(f"chaos soak: N={n}: {cases} cases (~{cases * COMMANDS_PER_CASE} commands), {replicas} replica(s) of each "
        f"service; planned: " + ", ".join(f"{kind} {times}" for kind, times in faults.items()))
    waiting = float(os.environ.get("FAULTS_EXCLUSIVE_TIMEOUT", EXCLUSIVE_TIMEOUT))
    every_service = dict.fromkeys(("intake", "scheduling", "billing", "reporting"), replicas)
    try:
        async with whole_server_fault(timeout=waiting), running_cluster(every_service) as cluster, \
                Desk(cluster) as desk:
            run = Soak(cluster, desk, cases, faults, seed)
            try:
                await run.run(concurrency)
            except FlowFailed as failure:
                log(f"FLOWS FAILED: {failure}")
            report = await Checker(cluster, desk).account(settle_timeout=300)
    except MachineBusy as busy:
        log(f"not run: other test runs kept the machine busy ({busy})")
        return 2
    finished = sum(r.finished for r in desk.runs)
    print()
    print(f"chaos soak N={n}: {finished}/{cases} cases closed; faults injected: "
          + ", ".join(f"{kind} {run.done[kind]}" for kind in AT_FULL_SCALE))
    print(report.summary())
    # The desk retries with each command's Idempotency-Key (tests.faults.desk): how often that mattered.
    print(f"idempotent retries: {sum(c.replayed for c in desk.commands)} answers replayed, "
          f"{sum(c.recovered_from_store for c in desk.commands)} commands recorded before their answer was lost")
    for problem in report.problems[:20]:
        print(f"  problem: {problem}")
    for example in report.commands.lost_examples[:5] + report.events.lost_examples[:5]:
        print(f"  lost: {example}")
    for example in report.commands.duplicated_examples[:5] + report.events.duplicated_examples[:5]:
        print(f"  duplicated: {example}")
    clean = (finished == cases and not report.problems and not (report.commands.lost or report.commands.duplicated
                                                                 or report.events.lost or report.events.duplicated))
    print("PASS: nothing lost, nothing duplicated" if clean else "FAIL")
    return 0 if clean else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, nargs="?", default=FULL_SCALE, help="about how many commands to send")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="cases in flight at once")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # The soak's own broker clients complain while the broker is down on purpose; the counts say what matters.
    for noisy in ("aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    sys.exit(asyncio.run(soak(args.n, args.replicas, args.concurrency, args.seed)))


if __name__ == "__main__":
    main()
