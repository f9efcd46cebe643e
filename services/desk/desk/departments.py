"""The departments the desk offers, as intake serves them (`GET /departments`: code, Japanese and English names).

The list is fetched with the signed-in person's own token and kept in the desk process for
`DESK_DEPARTMENTS_CACHE_SECONDS` (default 300), so that not every page asks intake; it is the same for everyone, so
one copy serves every session. When intake cannot be asked, nothing is made up: pages show the codes, and a form that
needs the list says that the catalogue is unavailable (`Departments.available` is False)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from desk.backends import Backends

log = logging.getLogger(__name__)

# How long a failed fetch is remembered (at most the cache's own time): a dead intake is not asked by every page.
RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Departments:
    """One answer of intake's catalogue: the departments offered, in intake's order, with their names."""

    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (ja, en)
    available: bool = True

    @property
    def codes(self) -> list[str]:
        return list(self.names)

    def name(self, code: str | None, lang: str) -> str:
        """The department's name in `lang`; its code when the catalogue does not name it (or is unavailable)."""
        if not code:
            return ""
        pair = self.names.get(code)
        return (pair[0] if lang == "ja" else pair[1]) if pair else code

    def offered(self, code: str | None) -> str | None:
        """`code` if it is a department of the catalogue, else None (a filter that is not one is no filter)."""
        return code if code in self.names else None


UNAVAILABLE = Departments(available=False)

# The catalogue of the request being answered (set by the page's sign-in check, web.staff), read by the words'
# `dept` helper: each request runs in its own context, so one request never sees another's.
CURRENT: ContextVar[Departments] = ContextVar("departments", default=UNAVAILABLE)


def current() -> Departments:
    return CURRENT.get()


class DepartmentCatalogue:
    """Intake's department catalogue, cached for `ttl_seconds`; a failure is remembered for a few seconds."""

    def __init__(self, backends: Backends, ttl_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._backends = backends
        self._ttl = ttl_seconds
        self._retry = min(RETRY_SECONDS, ttl_seconds)
        self._clock = clock
        self._cached: Departments | None = None
        self._until = 0.0  # when the cached answer (or the remembered failure) expires
        self._lock = asyncio.Lock()

    async def get(self, token: str) -> Departments:
        if self._clock() < self._until:
            return self._cached or UNAVAILABLE
        async with self._lock:
            if self._clock() < self._until:  # another request fetched it meanwhile
                return self._cached or UNAVAILABLE
            return await self._fetch(token)

    async def _fetch(self, token: str) -> Departments:
        answer = await self._backends.get("intake", "/departments", token)
        found = _catalogue(answer.body) if answer.ok else None
        if found is not None:
            self._cached, self._until = found, self._clock() + self._ttl
            return found
        log.warning("intake's department catalogue is unavailable: %s %s", answer.status, answer.code)
        self._cached = None
        if answer.ok or answer.status >= 500:
            # Intake is down or answered nonsense: not asked again at once. A refusal (4xx) is this person's token
            # only, so the next person asks again.
            self._until = self._clock() + self._retry
        return UNAVAILABLE


def _catalogue(body: object) -> Departments | None:
    try:
        return Departments({str(row["code"]): (str(row["name_ja"]), str(row["name_en"]))
                            for row in body["departments"]})  # type: ignore[index]
    except (KeyError, TypeError):
        return None
