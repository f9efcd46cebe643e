"""Group commit: work handed in by concurrent tasks is committed in batches, one transaction for a batch, each
task awaiting its own result. Used by the consumer (the deliveries in hand together) and by the event store (the
appends of concurrent commands).

A lone piece of work goes at once: nothing waits for a batch to fill. While a batch commits, the work that arrives
meanwhile gathers for the next one; `concurrent_batches` (two) committers run at a time, so that one batch is built
while the other commits. What a batch does with its work, and what it does when it fails, is the caller's
`commit_batch`; it must resolve or fail every piece it was given.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from opentelemetry import context as otel_context

W = TypeVar("W")
R = TypeVar("R")


@dataclass(frozen=True)
class Pending(Generic[W, R]):
    """A piece of work waiting for a committer, with the trace it was handed in under and where its result goes."""

    work: W
    trace_context: otel_context.Context
    result: asyncio.Future[R]

    def resolve(self, result: R) -> None:
        if not self.result.done():  # the task that handed it in may have been cancelled meanwhile
            self.result.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.result.done():
            self.result.set_exception(error)


class GroupCommitter(Generic[W, R]):
    def __init__(self, commit_batch: Callable[[list[Pending[W, R]]], Awaitable[None]], *, batch_max: int,
                 concurrent_batches: int = 2, key: Callable[[W], Hashable] | None = None) -> None:
        """`key`, when given, keeps two pieces of work with the same key apart: never in one batch, nor in two
        batches committing at once; the later waits until the earlier's batch has committed, so they commit in the
        order handed in (for work that would conflict with its twin inside one statement or race it in two)."""
        self.commit_batch = commit_batch
        self.batch_max = batch_max
        self.concurrent_batches = concurrent_batches
        self.key = key
        self._waiting: list[Pending[W, R]] = []
        self._committers: set[asyncio.Task[None]] = set()
        self._committing_keys: set[Hashable] = set()

    async def run(self, work: W) -> R:
        """Hand `work` to a committer and wait for its result; start a committer if fewer than
        `concurrent_batches` are at work."""
        loop = asyncio.get_running_loop()
        pending: Pending[W, R] = Pending(work, otel_context.get_current(), loop.create_future())
        self._waiting.append(pending)
        if len(self._committers) < self.concurrent_batches:
            # Its own context: the committer outlives this task and commits others' work, each under its own trace.
            self._committers.add(loop.create_task(self._commit_waiting(), context=contextvars.Context()))
        return await pending.result

    def _next_batch(self) -> list[Pending[W, R]]:
        batch: list[Pending[W, R]] = []
        keys: set[Hashable] = set(self._committing_keys)
        later: list[Pending[W, R]] = []
        for index, pending in enumerate(self._waiting):
            if len(batch) == self.batch_max:
                later += self._waiting[index:]
                break
            if pending.result.done():  # given up (cancelled) before it was taken: nothing to do
                continue
            if self.key is not None:
                key = self.key(pending.work)
                if key in keys:
                    later.append(pending)
                    continue
                keys.add(key)
            batch.append(pending)
        self._waiting = later
        return batch

    async def _commit_waiting(self) -> None:
        batch: list[Pending[W, R]] = []
        try:
            while self._waiting:
                batch = self._next_batch()
                if not batch:
                    break  # what is left waits for keys another committer has in hand: that one takes it after
                batch_keys = {self.key(pending.work) for pending in batch} if self.key is not None else set()
                self._committing_keys |= batch_keys
                try:
                    await self.commit_batch(batch)
                finally:
                    self._committing_keys -= batch_keys
        except BaseException as error:  # cancelled (the process is stopping): nothing of the batch is reported done
            for pending in (*batch, *(self._waiting if len(self._committers) <= 1 else ())):
                pending.fail(error)
            raise
        finally:
            # Leaves the set in the same step that found nothing waiting. (A done callback would run a step later:
            # work handed in between would find this committer still counted, start none, and wait forever.)
            self._committers.discard(asyncio.current_task())
