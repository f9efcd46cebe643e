"""Faults in this machine's PostgreSQL and RabbitMQ.

Two kinds. Scoped faults touch only a scenario's own resources and are safe at any time: closing the
connections of one vhost, terminating the backends of one database. Whole-server faults (stopping,
killing or restarting the broker or PostgreSQL) hit every other test on the machine, so they wait until
no other pytest or benchmark has run for a while (`exclusive_machine`), and always put the server back
and wait until it answers again, even when the scenario fails.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import aio_pika
import asyncpg
import httpx

from eventkit.testing import (
    POSTGRES_BASE,
    RABBITMQ_HOST,
    RABBITMQ_MANAGEMENT,
    RABBITMQ_PASSWORD,
    RABBITMQ_USER,
)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Command lines of runs a whole-server fault would break: test runs, benchmarks, another chaos soak.
OTHER_TEST_RUNS = r"pytest|bench[./]|tests\.faults\.soak"
QUIET_SECONDS = float(os.environ.get("FAULTS_QUIET_SECONDS", "10"))
EXCLUSIVE_TIMEOUT = float(os.environ.get("FAULTS_EXCLUSIVE_TIMEOUT", "240"))
# Whole-server faults of two runs on one machine take turns on this lock.
LOCK_PATH = Path(tempfile.gettempdir()) / "secondopinion-whole-server-faults.lock"


def alone_on_machine() -> bool:
    """CI runs one pytest on a machine of its own: nothing to wait for (FAULTS_ALONE=1 says the same locally)."""
    return os.environ.get("FAULTS_ALONE") == "1" or os.environ.get("CI", "").lower() in ("1", "true", "yes")


class MachineBusy(RuntimeError):
    """Other test runs kept the machine busy: a whole-server fault would break them."""


class NotLocal(RuntimeError):
    pass


def require_local() -> None:
    """Faults are injected only into this machine's own servers, never into anything configured remotely."""
    hosts = {"PostgreSQL": urlsplit(POSTGRES_BASE).hostname, "RabbitMQ": RABBITMQ_HOST,
             "RabbitMQ management": urlsplit(RABBITMQ_MANAGEMENT).hostname}
    remote = {name: host for name, host in hosts.items() if host not in LOCAL_HOSTS}
    if remote:
        raise NotLocal(f"refusing to inject faults into non-local servers: {remote}")


# --- is anyone else testing on this machine? -------------------------------------------------------------

def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the parent pid follows the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _ancestors(pid: int) -> set[int]:
    found: set[int] = set()
    current: int | None = pid
    while current and current not in found:
        found.add(current)
        current = _parent(current)
    return found


def other_test_runs() -> list[str]:
    """Command lines of test runs that are neither this process, nor one of its ancestors (the `make test` or
    `uv run` that started it), nor one of its descendants: a run never waits for itself."""
    me = os.getpid()
    mine = _ancestors(me)
    result = subprocess.run(["pgrep", "-af", OTHER_TEST_RUNS], capture_output=True, text=True, check=False)
    others = []
    for line in result.stdout.splitlines():
        pid_text, _, command = line.partition(" ")
        pid = int(pid_text)
        if pid in mine or me in _ancestors(pid):
            continue
        others.append(command)
    return others


class MachineWatch:
    """Polls for other test runs in the background, so a quiet period is known without waiting for it
    again before every whole-server fault."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.started_at = time.monotonic()
        # Nobody has been seen yet, but nobody has been watched for long either.
        self.last_busy = self.started_at
        self.last_seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults-machine-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            others = other_test_runs()
            if others:
                self.last_busy = time.monotonic()
                self.last_seen = others
            self._stop.wait(self.interval)

    def quiet_for(self) -> float:
        return time.monotonic() - self.last_busy

    def stop(self) -> None:
        self._stop.set()


_watch: MachineWatch | None = None
_gave_up = False


def machine_watch() -> MachineWatch:
    global _watch
    if _watch is None:
        _watch = MachineWatch()
    return _watch


async def exclusive_machine(quiet: float = QUIET_SECONDS, timeout: float = EXCLUSIVE_TIMEOUT) -> None:
    """Wait until no other test run has been seen for `quiet` seconds; MachineBusy after `timeout`. Returns at
    once when alone on the machine (CI)."""
    global _gave_up
    require_local()
    if alone_on_machine():
        return
    if _gave_up:
        # Busy a moment ago: the next scenario does not wait as long again before it is skipped too.
        timeout = min(timeout, 3 * quiet)
    watch = machine_watch()
    deadline = time.monotonic() + timeout
    while watch.quiet_for() < quiet:
        if time.monotonic() > deadline:
            _gave_up = True
            raise MachineBusy(f"other test runs kept going for {timeout:.0f}s: {watch.last_seen[:3]}")
        await asyncio.sleep(0.25)
    _gave_up = False


_held = 0  # nesting depth of whole_server_fault in this process (a scenario holds it around its faults)


@asynccontextmanager
async def whole_server_fault(timeout: float = EXCLUSIVE_TIMEOUT) -> AsyncIterator[None]:
    """The machine held for faults in servers others share: this run's turn on the lock, and no other run
    going. Both waits are bounded (MachineBusy), so nothing can hang on them. Re-entrant."""
    global _held
    require_local()
    if _held:
        # Already this run's turn; but someone may have started testing since: look again before each fault.
        await exclusive_machine(timeout=timeout)
        _held += 1
        try:
            yield
        finally:
            _held -= 1
        return
    deadline = time.monotonic() + timeout
    with LOCK_PATH.open("a") as lock_file:
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MachineBusy(f"another run held {LOCK_PATH} for {timeout:.0f}s") from None
                await asyncio.sleep(0.25)
        try:
            await exclusive_machine(timeout=max(deadline - time.monotonic(), 1.0))
            _held = 1
            try:
                yield
            finally:
                _held = 0
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


# --- running the servers' own command-line tools ------------------------------------------------------

async def run(*command: str, timeout: float = 120.0, check: bool = True) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = output.decode(errors="replace")
    if check and process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {text[-2000:]}")
    return process.returncode or 0, text


async def _poll(check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except Exception:  # noqa: S110 (not up yet: keep polling)
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come back within {timeout:.0f}s")
        await asyncio.sleep(interval)


# --- putting a server back, whatever happened ---------------------------------------------------------

# Servers a fault has taken down and not yet seen answer again. The atexit hook starts them should the
# process be torn down in the middle of a fault (a timeout, Ctrl-C): others on the machine need them.
_down: set[str] = set()


async def _restore(server: str, restore: Callable[[], Awaitable[None]]) -> None:
    """Run `restore` to the end even if the awaiting task is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(restore())
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    _down.discard(server)
    if cancelled:
        raise asyncio.CancelledError


def _restore_at_exit() -> None:
    if "rabbitmq" in _down:
        if not _broker_pids():
            subprocess.run(["rabbitmq-server", "-detached"], check=False, timeout=60)
        else:
            subprocess.run(["rabbitmqctl", "start_app"], check=False, timeout=120)
        subprocess.run(["rabbitmqctl", "await_startup", "--timeout", "120"], check=False, timeout=150)
    if "postgresql" in _down:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main", "start"],
                       check=False, timeout=120)


atexit.register(_restore_at_exit)


# --- RabbitMQ -------------------------------------------------------------------------------------------

async def close_vhost_connections(vhost: str) -> None:
    """`rabbitmqctl close_all_connections`, limited to one vhost: only the scenario's own clients lose theirs."""
    await run("rabbitmqctl", "close_all_connections", "--vhost", vhost, "fault injection by a test")


@asynccontextmanager
async def vhost_shut(vhost: str) -> AsyncIterator[None]:
    """Every connection to the vhost closed by the broker, and new ones refused for the body (every user's
    permissions in it withdrawn: the administrator's and each service's own user's), as during a broker restart but
    touching no other vhost. Clients reconnect within milliseconds of a bare close_all_connections; refusing them
    for a while makes their outage observable."""
    encoded = quote(vhost, safe="")
    async with httpx.AsyncClient(base_url=RABBITMQ_MANAGEMENT, auth=(RABBITMQ_USER, RABBITMQ_PASSWORD),
                                 timeout=30) as client:
        response = await client.get(f"/api/vhosts/{encoded}/permissions")
        response.raise_for_status()
        granted = response.json()
        for permission in granted:
            (await client.delete(f"/api/permissions/{encoded}/{quote(permission['user'], safe='')}")
             ).raise_for_status()
        try:
            await close_vhost_connections(vhost)
            yield
        finally:
            for permission in granted:
                (await client.put(f"/api/permissions/{encoded}/{quote(permission['user'], safe='')}", json={
                    key: permission[key] for key in ("configure", "write", "read")})).raise_for_status()


def _broker_pids() -> list[int]:
    result = subprocess.run(["pgrep", "-u", "rabbitmq", "-f", "beam.smp"], capture_output=True, text=True,
                            check=False)
    return [int(pid) for pid in result.stdout.split()]


async def broker_answers() -> bool:
    """AMQP accepts a connection, and the management API (which the tests use for vhosts) says every vhost runs."""
    connection = await aio_pika.connect(f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{RABBITMQ_HOST}:5672/",
                                        timeout=5)
    await connection.close()
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{RABBITMQ_MANAGEMENT}/api/health/checks/virtual-hosts",
                                    auth=(RABBITMQ_USER, RABBITMQ_PASSWORD))
        return response.status_code == 200


async def wait_for_broker(timeout: float = 180.0) -> None:
    await _poll(broker_answers, timeout, "RabbitMQ")


async def restore_broker() -> None:
    """Start whatever is down (the app inside a running node, or the node itself), then wait until it answers."""
    if _broker_pids():
        await run("rabbitmqctl", "start_app", check=False, timeout=120)
    if not _broker_pids():
        await run("rabbitmq-server", "-detached", timeout=60)
    await wait_for_broker()


@asynccontextmanager
async def broker_stopped() -> AsyncIterator[None]:
    """`rabbitmqctl stop_app` for the body, `start_app` after: the broker closes every connection."""
    async with whole_server_fault():
        _down.add("rabbitmq")
        try:
            await run("rabbitmqctl", "stop_app")
            yield
        finally:
            await _restore("rabbitmq", restore_broker)


@asynccontextmanager
async def broker_killed() -> AsyncIterator[None]:
    """SIGKILL of the broker's Erlang VM for the body (no goodbye to any client), a cold start after."""
    async with whole_server_fault():
        _down.add("rabbitmq")
        try:
            pids = _broker_pids()
            if not pids:
                raise RuntimeError("no RabbitMQ node process found to kill")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await _poll(_no_broker, 30, "RabbitMQ shutdown", interval=0.1)
            yield
        finally:
            await _restore("rabbitmq", restore_broker)


async def _no_broker() -> bool:
    return not _broker_pids()


# --- PostgreSQL -----------------------------------------------------------------------------------------

def _cluster_version() -> str:
    """The installed major version (`ls /etc/postgresql`), the newest if there are several."""
    versions = sorted((path.name for path in Path("/etc/postgresql").iterdir()), key=lambda name: float(name))
    return versions[-1]


async def postgres_answers() -> bool:
    conn = await asyncpg.connect(f"{POSTGRES_BASE}/postgres", timeout=5)
    try:
        return bool(await conn.fetchval("SELECT true"))
    finally:
        await conn.close()


async def restore_postgres() -> None:
    if not await _quietly(postgres_answers):
        await run("pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main", "start", check=False)
    await _poll(postgres_answers, 120, "PostgreSQL")


async def _quietly(check: Callable[[], Awaitable[bool]]) -> bool:
    try:
        return await check()
    except Exception:
        return False


@asynccontextmanager
async def postgres_down() -> AsyncIterator[None]:
    """PostgreSQL stopped with `-m immediate` (no checkpoint: crash recovery at start) for the body."""
    async with whole_server_fault():
        _down.add("postgresql")
        try:
            await run("pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main", "stop",
                      "-m", "immediate")
            yield
        finally:
            await _restore("postgresql", restore_postgres)


async def restart_postgres() -> None:
    """`pg_ctlcluster … restart -m immediate`, then wait until it accepts connections again."""
    async with whole_server_fault():
        _down.add("postgresql")
        try:
            await run("pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main", "restart",
                      "-m", "immediate", check=False)
        finally:
            await _restore("postgresql", restore_postgres)


async def terminate_backends(dsns: Iterable[str], *, waiting_on_lock: bool = False) -> int:
    """pg_terminate_backend on every connection to these databases (or only those blocked on a lock)."""
    names = [dsn.rsplit("/", 1)[1].split("?")[0] for dsn in dsns]
    conn = await asyncpg.connect(f"{POSTGRES_BASE}/postgres")
    try:
        terminated = await conn.fetchval(
            """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid()
                 AND (NOT $2 OR wait_event_type = 'Lock')""",
            names, waiting_on_lock)
        return int(terminated or 0)
    finally:
        await conn.close()


async def backends_waiting_on_lock(dsn: str) -> int:
    name = dsn.rsplit("/", 1)[1].split("?")[0]
    conn = await asyncpg.connect(f"{POSTGRES_BASE}/postgres")
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", name))
    finally:
        await conn.close()
