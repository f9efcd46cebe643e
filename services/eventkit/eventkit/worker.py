"""The one background loop the runtime's workers share (the outbox relay, billing's charge worker): a task that
runs the worker's session until stopped, starts it again after a failure (a lost connection, a restart of the
broker or the database), is woken by a NOTIFY or else by its sweep timer, and stops gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


class BackgroundWorker:
    def __init__(self, name: str, *, sweep_interval: float = 1.0, retry_delay: float = 1.0) -> None:
        self.name = name
        self.sweep_interval = sweep_interval
        self.retry_delay = retry_delay
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def session(self) -> None:
        """Connect and work until `stopping`; raising ends the session, which is started again."""
        raise NotImplementedError

    def interrupted(self, error: Exception) -> None:
        """Called when a session failed, before the next one starts."""

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Lets the work in hand finish (the session sees `stopping` at its next wait), and cancels it if that
        takes longer than the grace period."""
        self._stopping = True
        self._wakeup.set()
        if self._task:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, grace_seconds)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self, *_: Any) -> None:
        """For `add_listener`: there is new work."""
        self._wakeup.set()

    async def wait_for_work(self) -> None:
        """Until woken, or the sweep interval passed (the backstop for a NOTIFY that was missed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self.sweep_interval)

    def expect_work(self) -> None:
        """Called before looking for work, so that a wake-up arriving while looking is not lost."""
        self._wakeup.clear()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.session()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.interrupted(error)
                log.warning("%s interrupted, starting again: %s", self.name, error.__class__.__name__,
                            exc_info=error)
                await asyncio.sleep(self.retry_delay)
