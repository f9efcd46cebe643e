"""The receipt and the refund note's content, from an invoice's facts, without a database (the routes' own test
is in tests/e2e/test_documents.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from billing.receipt_pdf import ReceiptFacts, refund_tax, render_receipt, render_refund
from eventkit.documents import HospitalSettings
from eventkit.documents_testing import missing_text, pdf_text, unembedded_fonts
from eventkit.errors import NotFound

HOSPITAL = HospitalSettings()
NUMBER = "T1234567890123"


def view(mode: str = "online", total: int = 44_000, **changes: Any) -> dict[str, Any]:
    return {"invoice_id": uuid.UUID(int=9), "mode": mode, "amount_excl_tax": total * 10 // 11,
            "tax": total // 11, "total": total, "tax_rate_percent": 10,
            "payment": {"amount": total, "method": "online_card",
                        "captured_at": datetime(2026, 12, 8, 3, 0, tzinfo=UTC)},
            "receipt": {"receipt_number": "R2026-000007", "issued_on": date(2026, 12, 9),
                        "qualified_invoice_registration_number": NUMBER},
            "history": [], **changes}


def test_the_receipt_is_a_qualified_invoice() -> None:
    pdf = render_receipt(ReceiptFacts.from_view(view(), "T0000000000000"), "山田 太郎", HOSPITAL, False)
    expected = [
        "領収書", "Receipt", "山田 太郎 様", "R2026-000007", NUMBER, HOSPITAL.name, "発行日 2026年12月9日（水）",
        "2026年12月8日（火）", "セカンドオピニオン外来 相談料（オンライン", "44,000円（税込）", "10%対象", "40,000円",
        "4,000円", "上記の金額を正に領収いたしました",
    ]
    assert missing_text(pdf, *expected) == []
    assert "再発行" not in pdf_text(pdf)
    assert unembedded_fonts(pdf) == []


def test_a_reissue_says_so_and_an_erased_payer_prints_masked() -> None:
    pdf = render_receipt(ReceiptFacts.from_view(view(), NUMBER), "***", HOSPITAL, True)
    assert missing_text(pdf, "再発行", "*** 様", "R2026-000007 の再発行です") == []


def test_the_refund_note_shows_the_refunds_with_their_tax() -> None:
    refund = {"event": "RefundIssued", "at": "2026-12-10T01:00:00+00:00",
              "data": {"amount": 33_000, "reason": "cancelled_by_hospital", "refunded_at": "2026-12-10T01:00:00+00:00"}}
    facts = ReceiptFacts.from_view(view("in_person", 33_000, history=[refund]), NUMBER)
    pdf = render_refund(facts, "山田 太郎", HOSPITAL, False)
    expected = ["返金明細書", "33,000円（税込）", "3,000円", "30,000円", "当院都合による予約の取消し",
                "2026年12月10日（木）", "R2026-000007", NUMBER]
    assert missing_text(pdf, *expected) == []
    assert refund_tax(5_000, 10) == 454


def test_no_document_without_its_facts_says_why() -> None:
    with pytest.raises(NotFound, match="nothing has been paid"):
        ReceiptFacts.from_view(view(payment=None), NUMBER)
    with pytest.raises(NotFound, match="no receipt has been issued"):
        render_receipt(ReceiptFacts.from_view(view(receipt=None), NUMBER), "x", HOSPITAL, False)
    with pytest.raises(NotFound, match=r"nothing of invoice .* has been refunded"):
        render_refund(ReceiptFacts.from_view(view(), NUMBER), "x", HOSPITAL, False)
