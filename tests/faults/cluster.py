"""The services as real processes (their own `serve` command, through tests.faults.serve) on a fresh RabbitMQ
vhost and fresh databases: started, killed, stopped and restarted like pods, and removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aio_pika
import asyncpg
import httpx

from eventkit.testing import RABBITMQ_MANAGEMENT, RABBITMQ_PASSWORD, RABBITMQ_USER, fresh_database, fresh_vhost

ROOT = Path(__file__).resolve().parents[2]
# The services that consume from an inbox (intake only publishes).
CONSUMERS = ("scheduling", "billing", "reporting")
SERVE = "tests.faults.serve"
# Every service's clock stands still at 09:00 in Tokyo on the consultation day of every case (a Tuesday).
FROZEN_AT = "2026-12-08T00:00:00+00:00"
# The consultation (10:00 to 11:00) is completed at 11:05: the completion's own instant (serve.py).
CONSULTED_AT = "2026-12-08T02:05:00+00:00"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceDied(RuntimeError):
    pass


@dataclass
class ServiceProcess:
    """One replica of a service: a child process with its own HTTP port and log file."""

    service: str
    replica: int
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def start(self) -> None:
        """Start the replica: the service's own `serve` command through tests.faults.serve (fixed clock, journal)."""
        assert not self.alive, f"{self.name} is already running"
        env = {**self.env, f"{self.service.upper()}_HTTP_PORT": str(self.port)}
        command = [sys.executable, "-m", SERVE, self.service, "serve"]
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(command)}\n".encode())
            self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1

    async def wait_ready(self, timeout: float = 90.0) -> None:
        """Until /readyz answers 200: database, relay, broker and the consumer attached as the broker sees it."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                if not self.alive:
                    raise ServiceDied(f"{self.name} exited with {self.returncode}:\n{self.log_tail()}")
                try:
                    response = await client.get(f"{self.url}/readyz")
                    if response.status_code == 200:
                        return
                    last = response.text
                except httpx.HTTPError as error:
                    last = error.__class__.__name__
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready after {timeout}s ({last}):\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    async def readiness(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            body: dict[str, Any] = (await client.get(f"{self.url}/readyz")).json()
            return body

    def kill(self) -> int:
        """SIGKILL: no shutdown code runs, as when a node dies or the OOM killer strikes."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        return self.process.wait()

    async def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM, as Kubernetes stops a pod; waits for the process to finish its shutdown."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    async def wait_exit(self, timeout: float = 40.0) -> int:
        assert self.process is not None
        process = self.process
        return await asyncio.to_thread(process.wait, timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Cluster:
    """Every replica of every service started for one scenario, with their shared broker vhost."""

    rabbitmq_url: str
    databases: dict[str, str]
    replicas: dict[str, list[ServiceProcess]]
    workdir: Path
    _round_robin: dict[str, itertools.cycle[ServiceProcess]] = field(default_factory=dict)

    @property
    def vhost(self) -> str:
        return unquote(self.rabbitmq_url.rstrip("/").rsplit("/", 1)[-1])

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self.replicas)

    @property
    def consumers(self) -> tuple[str, ...]:
        return tuple(service for service in self.replicas if service in CONSUMERS)

    @property
    def processes(self) -> list[ServiceProcess]:
        return [process for replicas in self.replicas.values() for process in replicas]

    def url(self, service: str) -> str:
        """A replica to send a request to: the next live one, as a Kubernetes Service would pick."""
        cycle = self._round_robin.setdefault(service, itertools.cycle(self.replicas[service]))
        for _ in range(len(self.replicas[service])):
            process = next(cycle)
            if process.alive:
                return process.url
        return self.replicas[service][0].url  # none is up: the request fails to connect and is retried

    def start(self, *services: str) -> None:
        for process in self.processes:
            if (not services or process.service in services) and not process.alive:
                process.start()

    async def wait_ready(self, *services: str, timeout: float = 90.0) -> None:
        await asyncio.gather(*(process.wait_ready(timeout) for process in self.processes
                               if not services or process.service in services))

    async def stop(self) -> None:
        for process in self.processes:
            if process.alive:
                process.kill()

    async def database(self, service: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.databases[service])

    async def inbox_consumers(self, service: str) -> int:
        """How many consumers the broker itself counts on the service's inbox."""
        connection = await aio_pika.connect(self.rabbitmq_url, timeout=10)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(f"{service}.inbox", passive=True)
            return int(queue.declaration_result.consumer_count or 0)
        finally:
            await connection.close()

    async def queue_depth(self, queue_name: str) -> int:
        """Messages ready in a queue (AMQP passive declare: exact, unlike the management API's sampled stats)."""
        connection = await aio_pika.connect(self.rabbitmq_url, timeout=10)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(queue_name, passive=True)
            return int(queue.declaration_result.message_count or 0)
        finally:
            await connection.close()

    async def all_attached(self) -> bool:
        """Every replica answers ready, and the broker counts one consumer per running consumer replica."""
        try:
            for service in self.consumers:
                running = [p for p in self.replicas[service] if p.alive]
                if await self.inbox_consumers(service) != len(running):
                    return False
            for process in self.processes:
                if process.alive and (await process.readiness()).get("ready") is not True:
                    return False
        except Exception:
            return False
        return True

    async def wait_attached(self, timeout: float = 180.0) -> None:
        """Until every running replica is ready and the broker counts its consumer (see all_attached)."""
        deadline = time.monotonic() + timeout
        while not await self.all_attached():
            dead = [p.name for p in self.processes if p.starts and not p.alive]
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumers not attached after {timeout:.0f}s (down: {dead}):\n{self.logs()}")
            await asyncio.sleep(0.2)

    async def heal(self) -> None:
        """Every replica running again (those a scenario killed are restarted) and attached."""
        self.start()
        await self.wait_ready()
        await self.wait_attached()

    async def inbox_bindings(self, service: str) -> list[str]:
        """The routing-key patterns the broker has the service's inbox bound with."""
        async with httpx.AsyncClient(base_url=RABBITMQ_MANAGEMENT, auth=(RABBITMQ_USER, RABBITMQ_PASSWORD),
                                     timeout=10) as client:
            response = await client.get(
                f"/api/queues/{quote(self.vhost, safe='')}/{quote(f'{service}.inbox', safe='')}/bindings")
            response.raise_for_status()
            return [binding["routing_key"] for binding in response.json() if binding["source"]]

    # --- switches and records shared with tests.faults.serve --------------------------------------------

    @property
    def control(self) -> Path:
        return self.workdir / "control"

    @property
    def journal_path(self) -> Path:
        return self.workdir / "journal.tsv"

    def arm_crash_after_commit(self, service: str, event_name: str) -> None:
        """The next replica of `service` to commit a delivery of `event_name` dies before acking it."""
        (self.control / f"{service}.crash-after-commit").write_text(event_name)

    def crash_fired(self, service: str) -> bool:
        return (self.control / f"{service}.crash-after-commit.fired").exists()

    def slow_down(self, service: str, seconds: float | None) -> None:
        """Each delivery to `service` waits `seconds` before it is handled (None: at full speed again)."""
        switch = self.control / f"{service}.delay"
        if seconds is None:
            switch.unlink(missing_ok=True)
        else:
            switch.write_text(str(seconds))

    def deliveries_in_hand(self) -> int:
        """Deliveries a live consumer began and has not finished with: being handled, or held unacked through a
        retry's backoff (the broker counts those as neither ready nor gone)."""
        live = {p.process.pid for p in self.processes if p.alive and p.process is not None}
        begun = sum(1 for entry in self.journal() if entry.verdict == "begin" and entry.pid in live)
        settled_path = Path(f"{self.journal_path}.settled")
        settled = sum(1 for line in (settled_path.read_text().splitlines() if settled_path.exists() else [])
                      if int(line.split("\t", 1)[0]) in live)
        return begun - settled

    def journal(self) -> list[JournalEntry]:
        """What every consumer replica noted so far: each delivery begun, and how it ended."""
        if not self.journal_path.exists():
            return []
        entries = []
        for line in self.journal_path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 6:
                entries.append(JournalEntry(int(parts[0]), parts[1], parts[2], parts[3], parts[4], parts[5]))
        return entries

    def logs(self) -> str:
        return "\n".join(f"==== {p.name} (exit {p.returncode})\n{p.log_tail()}" for p in self.processes)


@dataclass(frozen=True)
class JournalEntry:
    pid: int
    service: str
    verdict: str  # begin, crash, or the consumer's verdict: done, duplicate, retry, requeue, dead_letter
    event_id: str
    event_name: str
    reason: str


def service_env(service: str, rabbitmq_url: str, database_url: str, workdir: Path,
                extra: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "COV_"))}
    env.update({
        "FAULTS_CLOCK": FROZEN_AT,
        "FAULTS_JOURNAL": str(workdir / "journal.tsv"),
        "FAULTS_CONTROL": str(workdir / "control"),
        "RABBITMQ_URL": rabbitmq_url,
        f"{service.upper()}_DATABASE_URL": database_url,
        "OUTBOX_SWEEP_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


@asynccontextmanager
async def running_cluster(replicas: Mapping[str, int], *, env: Mapping[str, str] | None = None,
                          start: Sequence[str] | None = None, keep_logs: Path | None = None) -> AsyncIterator[Cluster]:
    """Fresh vhost and databases, `replicas[service]` processes of each, started (those in `start`, all by
    default) and ready. Everything is killed and dropped afterwards; logs are printed if the body fails."""
    async with AsyncExitStack() as stack:
        workdir = keep_logs or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faults-")))
        rabbitmq_url = await stack.enter_async_context(fresh_vhost())
        databases = {service: await stack.enter_async_context(fresh_database(f"faults_{service}"))
                     for service in replicas}
        cluster = Cluster(rabbitmq_url=rabbitmq_url, databases=databases, replicas={}, workdir=workdir)
        cluster.control.mkdir(parents=True, exist_ok=True)
        for service, count in replicas.items():
            cluster.replicas[service] = [
                ServiceProcess(service, replica,
                               service_env(service, rabbitmq_url, databases[service], workdir, env or {}),
                               workdir / f"{service}-{replica}.log")
                for replica in range(1, count + 1)]
        stack.push_async_callback(cluster.stop)
        wanted = tuple(start) if start is not None else tuple(replicas)
        if wanted:
            cluster.start(*wanted)
            await cluster.wait_ready(*wanted)
        try:
            yield cluster
        except BaseException:
            print(cluster.logs(), file=sys.stderr)
            raise
