"""The console's own routes besides the pages of each role: where a signed-in person lands, health, readiness and
metrics. The pages are in signin, coordinator, cases, physician, cashier, auditor and privacy."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from desk.web import current_session, render, store

router = APIRouter()
HOME_BY_ROLE = (("coordinator", "/queue"), ("physician", "/screening"), ("cashier", "/counter"), ("auditor", "/audit"),
                ("privacy_officer", "/privacy"))


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    session = await current_session(request)
    if session is None:
        return RedirectResponse("/sign-in", status_code=303)
    for role, where in HOME_BY_ROLE:
        if session.holds(role):
            return RedirectResponse(where, status_code=303)
    return render(request, "error.html", session, status_code=403, problem={"message_key": "forbidden_page"})


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive", "service": "desk"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    try:
        ready = await store(request).pool.fetchval("SELECT true") is True
    except Exception:
        ready = False
    return JSONResponse({"ready": ready, "checks": {"database": ready}}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
