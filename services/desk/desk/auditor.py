"""The auditor's page: each service's access log (who read whose personal data) and its hash chain verified."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from desk.backends import SERVICES
from desk.sessions import StaffSession
from desk.web import backends, names_of, problem, render, staff

router = APIRouter()
Auditor = Annotated[StaffSession, Depends(staff("auditor"))]


@router.get("/audit", response_class=HTMLResponse)
async def access_log(request: Request, session: Auditor,
                     case_id: Annotated[UUID | None, Query()] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    b = backends(request)
    token = session.access_token
    logs = await asyncio.gather(*(b.get(s, "/audit/access-log", token, case_id=str(case_id) if case_id else None,
                                        limit=limit) for s in SERVICES))
    checks = await asyncio.gather(*(b.get(s, "/audit/access-log/verify", token) for s in SERVICES))
    entries = sorted(((service, entry) for service, answer in zip(SERVICES, logs, strict=True) if answer.ok
                      for entry in answer.body["entries"]), key=lambda pair: str(pair[1]["at"]), reverse=True)
    shown = entries[:limit]
    names = await names_of(request, (entry["actor_id"] for _, entry in shown))
    return render(request, "audit.html", session, entries=shown, case_id=case_id, names=names,
                  checks=[(service, answer.body if answer.ok else None,
                           None if answer.ok else problem(answer, session.lang))
                          for service, answer in zip(SERVICES, checks, strict=True)])
