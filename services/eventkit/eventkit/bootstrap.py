"""What every service's bootstrap does with its handlers' table: bind each handler's dependencies (as cosmicpython's
`inject_dependencies`), and hand the API one call for any command."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from eventkit.events import CommandContext
from eventkit.unit_of_work import UnitOfWork, UnitOfWorkFactory, run_retrying

BoundHandler = Callable[[Any, UnitOfWork], Awaitable[Any]]


def bind(handlers: Mapping[type, Callable[..., Awaitable[Any]]], **dependencies: Any) -> dict[type, BoundHandler]:
    """Each handler `(command, uow, *, name...)` with the dependencies it names bound: `(command, uow)`."""
    bound: dict[type, BoundHandler] = {}
    for command, handler in handlers.items():
        wanted = inspect.signature(handler).parameters
        bound[command] = partial(handler, **{name: value for name, value in dependencies.items() if name in wanted})
    return bound


class Dispatcher:
    """Runs a command's handler on a fresh unit of work, again on a conflict (eventkit.unit_of_work.run_retrying)."""

    def __init__(self, handlers: Mapping[type, BoundHandler], units_of_work: UnitOfWorkFactory) -> None:
        self.handlers = handlers
        self.units_of_work = units_of_work

    async def __call__(self, command: Any, context: CommandContext) -> Any:
        return await run_retrying(self.handlers[type(command)], command, context, self.units_of_work)
