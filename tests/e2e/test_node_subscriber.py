"""Another hospital system's subscriber, in Node.js with nothing of ours but the published files: it joins after a
case has begun, catches up from the four services' feeds over HTTP, switches to its own queue on the real broker
and follows the case to CaseClosed, validating every event and processing each once."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import time
from pathlib import Path

from eventkit.auth import mint_development_token
from tests.contracts.node import subscriber
from tests.e2e.hospital import CONSULTATION_DAY, SERVICES, STAFF, expect, hospital
from tests.hardening.support import serving


async def test_a_node_subscriber_catches_up_then_follows_a_case_to_its_end(rabbitmq_url: str, tmp_path: Path) -> None:
    async with hospital(rabbitmq_url) as h, AsyncExitStack() as stack:
        feeds = [await stack.enter_async_context(serving(h.apps[service], lifespan=False)) for service in SERVICES]
        case_id = await h.submit_and_accept("online")
        early = await h.wait_for(case_id, "CaseAccepted")  # published before the subscriber's queue exists

        token = mint_development_token("pharmacy-system", ["integration"])
        feed_args = [arg for url in feeds for arg in ("--feed", url)]
        async with subscriber(rabbitmq_url, tmp_path / "state.json", "--binding", "#", *feed_args,
                              "--exit-after-cases-ended", "1", token=token) as running:
            await running.read_until(lambda lines: sum(line["outcome"] == "caught-up" for line in lines) == 4)
            appointment_id = (await h.book(case_id))["appointment_id"]
            expect(await h.scheduling.post(f"/appointments/{appointment_id}/online-booking",
                                           headers=STAFF["coordinator"],
                                           json={"clinics_booking_ref": "CLINICS-2026-000777"}), 200)
            invoice = await h.invoice_of(case_id)
            h.clock.set_tokyo(CONSULTATION_DAY, time(11, 5))
            expect(await h.complete(appointment_id), 200)
            await h.wait_for(case_id, "PaymentCaptured")
            await h.write_report(case_id)
            expect(await h.deliver(case_id, "posted_to_attending_physician"), 200)
            published = await h.wait_for(case_id, "CaseClosed")
            await running.read_until(lambda lines: lines[-1]["outcome"] == "stopped", timeout=60)
            assert await running.process.wait() == 0

    processed = running.outcomes("processed")
    assert running.outcomes("invalid") == []
    assert sorted(line["id"] for line in processed) == sorted(str(event.id) for event in published), \
        "every event of the case processed, each once"
    via_feed = {line["id"] for line in processed if line["via"] == "feed"}
    assert {str(event.id) for event in early} <= via_feed, "what was published before it bound came from the feeds"
    assert processed[-1]["type"] == "secondopinion.reporting.CaseClosed.v1"
    assert processed[-1]["via"] == "queue"
    [drafted] = [event for event in published if event.event_name == "ReportDrafted"]
    record = running.saved()["cases"][case_id]
    assert record["status"] == "closed"
    assert (record["appointment_id"], record["invoice_id"], record["report_id"]) == (
        appointment_id, invoice["invoice_id"], drafted.data["report_id"])
    assert record["events"][0] == "CaseSubmitted"
