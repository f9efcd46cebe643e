"""What every benchmark shares: the machine's description, fast publishing with confirms, percentiles,
and measuring a consumer's rate from the timestamps its inbox rows were written with.

Everything talks to the local PostgreSQL and RabbitMQ only (127.0.0.1), on fresh databases and vhosts.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx

from eventkit.testing import POSTGRES_BASE, RABBITMQ_MANAGEMENT, RABBITMQ_PASSWORD, RABBITMQ_USER, AsOwners
from secondopinion_contracts import CONTENT_TYPE, CloudEvent

# How many publishes are in flight on one channel before we wait for their confirms.
PUBLISH_WINDOW = 500


def log(message: str) -> None:
    """Progress goes to stderr, so stdout keeps only the results table."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in [0, 1]) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Count and p50/p90/p99/max in milliseconds."""
    if not seconds:
        return {"count": 0}
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 1),
        "p90_ms": round(percentile(seconds, 0.90) * 1000, 1),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


@dataclass(frozen=True)
class Outgoing:
    """One message for the events exchange."""

    routing_key: str
    body: bytes
    message_id: str
    correlation_id: str


def outgoing(envelope: CloudEvent) -> Outgoing:
    """As the services' outbox relay publishes it."""
    return Outgoing(envelope.routing_key, envelope.to_json_bytes(), str(envelope.id), envelope.correlationid)


async def publish_all(url: str, messages: Iterable[Outgoing], *, window: int = PUBLISH_WINDOW) -> int:
    """Publish persistent messages to the events exchange, pipelined with publisher confirms, each as the service
    its routing key names (as its relay would); returns how many."""
    sent = 0
    async with AsOwners(url) as owners:
        pending: list[asyncio.Future[Any]] = []
        for message in messages:
            pending.append(asyncio.ensure_future(owners.publish(
                aio_pika.Message(body=message.body, message_id=message.message_id,
                                 correlation_id=message.correlation_id, content_type=CONTENT_TYPE,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                message.routing_key, timeout=30)))
            if len(pending) >= window:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending = []
        await asyncio.gather(*pending)
        sent += len(pending)
    return sent


async def queue_depth(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()


async def wait_for_rows(dsn: str, table: str, count: int, timeout: float, where: str = "true") -> int:
    """Poll until `table` has `count` rows (or the time is up); returns the count seen last."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            seen = int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}"))
            if seen >= count:
                break
            await asyncio.sleep(0.1)
        return seen
    finally:
        await conn.close()


async def inbox_rate(dsn: str, where: str = "true") -> dict[str, Any]:
    """Events handled per second, from the inbox rows' own timestamps (transaction start of the first and the
    last handled event): independent of start-up time and of how often we polled."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, extract(epoch FROM max(received_at) - min(received_at)) AS span"
            f" FROM inbox WHERE {where}")
    finally:
        await conn.close()
    assert row is not None
    count, span = int(row["n"]), float(row["span"] or 0.0)
    return {"events": count, "seconds": round(span, 3),
            "events_per_s": round((count - 1) / span, 1) if span > 0 and count > 1 else None}


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _uptime() -> float:
    return float(_read("/proc/uptime").split()[0])


def _cpu_by_process() -> dict[int, tuple[str, float, float]]:
    """(command, user+system CPU seconds, start time in seconds since boot) of every process now running."""
    found: dict[int, tuple[str, float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        command = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry)] = (command, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS,
                             int(fields[19]) / _CLOCK_TICKS)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _group(pid: int, command: str, named: dict[int, str], databases: tuple[str, ...]) -> str:
    if pid in named:
        return named[pid]
    if command.startswith("postgres"):
        line = _cmdline(pid)
        if any(f" {database} " in line for database in databases):
            return "postgres"  # backends serving the benchmark's own databases
        # Other databases' backends are someone else's load; the WAL writer, checkpointer and friends are shared.
        return "other" if "127.0.0.1(" in line or "[local]" in line else "postgres_shared"
    if command.startswith("beam"):
        return "rabbitmq"
    return "other"


def _runqueue_wait_seconds(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc/PID/task/*/schedstat)."""
    waited = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        fields = _read(f"/proc/{pid}/task/{task}/schedstat").split()
        if len(fields) >= 2:
            waited += int(fields[1])
    return waited / 1e9


class CpuMeter:
    """CPU seconds spent between start() and stop() by named processes (this one as "bench" by default), the
    PostgreSQL backends of the named databases, PostgreSQL's shared processes (WAL writer...), RabbitMQ,
    and everything else (other users of the machine), so a rate can be read as "who was busy"."""

    def __init__(self, named: dict[str, int] | None = None, databases: Sequence[str] = ()) -> None:
        self.named = {pid: name for name, pid in (named or {"bench": os.getpid()}).items()}
        self.databases = tuple(dsn.rsplit("/", 1)[-1] for dsn in databases)
        self._before: dict[int, tuple[str, float, float]] = {}
        self._waited: dict[int, float] = {}
        self._started = 0.0
        self._since_boot = 0.0

    def start(self) -> None:
        self._since_boot = _uptime()
        self._before = _cpu_by_process()
        self._waited = {pid: _runqueue_wait_seconds(pid) for pid in self.named}
        self._started = time.monotonic()

    def stop(self) -> dict[str, float]:
        after = _cpu_by_process()
        wall = time.monotonic() - self._started
        groups = (*self.named.values(), "postgres", "postgres_shared", "rabbitmq", "other")
        spent = dict.fromkeys(groups, 0.0)
        for pid, (command, seconds, born) in after.items():
            previous = self._before.get(pid)
            if previous is not None and previous[2] == born:
                used = seconds - previous[1]
            elif born >= self._since_boot - 0.05:
                used = seconds  # started during the interval
            else:
                continue  # not seen at the start (unreadable then): its share is unknown
            spent[_group(pid, command, self.named, self.databases)] += max(used, 0.0)
        # The named processes' time runnable but not running: a machine too busy to give them a CPU at once.
        waiting = {f"{name}_waiting_for_cpu": round((_runqueue_wait_seconds(pid) - self._waited[pid]) / wall, 2)
                   for pid, name in self.named.items()}
        # As a share of one core over the interval (the machine has os.cpu_count() of them).
        return {"wall_s": round(wall, 2), **{f"{key}_cores": round(value / wall, 2) for key, value in spent.items()},
                **waiting}


@contextmanager
def counting_statements() -> Iterator[Counter[str]]:
    """Count every statement any asyncpg connection of this process sends (one round trip each, once
    prepared), by the statement's first words. Diagnostic only: it slows the process a little."""
    counts: Counter[str] = Counter()
    connection = asyncpg.connection.Connection
    # `_execute` is asyncpg's private funnel for every prepared-statement call (fetch, fetchval, executemany...).
    original_execute, original_inner = connection.execute, getattr(connection, "_execute")  # noqa: B009

    async def execute(self: Any, query: str, *args: Any, timeout: float | None = None) -> Any:
        if not args:
            counts[_statement_key(query)] += 1
        return await original_execute(self, query, *args, timeout=timeout)

    async def inner(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        counts[_statement_key(query)] += 1
        return await original_inner(self, query, *args, **kwargs)

    connection.execute = execute  # type: ignore[method-assign]
    setattr(connection, "_execute", inner)  # noqa: B010
    try:
        yield counts
    finally:
        connection.execute = original_execute  # type: ignore[method-assign]
        setattr(connection, "_execute", original_inner)  # noqa: B010


def _statement_key(query: str) -> str:
    words = " ".join(query.split())
    if words.upper().startswith("SAVEPOINT") or words.upper().startswith("RELEASE SAVEPOINT"):
        return words.split(" __")[0]
    return words[:70]


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.prefix) / "bin" / "py-spy")
    return found if Path(found).exists() else None


@asynccontextmanager
async def profiled(path: Path | None, processes: dict[str, int] | None = None) -> AsyncIterator[None]:
    """Sample the named processes (this one by default) with py-spy while the block runs; raw stacks to `path`,
    or to `<path stem>.<name>.raw` beside it for several processes."""
    if path is None:
        yield
        return
    binary = py_spy()
    if binary is None:
        log("py-spy not installed (it is in the bench dependency group): not profiling")
        yield
        return
    targets = processes or {"bench": os.getpid()}
    recorders = []
    for name, pid in targets.items():
        target = path if len(targets) == 1 else path.with_name(f"{path.stem}.{name}{path.suffix}")
        recorders.append(await asyncio.create_subprocess_exec(
            binary, "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--format", "raw",
            "--output", str(target), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL))
    await asyncio.sleep(0.5)  # attaching takes a moment
    try:
        yield
    finally:
        for recorder in recorders:
            if recorder.returncode is None:
                recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                await asyncio.wait_for(recorder.wait(), 20)
            except TimeoutError:
                recorder.kill()


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


async def machine() -> dict[str, Any]:
    """The facts a figure is meaningless without: cores, memory, CPU, database and broker versions, load."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(), "cpu_model": _cpu_model(), "memory_gib": _memory_gib(),
        "python": platform.python_version(), "kernel": platform.release(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }
    conn = await asyncpg.connect(f"{POSTGRES_BASE}/postgres")
    try:
        info["postgresql"] = str(await conn.fetchval("SHOW server_version"))
        info["postgresql_settings"] = {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("shared_buffers", "synchronous_commit", "fsync", "max_connections")
        }
    finally:
        await conn.close()
    try:
        async with httpx.AsyncClient(base_url=RABBITMQ_MANAGEMENT, auth=(RABBITMQ_USER, RABBITMQ_PASSWORD),
                                     timeout=10) as client:
            overview = (await client.get("/api/overview")).json()
        info["rabbitmq"] = overview.get("rabbitmq_version")
        info["erlang"] = overview.get("erlang_version")
    except httpx.HTTPError:
        info["rabbitmq"] = "unknown"
    return info
