"""Trying again what may succeed on a second try, for every retry in eventkit and the services (on tenacity).

    async for attempt in retrying(attempts=10, on=CONFLICTS, wait=jittered(0.005)):
        with attempt:
            return await decide_and_append()

The last failure is raised as it was (not wrapped). What to retry on is the caller's: a conflict with a concurrent
writer (`eventkit.unit_of_work.CONFLICTS`), a transient database error (`eventkit.db.TRANSIENT_DB_ERRORS`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry, retry_if_exception_type, stop_after_attempt

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Wait = Callable[[RetryCallState], float]
Errors = type[BaseException] | tuple[type[BaseException], ...]


def jittered(step: float) -> Wait:
    """A random pause up to `step` seconds times the attempts made: writers who collided do not collide again in
    lockstep."""
    return lambda state: random.uniform(0, step * state.attempt_number)  # noqa: S311


def doubling(first: float) -> Wait:
    """`first` seconds, then twice as long after each further failure."""
    return lambda state: first * 2 ** (state.attempt_number - 1)


def _noted(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.info("%s failed (%s), trying again", getattr(state.fn, "__qualname__", "a step"),
             error.__class__.__name__)


def retrying(*, attempts: int, on: Errors, wait: Wait) -> AsyncRetrying:
    """At most `attempts` tries of the block, again after `wait` whenever it raised one of `on`."""
    return AsyncRetrying(stop=stop_after_attempt(attempts), retry=retry_if_exception_type(on), wait=wait,
                         reraise=True, before_sleep=_noted)


def retried(*, attempts: int, on: Errors, wait: Wait) -> Callable[[Callable[P, Awaitable[T]]],
                                                                  Callable[P, Awaitable[T]]]:
    """`retrying` as a decorator of an async function."""

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        wrapped: Callable[P, Awaitable[T]] = retry(stop=stop_after_attempt(attempts), retry=retry_if_exception_type(on),
                                                   wait=wait, reraise=True, before_sleep=_noted)(function)
        return wrapped

    return decorate
