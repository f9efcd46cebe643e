"""The auditor's page: each service's access log (who read whose personal data) and its hash chain verified."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from desk.backends import SERVICES
from desk.sessions import StaffSession
from desk.web import backends, names_of, pages, problem, render, staff

router = APIRouter()
Auditor = Annotated[StaffSession, Depends(staff("auditor"))]


PAGE_SIZE = 50
DONE = 0  # a service's place in `older` once its log has been shown to its first entry
PLACES = r"^[a-z]+:\d+(,[a-z]+:\d+)*$"


def _places(older: str | None) -> dict[str, int]:
    """Where each service's log goes on from (`service:id`, comma-separated: the entries before that id); a
    service not named goes on from its newest entry."""
    places = {}
    for part in (older or "").split(","):
        service, _, entry_id = part.partition(":")
        if service in SERVICES and entry_id.isdigit():
            places[service] = int(entry_id)
    return places


@router.get("/audit", response_class=HTMLResponse)
async def access_log(request: Request, session: Auditor,
                     case_id: Annotated[UUID | None, Query()] = None,
                     older: Annotated[str | None, Query(max_length=200, pattern=PLACES)] = None,
                     limit: Annotated[int, Query(ge=1, le=999)] = PAGE_SIZE) -> Response:
    """The four services' access logs as one, newest first, paged: each page asks every service for the entries
    before the last one of its shown so far, and shows the newest `limit` of them all."""
    b = backends(request)
    token = session.access_token
    places = _places(older)
    asked = [s for s in SERVICES if places.get(s) != DONE]
    logs = await asyncio.gather(*(b.get(s, "/audit/access-log", token, case_id=str(case_id) if case_id else None,
                                        before_id=places.get(s), limit=limit + 1) for s in asked))
    checks = await asyncio.gather(*(b.get(s, "/audit/access-log/verify", token) for s in SERVICES))
    entries = sorted(((service, entry) for service, answer in zip(asked, logs, strict=True) if answer.ok
                      for entry in answer.body["entries"]),
                     key=lambda pair: (datetime.fromisoformat(str(pair[1]["at"])), pair[1]["id"]), reverse=True)
    shown = entries[:limit]
    following = dict(places)
    for service, answer in zip(asked, logs, strict=True):
        if not answer.ok:
            continue  # asked again from the same place on the next page
        fetched = answer.body["entries"]
        mine = [entry["id"] for s, entry in shown if s == service]
        if len(fetched) <= limit and len(mine) == len(fetched):
            following[service] = DONE  # shown to its first entry
        elif mine:
            following[service] = min(mine)
        elif service not in following:
            # None shown, all older than those shown: the next page starts at its newest, not at entries
            # written since (this page's own listing among them).
            following[service] = max(entry["id"] for entry in fetched) + 1
    # One more than a page from each: a service with more left has at least one entry not shown.
    more = len(entries) > len(shown)
    names = await names_of(request, (entry["actor_id"] for _, entry in shown))
    cursor = ",".join(f"{s}:{following[s]}" for s in SERVICES if s in following)
    return render(request, "audit.html", session, entries=shown, case_id=case_id, names=names,
                  pages=pages(request, "older", cursor if more else None),
                  checks=[(service, answer.body if answer.ok else None,
                           None if answer.ok else problem(answer, session.lang))
                          for service, answer in zip(SERVICES, checks, strict=True)])
