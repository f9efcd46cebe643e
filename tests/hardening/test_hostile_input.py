"""The one input policy (eventkit.input_policy) on the real services: hostile text, numbers JSON does not have,
duplicate keys and implausible dates get a 422 that quotes nothing, never a 500; text that passes is stored
NFC-normalised, on one line where it is a name, without control or format characters."""

from __future__ import annotations

import asyncio
import json
import unicodedata
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventkit.testing import api_routes, bearer, running_app
from tests.hardening.support import DEEP_RUN, SERVICES, LoopBridge, examples, service_app

STAFF = bearer(subject="hostile-input")
CASE: dict[str, Any] = {
    "requester": {"relationship": "self", "name": "Hostile Input"},
    "patient": {"name": "Hostile Input", "birth_date": "1970-01-01"}, "mode": "online", "department": "hematology",
    "question": "q", "attending_physician": {"name": "Dr B", "institution": "C", "consents": True},
    "wants_treatment_here": False, "complaint_or_litigation": False,
}
REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Cn"}


def raw(document: Any) -> bytes:
    """JSON as a client may send it: any code point, lone surrogates included, escaped as \\uXXXX."""
    return json.dumps(document, ensure_ascii=True).encode()


def is_refused(text: str) -> bool:
    cleaned = text.replace("\r\n", "\n")
    return any(c == "\n" or (unicodedata.category(c) in REFUSED_CATEGORIES) or 0xFDD0 <= ord(c) <= 0xFDEF
               or (ord(c) & 0xFFFE) == 0xFFFE for c in cleaned)


# Names as they come: Japanese, combining marks, emoji, and what must never be stored.
HOSTILE = st.text(alphabet=st.one_of(
    st.characters(codec=None, categories=["Lu", "Ll", "Lo", "Mn", "Zs", "Nd", "So", "Cc", "Cf", "Cs", "Co", "Cn"]),
    st.sampled_from(["\x00", "\u202e", "\u200b", "\ufeff", "\r", "\n", "\ufffe", "\ud800", "\u3099", "\u30cf"]),
), min_size=1, max_size=40)


async def test_hostile_names_are_refused_or_stored_clean(database: str, rabbitmq_url: str) -> None:
    async with service_app("intake", database, rabbitmq_url) as app, running_app(app, headers=STAFF) as client:
        bridge = LoopBridge(asyncio.get_running_loop())

        @settings(max_examples=examples(60), deadline=None, database=None, derandomize=not DEEP_RUN,
                  suppress_health_check=[HealthCheck.too_slow], print_blob=False)
        @given(name=HOSTILE)
        def submit(name: str) -> None:
            body = {**CASE, "patient": {**CASE["patient"], "name": name}}
            response = bridge.run(client.post("/cases", content=raw(body),
                                              headers={"content-type": "application/json"}))
            assert response.status_code in (201, 422), response.text
            if response.status_code == 422:
                if len(name.strip()) >= 3:
                    assert json.dumps(name)[1:-1] not in response.text
                    assert name not in response.text
                return
            assert not is_refused(name), f"{name!r} was taken"
            stored = bridge.run(client.get(f"/cases/{response.json()['case_id']}")).json()["patient"]["name"]
            assert stored == unicodedata.normalize("NFC", name).strip()

        await asyncio.to_thread(submit)


def post_routes(app: FastAPI) -> list[str]:
    return sorted({route.path for route in api_routes(app.routes) if "POST" in (route.methods or ())})


NOT_JSON_ALLOWS = [
    b'{"amount": NaN}', b'{"duration_minutes": Infinity}', b'{"amount": -Infinity}', b'{"amount": 1e999}',
    b'{"reason": "a", "reason": "b"}', b'{"physician": "\\udc00"}', b'{"summary": "\\u0000"}', b"\xff\xfe",
    b'{"n": ' + b"9" * 5000 + b"}", b"[" * 200 + b"]" * 200,
]


@pytest.mark.parametrize("service", SERVICES)
async def test_every_post_refuses_what_json_does_not_allow_with_422(service: str, database: str,
                                                                    rabbitmq_url: str) -> None:
    # No lifespan: the policy refuses before any route, database or broker is reached.
    async with service_app(service, database, rabbitmq_url) as app, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=STAFF) as client:
        for path in post_routes(app):
            url = path.replace("{department}", "cardiology")
            for name in ("case_id", "appointment_id", "invoice_id"):
                url = url.replace("{" + name + "}", str(uuid.uuid4()))
            for body in NOT_JSON_ALLOWS:
                response = await client.post(url, content=body, headers={"content-type": "application/json"})
                assert response.status_code == 422, (url, body[:40], response.text)
                assert response.json()["detail"][0]["type"] == "input_policy"


@pytest.mark.parametrize(("changes", "why"), [
    ({"patient": {"name": "Hanako", "birth_date": "0001-01-01"}}, "on or after 1900-01-01"),
    ({"patient": {"name": "Hanako", "birth_date": "2999-01-01"}}, "cannot be in the future"),
    ({"requester": {"relationship": "self", "name": "Hanako\nZzyzx"}}, "must be on one line"),
])
async def test_implausible_submissions_are_refused_without_echoing_them(
        changes: dict[str, Any], why: str, database: str, rabbitmq_url: str) -> None:
    async with service_app("intake", database, rabbitmq_url) as app, running_app(app, headers=STAFF) as client:
        refused = await client.post("/cases", json={**CASE, **changes})
        assert refused.status_code == 422
        assert why in refused.text
        assert "Zzyzx" not in refused.text
        assert "input" not in refused.json()["detail"][0]


async def test_documents_dated_9999_and_an_accept_with_refusal_reasons_are_refused(database: str,
                                                                                   rabbitmq_url: str) -> None:
    async with service_app("intake", database, rabbitmq_url) as app, running_app(app, headers=STAFF) as client:
        case_id = (await client.post("/cases", json=CASE)).json()["case_id"]
        document = await client.post(f"/cases/{case_id}/documents",
                                     json={"kind": "referral_letter", "received_on": "9999-12-31"})
        assert document.status_code == 422
        assert "between 2000-01-01 and 2099-12-31" in document.text
        screening = await client.post(f"/cases/{case_id}/screening", json={
            "decision": "accept", "reasons": ["declined_by_specialist"], "physician": "dr-sato"})
        assert screening.status_code == 422
        assert "carries no refusal reasons" in screening.text
