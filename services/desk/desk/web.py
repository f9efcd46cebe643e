"""What every page shares: the signed-in person, role guards, CSRF on every state-changing request, the
templates in the person's language, and the refusal of a service worded beside the action."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from desk import catalogue, departments
from desk.backends import Answer, Backends
from desk.departments import DepartmentCatalogue
from desk.sessions import CSRF_FIELD, SESSION_COOKIE, SessionStore, StaffSession
from desk.staff_names import StaffNames, staff_label

PDF_MEDIA_TYPE = "application/pdf"
TOKYO = ZoneInfo("Asia/Tokyo")
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
# Before sign-in (the sign-in form, the language switch) the CSRF token is a cookie of its own.
ANONYMOUS_CSRF_COOKIE = "desk_csrf"
# The path every page's live check ends in (static/live.js polls it).
LIVE_SUFFIX = "/live"


class SignInRequired(Exception):
    """No live session: the person is sent to the sign-in page."""


class Forbidden(Exception):
    """The person holds none of the roles the page is for."""


class CsrfRejected(Exception):
    pass


def tokyo(value: Any, fmt: str = "%Y/%m/%d %H:%M") -> str:
    """A time from a service (ISO 8601, UTC) as Japan time."""
    if value in (None, ""):
        return ""
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if not isinstance(value, datetime) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(TOKYO).strftime(fmt)


WEEKDAYS = "月火水木金土日"


def slot_time(value: Any) -> str:
    """A slot's start as the desk reads it out: 12/03(木) 10:00, Japan time."""
    if value in (None, ""):
        return ""
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(TOKYO)
    return f"{moment:%m/%d}({WEEKDAYS[moment.weekday()]}) {moment:%H:%M}"


def weekday(value: Any) -> str:
    """A date with its weekday, as a calendar shows it: 2026/12/03(木)."""
    if value in (None, ""):
        return ""
    when = date.fromisoformat(str(value)[:10])
    return f"{when:%Y/%m/%d}({WEEKDAYS[when.weekday()]})"


def day(value: Any) -> str:
    if value in (None, ""):
        return ""
    return date.fromisoformat(str(value)[:10]).strftime("%Y/%m/%d")


def yen(value: Any) -> str:
    return "" if value is None else f"¥{int(value):,}"


def short_id(value: Any) -> str:
    return str(value)[:8]


TEMPLATES.env.filters.update(tokyo=tokyo, day=day, yen=yen, short=short_id, slot=slot_time, weekday=weekday)


def today_tokyo(request: Request) -> date:
    """Today in Japan, by the desk's clock (the services' own in tests)."""
    now: datetime = request.app.state.clock()
    return now.astimezone(TOKYO).date()


def store(request: Request) -> SessionStore:
    sessions: SessionStore = request.app.state.sessions
    return sessions


def backends(request: Request) -> Backends:
    found: Backends = request.app.state.backends
    return found


def staff_names(request: Request) -> StaffNames:
    names: StaffNames = request.app.state.staff_names
    return names


async def names_of(request: Request, staff_ids: Any) -> dict[str, str]:
    """The names of the staff a page shows (one query), for its `staff_name(id)`: render(..., names=...)."""
    return await staff_names(request).names(staff_ids)


async def current_session(request: Request) -> StaffSession | None:
    cached = getattr(request.state, "staff", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    # A page left open polls its live check: that keeps nobody signed in past the idle timeout.
    session = await store(request).get(session_id, activity=not request.url.path.endswith(LIVE_SUFFIX))
    request.state.staff = session
    return session


def staff(*roles: str) -> Callable[..., Coroutine[Any, Any, StaffSession]]:
    """A dependency for a page of `roles`: sign in first; a person without the role is refused (403)."""

    async def signed_in(request: Request) -> StaffSession:
        session = await current_session(request)
        if session is None:
            raise SignInRequired
        if roles and not session.holds(*roles):
            raise Forbidden
        # Intake's department catalogue for this request's pages (cached in the desk process).
        found: DepartmentCatalogue = request.app.state.departments
        departments.CURRENT.set(await found.get(session.access_token))
        return session

    signed_in.page_roles = roles  # type: ignore[attr-defined]  # read by the route tests
    return signed_in


Signed = Annotated[StaffSession, Depends(staff())]


async def csrf_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matches the session's (or, signed out, the CSRF cookie's)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfRejected
    form = await request.form()
    sent = str(form.get(CSRF_FIELD, ""))
    session = await current_session(request)
    expected = session.csrf_token if session is not None else request.cookies.get(ANONYMOUS_CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRejected
    return form


csrf_form.checks_csrf = True  # type: ignore[attr-defined]
Form = Annotated[FormData, Depends(csrf_form)]


def lang_of(request: Request, session: StaffSession | None) -> str:
    if session is not None:
        return session.lang
    lang = request.cookies.get("desk_lang", "ja")
    return lang if lang in catalogue.LANGS else "ja"


def render(request: Request, template: str, session: StaffSession | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    lang = lang_of(request, session)
    names: dict[str, str] = context.pop("names", None) or {}
    anonymous_csrf = None
    if session is None:
        anonymous_csrf = request.cookies.get(ANONYMOUS_CSRF_COOKIE) or secrets.token_urlsafe(32)
    page = TEMPLATES.TemplateResponse(request, template, {
        **catalogue.words(lang), "session": session, "csrf": session.csrf_token if session else anonymous_csrf,
        "csrf_field": CSRF_FIELD, "poll_ms": int(request.app.state.settings.poll_seconds * 1000),
        "refusal": lambda code: catalogue.refusal(code, lang),
        "reason": lambda item: catalogue.refusal_detail(item, lang), "departments": departments.current(),
        "staff_name": lambda staff_id, plain=False: staff_label(staff_id, names, catalogue.label("staff_id", lang),
                                                                plain),
        **context}, status_code=status_code)
    if anonymous_csrf is not None and request.cookies.get(ANONYMOUS_CSRF_COOKIE) != anonymous_csrf:
        set_cookie(request, page, ANONYMOUS_CSRF_COOKIE, anonymous_csrf)
    return page


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, secure=True, samesite="lax", path="/")


def problem(answer: Answer, lang: str) -> dict[str, Any]:
    """A refused call as the page shows it beside the action: the message, its reasons, the fields at fault."""
    return {"message": catalogue.refusal(answer.code, lang, answer.service),
            "reasons": [catalogue.refusal_detail(reason, lang) for reason in answer.reasons],
            "fields": answer.fields, "code": answer.code}


async def printed(request: Request, session: StaffSession, service: str, path: str) -> Response:
    """A service's printed document, fetched with the person's token (a browser cannot send it) and answered as
    the service named it; a refusal is shown as the desk shows any other."""
    answer = await backends(request).document(service, path, session.access_token)
    if not answer.ok or not answer.content.startswith(b"%PDF"):
        status = answer.status if not answer.ok else 502
        refused = answer if not answer.ok else Answer(status=502, code="unavailable", service=service)
        return render(request, "error.html", session, status_code=status, problem=problem(refused, session.lang))
    headers = {"Cache-Control": "no-store",
               "Content-Disposition": answer.headers.get("content-disposition", "inline")}
    if "x-document-sha256" in answer.headers:
        headers["X-Document-SHA256"] = answer.headers["x-document-sha256"]
    return Response(answer.content, media_type=PDF_MEDIA_TYPE, headers=headers)


def field_problem(field: str, message: str) -> dict[str, Any]:
    return {"message": message, "reasons": [],
            "fields": {field: message}, "code": "invalid"}


async def done(request: Request, session: StaffSession, where: str, message_key: str = "outcome_ok",
               **details: Any) -> RedirectResponse:
    """An accepted action: the outcome shown once on the page it leads to (Post/Redirect/Get)."""
    await store(request).set_flash(session, {"message": catalogue.label(message_key, session.lang), **details})
    return RedirectResponse(where, status_code=303)


def fingerprint(*parts: Any) -> str:
    """What a live page compares to notice that something it shows has changed."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def link_here(request: Request, anchor: str = "", path: str | None = None, **changes: str | None) -> str:
    """This page's address (or `path`, where a posted form answered with the page) with some query parameters
    changed (None: left out) and the others kept: the filters and positions of a page's lists are codes, days and
    intake's cursors, never names."""
    params = {key: value for key, value in request.query_params.items() if key not in changes}
    params.update({key: value for key, value in changes.items() if value is not None})
    query = urlencode(params)
    return f"{path or request.url.path}{'?' + query if query else ''}{'#' + anchor if anchor else ''}"


def pages(request: Request, param: str, following: str | None, anchor: str = "",
          path: str | None = None) -> dict[str, str | None]:
    """A list's pager: the next page (`param` set to `following`: intake's `next_cursor`, or where the next page
    starts), and back to the first page once past it."""
    return {"next": link_here(request, anchor, path, **{param: following}) if following else None,
            "first": link_here(request, anchor, path, **{param: None}) if request.query_params.get(param) else None}
