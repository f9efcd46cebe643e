"""Refusals in the reader's language: the `detail` of every 4xx answer in Japanese when the request asks for it
(`Accept-Language: ja`), in English otherwise. The `code` and `reasons` never change: programs branch on them.

One catalogue, keyed by the refusal's code (and, for 422 field errors, by pydantic's error type): the desk
reads Japanese; the English text stays what the services wrote, with its particulars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

JAPANESE = "ja"
ENGLISH = "en"

_STATUS_JA = {
    "submitted": "受付済み", "awaiting_documents": "書類待ち", "screening": "審査中", "accepted": "受諾済み",
    "declined": "お断り済み", "withdrawn": "取り下げ済み", "awaiting_proposals": "候補日の提示待ち",
    "proposed": "候補日提示済み", "booked": "予約済み", "cancelled": "取り消し済み", "completed": "相談終了",
    "no_show": "未来院", "drafted": "下書き", "finalized": "確定済み", "delivered": "お渡し済み",
}

# Refusals (CommandRejected and its kinds), by code.
REFUSALS_JA: dict[str, str] = {
    # every service
    "conflict": "現在の状態ではこの操作はできません。",
    "not_found": "該当するものが見つかりません。",
    "invalid": "入力が規則に合いません。理由をご確認ください。",
    "gone": "この情報はすでに消去されています。",
    "concurrent_change": "同時に他の方が変更しました。再読み込みしてからやり直してください。",
    "unavailable": "データベースに接続できません。何も記録されていません。しばらくしてからやり直してください。",
    # intake
    "duplicate_case": "この案件はすでに登録されています。",
    "invalid_birth_date": "患者さんの生年月日が申込日より後になっています。",
    "not_ready": "必要なものがそろっていないため、まだ実行できません。不足しているもの: {reasons}",
    "already_accepted": "この案件はすでに受諾されています。",
    "already_erased": "この案件の個人情報はすでに消去されています。",
    "retention_period": "法定の保存期間中のため、個人情報はまだ消去できません。",
    "already_requested": "この症例の個人情報の消去は、すでに申請され承認を待っています。",
    "not_requested": "この症例の個人情報の消去は申請されていません。先に別の個人情報保護責任者が申請してください。",
    "own_request": "ご自身が申請した消去は承認できません。別の個人情報保護責任者の承認が必要です。",
    "nothing_to_correct": "訂正する内容がありません（指定された値はすべて登録済みの値と同じです）。",
    "refusal_after_acceptance": "この案件はすでに受諾されているため、訂正によってお断りにはできません。"
                                "お断りする場合は取下げを記録してください。理由: {reasons}",
    "contact_in_future": "連絡日が今日より後になっています。",
    # scheduling
    "slot_overlap": "同じ医師の枠と時間が重なっています。",
    "slot_unavailable": "この枠は予約できません（予約済み、他の案件で仮押さえ中、または開始時刻を過ぎています）。",
    "already_booked": "この案件はすでに予約済みです。",
    "nothing_proposed": "候補日がまだ提示されていません。",
    "not_proposed": "この枠はこの案件の候補日として提示されていません。",
    "same_slot": "現在の予約と同じ枠です。",
    "appointment_superseded": "この予約はすでにこの案件の現在の予約ではありません。",
    "already_registered": "オンライン診療の予約はすでに登録されています。",
    "online_consultation": "オンライン相談では予約票を発行しません。",
    "in_person_consultation": "対面相談にはオンライン診療の予約を登録しません。",
    "not_started": "予約の開始時刻前のため、まだ記録できません。",
    # billing
    "already_paid": "この請求はすでに支払い済みです。",
    "wrong_method": "この請求にはこの支払い方法を使えません。",
    "wrong_amount": "金額が請求額と一致しません。",
    "not_consultation_day": "窓口でのお支払いは相談日当日のみ受け付けます。",
    "paid_online": "この請求はオンラインで支払われています。",
    "paid_at_counter": "この請求は窓口で支払われています。",
    "not_paid": "この請求はまだ支払われていません。",
    "nothing_captured": "返金できる入金がありません。",
    "refund_exceeds_captured": "返金額が入金額を超えています。",
    "fully_refunded": "この請求はすでに全額返金されています。",
    "receipt_already_issued": "領収書はすでに発行されています。",
    "no_fee_in_force": "この日に有効な料金が定められていません。",
    "invoice_void": "この請求は無効になっています。",
    "consultation_not_completed": "相談がまだ終了していないため、請求できません。",
    "charge_in_progress": "カードへの請求を処理中です。しばらくしてから確認してください。",
    # reporting
    "no_consultation": "相談がまだ終了していないため、報告書はまだ作成できません。",
    "no_draft": "確定する下書きがありません。",
    "report_not_final": "確定した報告書に対してのみ行えます。",
    "report_delivered": "この版の報告書はすでにお渡し済みです。",
    "channel_not_allowed": "この方法では報告書をお渡しできません"
                           "（オンライン相談、または相談日以外は主治医へ郵送します）。",
    # the HTTP layer
    "unauthorized": "ログインが必要です（有効なアクセストークンがありません）。",
    "forbidden": "この操作を行う権限（役割）がありません。",
    "route_not_found": "このアドレスにはページも機能もありません。",
    "method_not_allowed": "このアドレスではこの操作はできません。",
    "too_large": "送信された内容が大きすぎます。",
    "validation": "入力内容に誤りがあります。",
}

# The state a command met, for the codes built from it (case_withdrawn, appointment_cancelled, report_finalized).
STATE_PREFIXES_JA = {
    "case_": "案件は{state}のため、この操作はできません。",
    "appointment_": "予約は{state}のため、この操作はできません。",
    "report_": "報告書は{state}のため、この操作はできません。",
}

# 4xx answers FastAPI or the token check give without a refusal code, by status.
STATUS_CODES = {401: "unauthorized", 403: "forbidden", 404: "route_not_found", 405: "method_not_allowed",
                413: "too_large", 422: "validation"}

# 422 field errors, by pydantic's error type; `{...}` are the error's own context values.
FIELD_ERRORS_JA: dict[str, str] = {
    "missing": "必須の項目です。",
    "extra_forbidden": "この項目は受け付けていません。",
    "string_type": "文字列で入力してください。",
    "string_too_short": "{min_length}文字以上で入力してください。",
    "string_too_long": "{max_length}文字以内で入力してください。",
    "string_pattern_mismatch": "形式が正しくありません。",
    "too_short": "{min_length}件以上必要です。",
    "too_long": "{max_length}件以内にしてください。",
    "enum": "次のいずれかを指定してください: {expected}",
    "literal_error": "次のいずれかを指定してください: {expected}",
    "int_parsing": "整数で入力してください。",
    "int_type": "整数で入力してください。",
    "float_parsing": "数値で入力してください。",
    "bool_parsing": "true または false で入力してください。",
    "bool_type": "true または false で入力してください。",
    "greater_than": "{gt}より大きい値にしてください。",
    "greater_than_equal": "{ge}以上の値にしてください。",
    "less_than": "{lt}未満の値にしてください。",
    "less_than_equal": "{le}以下の値にしてください。",
    "date_parsing": "日付は YYYY-MM-DD の形式で入力してください。",
    "date_from_datetime_parsing": "日付は YYYY-MM-DD の形式で入力してください。",
    "date_type": "日付は YYYY-MM-DD の形式で入力してください。",
    "datetime_parsing": "日時は ISO 8601 の形式で入力してください。",
    "datetime_from_date_parsing": "日時は ISO 8601 の形式で入力してください。",
    "time_parsing": "時刻は HH:MM の形式で入力してください。",
    "uuid_parsing": "ID の形式（UUID）が正しくありません。",
    "uuid_type": "ID の形式（UUID）が正しくありません。",
    "json_invalid": "JSON として読み取れません。",
    "model_attributes_type": "オブジェクト（JSON の {{}}）で送ってください。",
    "dict_type": "オブジェクト（JSON の {{}}）で送ってください。",
    "list_type": "配列（JSON の []）で送ってください。",
    "department_code": "「{value}」は診療科コードではありません{hint_ja}。"
                       "診療科コード: {codes}（名称は GET /departments で確認できます）",
    "unknown_parameter": "この検索条件は使えません。使える条件: {allowed}",
    "value_error": "値が正しくありません（{error}）。",
}


def preferred_language(accept_language: str | None) -> str:
    """`ja` when Japanese comes before English in the reader's Accept-Language preferences (RFC 9110 q-values,
    ties in the order given), else `en`."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, *parameters = (part.strip() for part in item.split(";"))
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, position, tag.lower().split("-")[0]))
    return next((language for _, _, language in sorted(ranked) if language in (JAPANESE, ENGLISH)), ENGLISH)


def refusal(code: str, english: str, reasons: Sequence[str], language: str) -> str:
    """The detail of a refusal with this code, in `language` (English: as the service wrote it)."""
    if language != JAPANESE:
        return english
    template = REFUSALS_JA.get(code)
    if template is None:
        prefix = next((p for p in STATE_PREFIXES_JA if code.startswith(p)), None)
        if prefix is None:
            return REFUSALS_JA["conflict"]
        state = code.removeprefix(prefix)
        return STATE_PREFIXES_JA[prefix].format(state=_STATUS_JA.get(state, state))
    return template.format(reasons="、".join(reasons) or "なし")


def field_errors(errors: Sequence[Mapping[str, Any]], language: str) -> list[dict[str, Any]]:
    """A 422's field errors with `msg` in `language`; `type`, `loc` and the rest as pydantic gave them."""
    translated: list[dict[str, Any]] = []
    for error in errors:
        entry = dict(error)
        if language == JAPANESE:
            entry["msg"] = _field_error_ja(entry)
        translated.append(entry)
    return translated


def _field_error_ja(error: Mapping[str, Any]) -> str:
    english = str(error.get("msg", ""))
    template = FIELD_ERRORS_JA.get(str(error.get("type")))
    if template is None:
        return f"入力内容に誤りがあります（{english}）。"
    context = {key: str(value) for key, value in (error.get("ctx") or {}).items()}
    meant = (error.get("ctx") or {}).get("meant")
    context["hint_ja"] = f"（{context.get('value', '')} のコードは '{meant}' です）" if meant else ""
    context.setdefault("error", english)
    try:
        return template.format(**context)
    except (KeyError, IndexError):  # a context value the template names is missing: the English says it
        return f"{template.split('{')[0].rstrip('：: ')}（{english}）"


def language_of(request: Request) -> str:
    return preferred_language(request.headers.get("accept-language"))


async def http_error(request: Request, error: Exception) -> Response:
    """FastAPI's answer to an HTTPException (no token, a missing role, no such route), its 4xx detail in the
    reader's language."""
    assert isinstance(error, StarletteHTTPException)
    if language_of(request) != JAPANESE or not 400 <= error.status_code < 500:
        return await http_exception_handler(request, error)
    code = STATUS_CODES.get(error.status_code, "conflict")
    return JSONResponse({"detail": REFUSALS_JA[code]}, status_code=error.status_code, headers=error.headers)
