"""The receipt (領収書) as printed at the counter or posted after an online consultation, and the refund note
(返金明細書) for money given back: both qualified invoices (適格請求書 / 適格返還請求書) as the consumption tax law
asks (the issuer's name and registration number, the date of the transaction, what it was for, the amount and
the tax by tax rate, the addressee). A receipt printed again is marked 再発行. Pure: the invoice's facts, the
payer's name and the hospital's identity in, PDF bytes out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventkit.clock import tokyo_date
from eventkit.documents import (
    MODE_NAMES_JA,
    Document,
    Fields,
    Grid,
    Heading,
    HospitalSettings,
    Lines,
    ja_date,
    render,
    yen,
)
from eventkit.errors import NotFound

PAYMENT_METHODS_JA = {"cash": "現金", "card": "クレジットカード（窓口）",
                      "online_card": "クレジットカード（オンライン診療アプリ CLINICS 経由）"}
REFUND_REASONS_JA = {"cancelled_by_hospital": "当院都合による予約の取消し", "overpayment": "過払い",
                     "goodwill": "返金（当院判断）", "other": "その他"}


@dataclass(frozen=True)
class Refund:
    refunded_on: date
    amount: int
    reason: str


@dataclass(frozen=True)
class ReceiptFacts:
    invoice_id: UUID
    # None while no receipt was issued (a refund note can still be printed).
    receipt_number: str | None
    issued_on: date | None
    registration_number: str
    paid_on: date
    mode: str
    method: str
    amount_excl_tax: int
    tax: int
    total: int
    tax_rate_percent: int
    refunds: Sequence[Refund]

    @classmethod
    def from_view(cls, view: Mapping[str, Any], registration_number: str) -> ReceiptFacts:
        """A paid invoice's facts as billing shows it (the registration number on its receipt, else the one
        configured); 404 with the reason while nothing was paid."""
        receipt, payment = view["receipt"], view["payment"]
        if payment is None:
            raise NotFound(f"nothing has been paid on invoice {view['invoice_id']}, so there is no receipt")
        captured_at: datetime = payment["captured_at"]
        refunds = [Refund(refunded_on=tokyo_date(datetime.fromisoformat(entry["data"]["refunded_at"] or entry["at"])),
                          amount=entry["data"]["amount"], reason=entry["data"]["reason"])
                   for entry in view["history"] if entry["event"] == "RefundIssued"]
        return cls(invoice_id=view["invoice_id"], receipt_number=receipt["receipt_number"] if receipt else None,
                   issued_on=receipt["issued_on"] if receipt else None,
                   registration_number=(receipt["qualified_invoice_registration_number"] if receipt
                                        else registration_number),
                   paid_on=tokyo_date(captured_at), mode=str(view["mode"]), method=str(payment["method"]),
                   amount_excl_tax=view["amount_excl_tax"], tax=view["tax"], total=view["total"],
                   tax_rate_percent=view["tax_rate_percent"], refunds=refunds)

    @property
    def receipt_reference(self) -> str:
        return f"{self.receipt_number}"

    @property
    def refund_reference(self) -> str:
        """A refund note per refunded total: a further refund makes a new note."""
        return f"{self.invoice_id}:{sum(refund.amount for refund in self.refunds)}"

    @property
    def what(self) -> str:
        return f"セカンドオピニオン外来 相談料（{MODE_NAMES_JA.get(self.mode, self.mode)}・報告書作成料を含む）"

    @property
    def rate(self) -> str:
        return f"{self.tax_rate_percent}%"


def _addressee(payer_name: str | None) -> list[str]:
    # No name from intake (never sent): a blank line to write the name on, as a counter receipt has.
    return [f"{payer_name or '　' * 8} 様"]


def receipt_document(facts: ReceiptFacts, payer_name: str | None, hospital: HospitalSettings, *,
                     reissue: bool) -> Document:
    if facts.receipt_number is None or facts.issued_on is None:
        raise NotFound(f"no receipt has been issued for invoice {facts.invoice_id}: issue it with "
                       "POST /invoices/{id}/receipt")
    return Document(
        title="領収書", title_english="Receipt (qualified invoice)",
        reference=f"receipt-{facts.receipt_number}", issued_on=facts.issued_on, addressee=_addressee(payer_name),
        numbers=[("領収書番号", facts.receipt_number), ("登録番号", facts.registration_number)],
        stamp="再発行" if reissue else None,
        stamp_note=(f"この領収書は {ja_date(facts.issued_on)} 発行の領収書 {facts.receipt_number} の再発行です。"
                    if reissue else None),
        blocks=[
            Fields([("金額\nAmount", f"{yen(facts.total)}（税込）"),
                    ("但し\nFor", facts.what),
                    ("お支払い日\nDate paid", ja_date(facts.paid_on)),
                    ("お支払い方法\nPaid by", PAYMENT_METHODS_JA.get(facts.method, facts.method))]),
            Lines(["上記の金額を正に領収いたしました。自由診療のため健康保険は適用されません。"]),
            Heading("明細", "Details"),
            Grid(["品目（取引日）", "税率", "金額（税抜）", "消費税", "金額（税込）"],
                 [[f"{facts.what}（{ja_date(facts.paid_on)}）", facts.rate, yen(facts.amount_excl_tax),
                   yen(facts.tax), yen(facts.total)]], widths=[80, 14, 26, 22, 28], right=[1, 2, 3, 4]),
            Heading("税率ごとの合計", "Totals by tax rate"),
            Grid(["税率", "対象金額（税抜）", "消費税額", "合計（税込）"],
                 [[f"{facts.rate}対象", yen(facts.amount_excl_tax), yen(facts.tax), yen(facts.total)]],
                 widths=[40, 45, 40, 45], right=[1, 2, 3]),
            Lines([f"適格請求書発行事業者 {hospital.name}　登録番号 {facts.registration_number}",
                   "消費税は1請求書・1税率につき1回、1円未満を切り捨てて計算しています。"]),
        ])


def refund_tax(amount: int, rate_percent: int) -> int:
    """The consumption tax within a refunded amount (tax included), rounded down once per document."""
    return amount * rate_percent // (100 + rate_percent)


def refund_document(facts: ReceiptFacts, payer_name: str | None, hospital: HospitalSettings, *,
                    reissue: bool) -> Document:
    if not facts.refunds:
        raise NotFound(f"nothing of invoice {facts.invoice_id} has been refunded")
    refunded = sum(refund.amount for refund in facts.refunds)
    tax = refund_tax(refunded, facts.tax_rate_percent)
    last = max(refund.refunded_on for refund in facts.refunds)
    return Document(
        title="返金明細書", title_english="Refund note (qualified return invoice)",
        reference=f"refund-{facts.invoice_id}-{refunded}", issued_on=last, addressee=_addressee(payer_name),
        numbers=[("対象の領収書番号", facts.receipt_number or "（未発行）"), ("登録番号", facts.registration_number)],
        stamp="再発行" if reissue else None,
        blocks=[
            Fields([("返金額\nRefunded", f"{yen(refunded)}（税込）"),
                    ("うち消費税\nTax within", f"{yen(tax)}（{facts.rate}対象）"),
                    ("元の取引\nOriginal payment", f"{ja_date(facts.paid_on)} {facts.what} {yen(facts.total)}"),
                    ("返金方法\nRefunded by", PAYMENT_METHODS_JA.get(facts.method, facts.method))]),
            Lines(["上記の金額を返金いたしました。"]),
            Heading("返金の明細", "Refunds"),
            Grid(["返金日", "理由", "税率", "返金額（税込）"],
                 [[ja_date(refund.refunded_on), REFUND_REASONS_JA.get(refund.reason, refund.reason), facts.rate,
                   yen(refund.amount)] for refund in facts.refunds] + [["合計", "", facts.rate, yen(refunded)]],
                 widths=[45, 65, 20, 40], right=[2, 3], bold_last_row=True),
            Heading("税率ごとの返金額", "Refunded by tax rate"),
            Grid(["税率", "返金額（税抜）", "消費税額", "返金額（税込）"],
                 [[f"{facts.rate}対象", yen(refunded - tax), yen(tax), yen(refunded)]], widths=[40, 45, 40, 45],
                 right=[1, 2, 3]),
            Lines([f"適格請求書発行事業者 {hospital.name}　登録番号 {facts.registration_number}"]),
        ])


def render_receipt(facts: ReceiptFacts, payer_name: str | None, hospital: HospitalSettings, reissue: bool) -> bytes:
    return render(receipt_document(facts, payer_name, hospital, reissue=reissue), hospital)


def render_refund(facts: ReceiptFacts, payer_name: str | None, hospital: HospitalSettings, reissue: bool) -> bytes:
    return render(refund_document(facts, payer_name, hospital, reissue=reissue), hospital)
