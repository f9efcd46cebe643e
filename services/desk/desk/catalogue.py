"""Every word the console shows, in Japanese and English: the labels of the services' codes (statuses,
documents, reasons; the departments' names are intake's, desk.departments) and the services' refusal codes as a
clerk should read them. The desk decides nothing with them: a refusal is the service's, the catalogue only words
it."""

from __future__ import annotations

from typing import Any

from desk import departments

LANGS = ("ja", "en")

# (ja, en) by key. Keys are the services' own codes where there is one.
LABELS: dict[str, tuple[str, str]] = {
    # roles
    "role.coordinator": ("コーディネーター", "Coordinator"), "role.physician": ("医師", "Physician"),
    "role.cashier": ("会計", "Cashier"), "role.auditor": ("監査", "Auditor"), "role.system": ("システム", "System"),
    "role.privacy_officer": ("個人情報保護責任者", "Privacy officer"),
    "role.integration": ("連携システム", "Integration"),
    # modes, relationships
    "mode.in_person": ("対面", "In person"), "mode.online": ("オンライン", "Online"),
    "relationship.self": ("本人", "The patient"), "relationship.family": ("家族", "Family"),
    "relationship.other": ("その他", "Other"),
    # intake case status
    "case.submitted": ("受付", "Submitted"), "case.awaiting_documents": ("書類待ち", "Awaiting documents"),
    "case.screening": ("審査中", "Screening"), "case.accepted": ("受諾", "Accepted"),
    "case.declined": ("お断り", "Declined"), "case.withdrawn": ("取下げ", "Withdrawn"), "case.new": ("新規", "New"),
    # scheduling
    "schedule.awaiting_proposals": ("日程提示待ち", "Dates to propose"),
    "schedule.proposed": ("患者の選択待ち", "Waiting for the patient's choice"),
    "schedule.booked": ("予約確定", "Booked"), "schedule.cancelled": ("予約取消", "Cancelled"),
    "schedule.completed": ("相談済み", "Consulted"), "schedule.no_show": ("来院なし", "No-show"),
    "schedule.withdrawn": ("取下げ", "Withdrawn"),
    "appointment.booked": ("予約", "Booked"), "appointment.cancelled": ("取消", "Cancelled"),
    "appointment.completed": ("完了", "Completed"), "appointment.no_show": ("来院なし", "No-show"),
    "slot.open": ("空き", "Open"), "slot.held": ("仮押さえ", "Held"), "slot.booked": ("予約済み", "Booked"),
    # board stages
    "stage.submitted": ("受付", "Submitted"), "stage.awaiting_documents": ("書類待ち", "Awaiting documents"),
    "stage.screening": ("審査", "Screening"), "stage.scheduling": ("日程調整", "Scheduling"),
    "stage.confirmed": ("予約確定", "Confirmed"), "stage.consulted": ("相談済み", "Consulted"),
    "stage.report_delivered": ("報告書交付済み", "Report delivered"), "stage.closed": ("完了", "Closed"),
    "stage.declined": ("お断り", "Declined"), "stage.withdrawn": ("取下げ", "Withdrawn"),
    "stage.declined_withdrawn": ("お断り・取下げ", "Declined / withdrawn"), "stage.unknown": ("確認中", "Pending"),
    # documents
    "document.application_form": ("申込書", "Application form"), "document.consent_form": ("同意書", "Consent form"),
    "document.relationship_proof": ("続柄を証する書類", "Proof of relationship"),
    "document.referral_letter": ("診療情報提供書", "Referral letter"),
    "document.test_results": ("検査資料", "Test materials"),
    # refusal / decline reasons
    "reason.requester_not_patient_or_family": ("申込者が患者本人・家族ではありません",
                                               "The requester is neither the patient nor family"),
    "reason.missing_patient_consent": ("患者本人の同意がありません", "The patient has not consented"),
    "reason.seeks_treatment_here": ("当院での治療を希望されています", "The patient wants treatment here"),
    "reason.complaint_or_litigation": ("苦情・訴訟に関するご相談です", "About a complaint or litigation"),
    "reason.patient_deceased": ("患者が亡くなられています", "The patient has died"),
    "reason.attending_physician_not_consenting": ("主治医の同意なし", "The attending physician does not consent"),
    "reason.no_specialist_available": ("担当できる専門医がいません", "No specialist available"),
    "reason.declined_by_specialist": ("専門医の判断によりお断り", "Declined by the specialist"),
    "reason.refer_to_general_outpatient": ("一般外来への受診をご案内", "Refer to the general outpatient clinic"),
    "recommendation.general_outpatient": ("一般外来への受診をご案内", "Refer to the general outpatient clinic"),
    # withdrawal, cancellation, reschedule, refund
    "withdrawal.patient_request": ("患者の申し出", "Patient's request"),
    "withdrawal.patient_deceased": ("患者死亡", "Patient died"),
    "withdrawal.duplicate_request": ("重複申込", "Duplicate request"),
    "withdrawal.no_response": ("連絡がつかない", "No response"), "withdrawal.other": ("その他", "Other"),
    "cancellation.patient_request": ("患者の申し出", "Patient's request"),
    "cancellation.patient_unwell": ("患者の体調不良", "Patient unwell"),
    "cancellation.physician_unavailable": ("医師の都合", "Physician unavailable"),
    "cancellation.hospital_closure": ("休診", "Hospital closure"), "cancellation.other": ("その他", "Other"),
    "cancelled_by.patient": ("患者", "Patient"), "cancelled_by.hospital": ("病院", "Hospital"),
    "reschedule.patient_request": ("患者の申し出", "Patient's request"),
    "reschedule.physician_unavailable": ("医師の都合", "Physician unavailable"),
    "reschedule.hospital_request": ("病院の都合", "Hospital's request"), "reschedule.other": ("その他", "Other"),
    "refund.cancelled_by_hospital": ("病院都合の取消", "Cancelled by the hospital"),
    "refund.overpayment": ("過払い", "Overpayment"), "refund.goodwill": ("特別対応", "Goodwill"),
    "refund.other": ("その他", "Other"),
    "delivery.handed_to_patient": ("患者に手渡し", "Handed to the patient"),
    "delivery.posted_to_attending_physician": ("主治医へ郵送", "Posted to the attending physician"),
    "method.cash": ("現金", "Cash"), "method.card": ("カード", "Card"),
    "method.online_card": ("オンライン決済", "Online card"),
    # invoices and reports
    "invoice.not_issued": ("未発行", "Not issued"), "invoice.issued": ("未収", "Unpaid"),
    "invoice.paid": ("入金済み", "Paid"), "invoice.partially_refunded": ("一部返金", "Partly refunded"),
    "invoice.refunded": ("返金済み", "Refunded"), "invoice.void": ("無効", "Void"),
    "charge.pending": ("決済処理中", "Charging"), "charge.failed": ("決済失敗", "Charge failed"),
    "charge.captured": ("決済済み", "Charged"),
    "charge_failure.card_declined": ("カードが承認されませんでした", "Card declined"),
    "charge_failure.gateway_timeout": ("決済代行が応答しませんでした", "The gateway timed out"),
    "charge_failure.gateway_error": ("決済代行のエラー", "Gateway error"),
    "report.not_started": ("未着手", "Not started"), "report.drafted": ("下書き", "Draft"),
    "report.finalized": ("確定", "Final"), "report.delivered": ("交付済み", "Delivered"),
    # events, as the timeline names them
    "event.InvoiceIssued": ("請求発行", "Invoice issued"),
    "event.InvoiceVoided": ("請求無効", "Invoice voided"),
    "event.PaymentCaptured": ("入金", "Payment captured"),
    "event.PaymentFailed": ("決済失敗", "Payment failed"),
    "event.RefundIssued": ("返金", "Refund issued"),
    "event.ReceiptIssued": ("領収書発行", "Receipt issued"),
    "event.CaseSubmitted": ("申込受付", "Case submitted"),
    "event.DocumentReceived": ("書類受領", "Document received"),
    "event.ConsentVerified": ("同意確認", "Consent verified"),
    "event.CaseAccepted": ("受諾", "Case accepted"),
    "event.CaseDeclined": ("お断り", "Case declined"),
    "event.CaseWithdrawn": ("取下げ", "Case withdrawn"),
    "event.PersonalDataErased": ("個人情報消去", "Personal data erased"),
    "event.CaseDetailsCorrected": ("登録内容の訂正", "Details corrected"),
    "event.ContactRecorded": ("連絡記録", "Contact logged"),
    "event.ReportDrafted": ("報告書下書き", "Report drafted"),
    "event.ReportFinalized": ("報告書確定", "Report finalized"),
    "event.ReportDelivered": ("報告書交付", "Report delivered"),
    "event.CaseClosed": ("案件完了", "Case closed"),
    "event.SlotsProposed": ("候補日提示", "Dates proposed"),
    "event.SlotConfirmed": ("予約確定", "Date confirmed"),
    "event.AppointmentSlipIssued": ("予約票発行", "Appointment slip issued"),
    "event.OnlineBookingRegistered": ("CLINICS予約登録", "CLINICS booking recorded"),
    "event.AppointmentRescheduled": ("日程変更", "Rescheduled"),
    "event.AppointmentCancelled": ("予約取消", "Appointment cancelled"),
    "event.ConsultationCompleted": ("相談完了", "Consultation completed"),
    "event.PatientNoShow": ("来院なし", "No-show"),
    # closures
    "closure.saturday": ("土曜日", "Saturday"), "closure.sunday": ("日曜日", "Sunday"),
    "closure.national_holiday": ("祝日", "National holiday"),
    "closure.year_end_closure": ("年末年始", "Year-end holidays"), "closure.hospital_closure": ("休院日", "Closed"),
    # the services, and what their access logs record
    "service.intake": ("受付", "Intake"), "service.scheduling": ("日程", "Scheduling"),
    "service.billing": ("会計", "Billing"), "service.reporting": ("報告書", "Reporting"),
    "access.read_case_personal_data": ("患者情報の閲覧", "Read the case's personal data"),
    "access.read_contact_notes": ("連絡記録の閲覧", "Read the contact log's notes"),
    "access.read_case_key_for_receipt": ("領収書のための鍵の取得", "Took the case's key for a receipt"),
    "access.read_personal_data_for_receipt_via_billing": ("領収書の宛名の提供（請求サービス）",
                                                          "Gave the payer's name for a receipt (billing)"),
    "access.read_personal_data_for_slip_via_scheduling": ("予約票の宛先の提供（予約サービス）",
                                                          "Gave the slip's name and address (scheduling)"),
    "access.read_personal_data_for_report_via_reporting": ("報告書の宛先の提供（報告サービス）",
                                                           "Gave the report letter's names (reporting)"),
    "access.print_opinion_report": ("報告書の印刷", "Printed the opinion report"),
    "access.list_cases": ("案件一覧の表示", "Listed cases"),
    "access.list_access_log": ("アクセスログの閲覧", "Read the access log"),
    "access.refused": ("権限のない操作の拒否", "Refused"),
    "access.read_payer_name_for_receipt": ("領収書の宛名の閲覧", "Read the payer's name for a receipt"),
    "access.read_opinion_report": ("報告書の閲覧", "Read the opinion report"),
    # the case board's KPIs (reporting's GET /kpis)
    "kpis": ("指標", "KPIs"), "kpi_from": ("受付日（から）", "Submitted from"), "kpi_to": ("受付日（まで）", "to"),
    "kpi_show": ("表示", "Show"), "kpi_summary": ("期間中に受け付けた案件", "Cases submitted in the period"),
    "kpi_cases": ("案件数", "Cases"), "kpi_median": ("中央値", "median"), "kpi_p90": ("90%", "90th pct."),
    "kpi_days": ("営業日", " business days"), "kpi_count": ("件", " cases"),
    "kpi.submission_to_consultation": ("受付から相談まで", "Submission to consultation"),
    "kpi.submission_to_report_delivery": ("受付から報告書の交付まで", "Submission to report delivery"),
    "kpi_no_show_rate": ("来院なしの割合", "No-show rate"), "kpi_fees": ("相談料（返金を除く）", "Fees net of refunds"),
    "kpi_by_stage": ("段階別", "By stage"), "kpi_by_department": ("診療科別", "By department"),
    "kpi_declines": ("お断りの理由", "Decline reasons"), "board_show_all": ("すべて表示", "Show all"),
}

# The services' refusal codes (409/422 `code`), as the clerk reads them beside the action.
REFUSALS: dict[str, tuple[str, str]] = {
    "not_ready": ("まだ受諾できません。次の書類・確認が必要です", "Not ready to accept yet; still needed"),
    "already_accepted": ("この案件はすでに受諾されています", "The case was already accepted"),
    "duplicate_case": ("同じ案件がすでに登録されています", "This case already exists"),
    "invalid_birth_date": ("生年月日が受付日より後になっています", "The birth date is after today"),
    "case_declined": ("この案件はお断り済みです", "The case was declined"),
    "case_withdrawn": ("この案件は取下げ済みです", "The case was withdrawn"),
    "case_accepted": ("この案件は受諾済みのため、この操作はできません",
                      "The case is accepted; this is no longer possible"),
    "case_screening": ("審査中のため、この操作はできません", "The case is in screening"),
    "case_completed": ("相談が完了しているため、この操作はできません", "The consultation is completed"),
    "case_no_show": ("来院なしとして記録済みです", "Recorded as a no-show"),
    "case_booked": ("すでに予約が確定しています", "An appointment is already booked"),
    "case_new": ("スケジュールにまだ届いていません。しばらくお待ちください",
                 "Scheduling has not heard of the case yet; wait a moment"),
    "already_erased": ("個人情報はすでに消去されています", "The personal data was already erased"),
    "retention_period": ("保存期間中のため消去できません", "Still within the retention period"),
    "already_requested": ("この消去はすでに申請され、承認を待っています",
                          "This erasure is already waiting for approval"),
    "not_requested": ("消去が申請されていません。先に別の担当者が申請してください",
                      "No erasure was requested; another privacy officer requests it first"),
    "own_request": ("ご自身の申請は承認できません。別の担当者の承認が必要です",
                    "You cannot approve your own request; a second privacy officer must"),
    "nothing_to_correct": ("訂正する内容がありません（登録済みの値と同じです）",
                           "Nothing to correct: the values given are those recorded"),
    "refusal_after_acceptance": ("受諾済みの案件は訂正でお断りにできません。取下げてください",
                                 "An accepted case is not declined by a correction; withdraw it instead"),
    "contact_in_future": ("連絡日が今日より後になっています", "The contact date is after today"),
    "slot_unavailable": ("この枠はすでに埋まっています。別の枠を選んでください", "That slot is taken; pick another"),
    "slot_overlap": ("既存の枠と時間が重なっています", "It overlaps a slot already open"),
    "not_proposed": ("提示した候補日ではありません", "That date was not proposed"),
    "nothing_proposed": ("候補日がまだ提示されていません", "No dates have been proposed"),
    "already_booked": ("すでに予約されています", "Already booked"),
    "same_slot": ("現在と同じ枠です", "That is the current slot"),
    "appointment_superseded": ("この予約は変更済みです", "The appointment was superseded"),
    "appointment_cancelled": ("この予約は取り消されています", "The appointment was cancelled"),
    "appointment_completed": ("この予約は完了しています", "The appointment is completed"),
    "appointment_no_show": ("来院なしとして記録済みです", "Recorded as a no-show"),
    "already_registered": ("CLINICSの予約番号は登録済みです", "The CLINICS reference is already recorded"),
    "in_person_consultation": ("対面相談には使えない操作です", "Not for an in-person consultation"),
    "online_consultation": ("オンライン相談には使えない操作です", "Not for an online consultation"),
    "not_consultation_day": ("相談日当日ではありません", "It is not the consultation day"),
    "not_paid": ("相談料が未収です。会計で受け付けてください", "The fee is unpaid; take it at the counter first"),
    "no_consultation": ("相談がまだ行われていません", "No consultation yet"),
    "consultation_not_completed": ("相談がまだ完了していません", "The consultation is not completed yet"),
    "already_paid": ("すでに入金済みです", "Already paid"),
    "wrong_amount": ("金額が請求額と一致しません", "The amount does not match the invoice"),
    "wrong_method": ("この請求には使えない支払方法です", "Not a payment method for this invoice"),
    "paid_at_counter": ("窓口で支払済みです", "Paid at the counter"),
    "paid_online": ("オンラインで支払済みです", "Paid online"),
    "charge_in_progress": ("決済処理中です。しばらくお待ちください", "A charge is under way; wait a moment"),
    "channel_not_allowed": ("この案件では、この交付方法は使えません",
                            "That delivery channel is not allowed for this case"),
    "invoice_void": ("この請求は無効です", "The invoice is void"),
    "no_fee_in_force": ("適用できる料金表がありません", "No fee schedule in force"),
    "nothing_captured": ("入金がないため返金できません", "Nothing was paid to refund"),
    "refund_exceeds_captured": ("返金額が入金額を超えています", "The refund exceeds what was paid"),
    "fully_refunded": ("全額返金済みです", "Fully refunded"),
    "receipt_already_issued": ("領収書は発行済みです", "The receipt was already issued"),
    "no_draft": ("報告書の下書きがありません", "There is no draft"),
    # a code two services use for different things: the service's name first
    "reporting.not_started": ("報告書がまだ作成されていません", "The report has not been started"),
    "scheduling.not_started": ("予約時刻を過ぎてから記録できます", "Only once the appointment has started"),
    "report_not_final": ("報告書がまだ確定していません", "The report is not final yet"),
    "report_delivered": ("報告書は交付済みです", "The report was delivered"),
    "report_finalized": ("報告書は確定済みです", "The report is final"),
    "report_drafted": ("報告書は下書きです", "The report is a draft"),
    "concurrent_change": ("ほかの方が同時に更新しました。再読み込みしてやり直してください",
                          "Someone else changed it at the same time; reload and retry"),
    "not_found": ("見つかりません", "Not found"),
    "gone": ("個人情報は消去されています", "The personal data was erased"),
    "invalid": ("入力内容を確認してください", "Check the input"),
    "conflict": ("現在の状態ではこの操作はできません", "Not possible in the current state"),
    "unavailable": ("一時的に利用できません。少し待ってからやり直してください",
                    "Temporarily unavailable; try again shortly"),
    "too_large": ("入力が長すぎます", "The input is too long"),
    # The desk's own (not the services'): why a call did not get an answer.
    "forbidden": ("この操作の権限がありません", "You do not hold the role for this"),
    "unreachable": ("サービスに接続できません。少し待ってからやり直してください",
                    "The service cannot be reached; try again shortly"),
    "signed_out": ("サインインの有効期限が切れました。もう一度サインインしてください",
                   "Your sign-in expired; sign in again"),
}

TEXT: dict[str, tuple[str, str]] = {
    "app": ("セカンドオピニオン外来 受付", "Second opinion desk"),
    "sign_in": ("サインイン", "Sign in"), "sign_out": ("サインアウト", "Sign out"),
    "switch_language": ("English", "日本語"),
    "dev_sign_in_note": ("開発用サインイン：名前と役割を選びます（本番では使えません）",
                         "Development sign-in: pick a name and roles (refused in production)"),
    "sign_in_with_idp": ("病院の認証でサインイン", "Sign in with the hospital's identity provider"),
    "name": ("氏名", "Name"), "staff_id": ("職員ID", "Staff id"), "roles": ("役割", "Roles"),
    "home": ("ホーム", "Home"),
    "queue": ("業務一覧", "Work queue"),
    "new_case": ("新規受付（電話）", "New case (phone)"),
    "board": ("案件ボード", "Case board"), "slots": ("相談枠の登録", "Open slots"),
    "find_case": ("案件を探す", "Find a case"),
    "screening_queue": ("審査待ち", "Screening queue"), "consultations": ("担当の相談", "My consultations"),
    "cashier_day": ("本日の会計", "Today at the counter"), "takings": ("本日の売上", "Today's takings"),
    "failed_charges": ("決済失敗", "Failed charges"), "access_log": ("アクセスログ", "Access log"),
    "forbidden_page": ("このページを開く権限がありません", "You do not hold a role for this page"),
    "not_found_page": ("見つかりません", "Not found"),
    "pending": ("反映待ち（自動で更新します）", "Pending (updates by itself)"),
    "case": ("案件", "Case"), "case_id": ("案件ID", "Case id"), "status": ("状態", "Status"),
    "department": ("診療科", "Department"), "mode": ("相談方法", "Mode"), "submitted_on": ("受付日", "Submitted"),
    "patient": ("患者", "Patient"), "requester": ("申込者", "Requester"), "relationship": ("続柄", "Relationship"),
    "phone": ("電話番号", "Phone"), "birth_date": ("生年月日", "Birth date"), "deceased": ("死亡", "Deceased"),
    "question": ("相談内容", "Question"), "attending": ("主治医", "Attending physician"),
    "institution": ("医療機関", "Institution"), "consents": ("同意あり", "Consents"),
    "patient_consents": ("患者本人が同意している", "The patient agrees"),
    "attending_consents": ("主治医が同意している", "The attending physician agrees"),
    "wants_treatment_here": ("当院での治療を希望している", "Wants treatment here"),
    "complaint_or_litigation": ("苦情・訴訟に関する相談である", "About a complaint or litigation"),
    "submit_case": ("受け付ける", "Submit"),
    "documents": ("書類", "Documents"), "received": ("受領済み", "Received"), "missing": ("未着", "Missing"),
    "record_document": ("書類の受領を記録", "Record a document received"), "received_on": ("受領日", "Received on"),
    "kind": ("種類", "Kind"), "record": ("記録する", "Record"),
    "withdraw": ("取下げ", "Withdraw"), "reason": ("理由", "Reason"),
    "timeline": ("経過", "Timeline"), "when": ("日時", "When"), "what": ("内容", "What"), "who": ("担当", "Who"),
    "schedule": ("日程", "Dates"), "propose": ("候補日を提示", "Propose dates"),
    "candidates": ("候補日", "Candidate dates"), "confirm_choice": ("患者の選択を記録", "Record the patient's choice"),
    "appointment": ("予約", "Appointment"), "clinics_ref": ("CLINICS予約番号", "CLINICS booking reference"),
    "reschedule": ("日程変更", "Reschedule"), "cancel": ("予約取消", "Cancel"), "cancelled_by": ("取消の申し出", "By"),
    "no_show": ("来院なし", "No-show"), "complete": ("相談完了", "Consultation done"),
    "open_slots": ("枠を登録", "Open slots"), "from": ("開始日", "From"), "to": ("終了日", "To"),
    "start_times": ("開始時刻（カンマ区切り）", "Start times (comma separated)"),
    "duration": ("所要時間（分）", "Duration (minutes)"), "physician_id": ("医師ID", "Physician id"),
    "open_days": ("相談可能日", "Business days"), "closed_days": ("休診日", "Closed days"),
    "accept": ("受諾", "Accept"), "decline": ("お断り", "Decline"), "screen": ("審査", "Screen"),
    "report": ("報告書", "Report"), "summary": ("所見", "Opinion"), "save_draft": ("下書き保存", "Save draft"),
    "finalize": ("確定", "Finalize"),
    "delivery": ("交付", "Delivery"),
    "record_delivery": ("交付を記録", "Record delivery"),
    "invoice": ("請求", "Invoice"), "amount": ("金額（円）", "Amount (yen)"), "total": ("合計", "Total"),
    "take_fee": ("相談料を受け取る", "Take the fee"), "method": ("支払方法", "Method"),
    "issue_receipt": ("領収書を発行", "Issue the receipt"), "receipt": ("領収書", "Receipt"),
    "refund": ("返金", "Refund"), "retry_charge": ("決済を再試行", "Retry the charge"),
    "captured": ("入金", "Captured"), "refunded": ("返金", "Refunded"), "net": ("差引", "Net"),
    "today": ("本日", "Today"), "tomorrow": ("明日", "Tomorrow"), "time": ("時刻", "Time"),
    "no_items": ("該当なし", "None"), "next_page": ("次へ", "Next"), "prev_page": ("前へ", "Previous"),
    "waiting_documents": ("書類待ち", "Waiting for documents"),
    "waiting_screening": ("審査待ち", "Waiting for screening"),
    "waiting_dates": ("日程提示待ち", "Dates to propose"),
    "waiting_choice": ("患者の選択待ち", "Waiting for the patient's choice"),
    "waiting_clinics": ("CLINICS予約待ち", "Waiting for the CLINICS booking"),
    "waiting_delivery": ("報告書の交付待ち", "Report to deliver"),
    "appointments_today": ("本日の予約", "Today's appointments"),
    "appointments_tomorrow": ("明日の予約", "Tomorrow's appointments"),
    "outcome_ok": ("記録しました", "Recorded"), "actions": ("操作", "Actions"),
    "verify": ("改ざん検証", "Verify the chain"),
    "intact": ("改ざんなし", "Intact"),
    "broken": ("改ざんの疑い", "Broken"),
    "service": ("サービス", "Service"), "action": ("操作", "Action"), "entries": ("件", "entries"),
    "filter": ("絞り込み", "Filter"), "all": ("すべて", "All"), "search": ("検索", "Search"),
    "open": ("開く", "Open"), "slot": ("枠", "Slot"), "physician": ("医師", "Physician"),
    "skip_to_main": ("本文へ移動", "Skip to the content"), "yes": ("はい", "Yes"), "no": ("いいえ", "No"),
    "declined_reasons": ("お断りの理由", "Reasons for declining"),
    "case_declined_notice": ("この申込みはお断りとなりました", "This request is declined"),
    "not_in_scheduling": ("受諾後に日程調整が始まります", "Scheduling starts once the case is accepted"),
    "age_days": ("経過日数", "Age (days)"),
    "payer_name": ("宛名", "Payer"),
    "receipt_number": ("領収書番号", "Receipt no."),
    "registration_number": ("登録番号", "Registration no."), "tax": ("消費税", "Tax"),
    "invoices": ("請求一覧", "Invoices"), "print": ("印刷", "Print"),
    "find_by_what": ("受付番号・案件ID、または患者氏名（漢字かフリガナ）・生年月日・電話番号を入力してください",
                     "Give a case number or id, or the patient's name (kanji or kana), birth date or phone"),
    "case_number_or_id": ("受付番号または案件ID", "Case number or case id"),
    "case_number": ("受付番号", "Case number"),
    "patient_name_any": ("患者氏名（漢字・フリガナ）", "Patient's name (kanji or kana)"),
    "found_cases": ("該当する案件", "Cases found"),
    "slots_opened": ("相談枠を登録しました", "Slots opened"),
    "refusal_facts": ("お断りに関わる確認", "Facts that decide a refusal"),
    "transactions": ("取引一覧（レジ締め用）", "Transactions (for closing the till)"),
    "reissue_slip": ("予約票を再発行", "Post the slip again"),
    "slip_pdf": ("予約票を印刷（PDF）", "Print the slip (PDF)"),
    "report_pdf": ("報告書（主治医宛て）を印刷（PDF）", "Print the report letter (PDF)"),
    "receipt_pdf": ("領収書を印刷（PDF）", "Print the receipt (PDF)"),
    "refund_pdf": ("返金明細書を印刷（PDF）", "Print the refund note (PDF)"),
    "older_than": ("経過日数", "Older than"), "days_or_more": ("日以上", "days or more"),
    "case_list": ("案件一覧", "Case list"),
    "edit_report": ("報告書を書く", "Write the report"), "report_editor": ("報告書の作成", "Report editor"),
    "draft_number": ("版", "Draft"), "report_saved": ("下書きを保存しました", "Draft saved"),
    "report_finalized_msg": ("報告書を確定しました", "Report finalized"),
    "payment_taken": ("相談料を受け取りました", "Fee taken"),
    "receipt_issued": ("領収書を発行しました", "Receipt issued"),
    "refund_issued": ("返金しました", "Refund issued"), "charge_retried": ("決済を再試行しています", "Charge retried"),
    "counter": ("窓口", "Counter"), "consultation": ("相談", "Consultation"),
    "fee_shown": ("請求額", "Amount due"), "entered_amount": ("受け取った金額（円）", "Amount received (yen)"),
    "verified_entries": ("検証した件数", "Entries checked"), "pending_billing": ("請求の反映待ち", "Invoice pending"),
    # the counter: whose invoice is whose (intake's names for the counter), and a day's transactions from billing
    "counter_find": ("窓口で探す", "Find the person at the counter"),
    "counter_who": ("患者氏名（漢字・フリガナ）または受付番号", "Patient's name (kanji or kana) or case number"),
    "counter_find_note": ("受諾済みの案件だけが見つかります。検索と表示した氏名はアクセスログに記録されます",
                          "Only accepted cases are found; the search and the names shown are in intake's access log"),
    "counter_found": ("該当する方", "People found"),
    "counter_none_found": ("該当する受諾済みの案件はありません", "No accepted case matches"),
    "whose_invoice": ("請求先（患者）", "Whose invoice (patient)"),
    "takings_of_day": ("売上", "Takings"), "takings_date": ("日付", "Date"), "takings_show": ("表示", "Show"),
    "txn.payment": ("入金", "Payment"), "txn.refund": ("返金", "Refund"),
    # lists: paged by intake's cursor, and the department catalogue from intake (desk.departments)
    "queue_truncated": ("日程・CLINICS予約・交付の一覧には、各段階の最近動いた500件までを表示しています。"
                        "それより前の案件は案件一覧で確認できます:",
                        "The dates, CLINICS and delivery lists hold each stage's 500 most recently active cases; "
                        "find older ones in the case list:"),
    "first_page": ("最初へ", "First page"), "from_today": ("今日から", "From today"),
    "full_list": ("すべて表示（案件一覧）", "The full list (case list)"),
    "departments_unavailable": ("診療科の一覧を受付サービスから取得できません。少し待ってから開き直してください",
                                "The list of departments cannot be had from intake; open the page again shortly"),
}

# --- the privacy officers' pages (the erasure of a case's personal data) and staff shown by name ---------------
TEXT.update({
    "report_author": ("作成医師", "Written by"),
    "privacy_home": ("個人情報の消去", "Erasure of personal data"),
    "erasure_waiting": ("承認待ちの消去申請", "Erasures waiting for approval"),
    "erasure_waiting_note": ("別の担当者が申請した消去を承認します。ご自身の申請は、別の担当者が承認します。",
                             "Approve an erasure another officer requested; your own requests wait for another."),
    "erasure_find": ("案件を受付番号で開く", "Open a case by its number"),
    "erasure_find_note": ("受付番号（SO-2026-00123）または案件IDを入力してください",
                          "Give the case number (SO-2026-00123) or the case id"),
    "erasure_case": ("個人情報の消去", "Erasure of personal data"),
    "erasure_open": ("開く", "Open"),
    "erasure_requested_by": ("申請者", "Requested by"), "erasure_requested_on": ("申請日", "Requested on"),
    "erasure_yours": ("ご自身の申請", "Your request"),
    "last_activity_on": ("最終更新日", "Last activity"),
    "retention_ends_on": ("保存期間の終了日", "Retention period ends"),
    "retention_note": ("保存期間の終了日から消去を申請できます（受付サービスが判断します）",
                       "The erasure may be requested from the day the retention period ends (intake decides)"),
    "erased_on": ("消去日", "Erased on"),
    "erasure_state": ("消去の状況", "Erasure"),
    "erasure_none": ("申請なし", "Not requested"),
    "erasure_pending": ("承認待ち", "Waiting for approval"),
    "erasure_done": ("消去済み", "Erased"),
    "erasure_done_note": ("この案件の個人情報は消去されました。氏名などは「***」と表示され、元に戻せません。"
                          "経過の記録は残ります。",
                          "This case's personal data was erased: names read ***, for good. Its history stays."),
    "erasure_request": ("消去を申請する", "Request the erasure"),
    "erasure_approve": ("消去を承認する", "Approve the erasure"),
    "erasure_confirm_request": ("申請を確定する", "Confirm the request"),
    "erasure_confirm_approval": ("承認して消去する", "Approve and erase"),
    "erasure_back": ("やめる", "Cancel"),
    "erasure_irreversible": (
        "この操作は取り消せません。承認されると、この案件の鍵が破棄され、患者・申込者・主治医の氏名、生年月日、"
        "住所、電話番号、相談内容、連絡記録のメモは、どのサービスからも二度と読めなくなります。",
        "This cannot be undone. Once approved, the case's key is destroyed: the names, birth date, addresses, "
        "phone, question and contact notes can never be read again, by any service."),
    "erasure_request_note": ("申請のあと、別の個人情報保護責任者の承認で消去されます。",
                             "After the request, a second privacy officer's approval erases it."),
    "erasure_own_note": ("ご自身の申請です。承認は別の担当者が行います。",
                         "This is your request: another privacy officer approves it."),
    "erasure_confirm_request_q": ("この案件の個人情報の消去を申請しますか？",
                                  "Request the erasure of this case's personal data?"),
    "erasure_confirm_approval_q": ("この案件の個人情報を消去しますか？", "Erase this case's personal data now?"),
    "erasure_requested_msg": ("消去を申請しました。別の担当者の承認を待っています",
                              "Erasure requested: waiting for a second officer's approval"),
    "erasure_approved_msg": ("個人情報を消去しました", "The personal data was erased"),
    "erasure_bad_number": ("受付番号は SO-2026-00123 のように入力してください",
                           "Give a case number such as SO-2026-00123"),
})
LABELS.update({
    "access.list_erasure_requests": ("消去申請一覧の表示", "Listed the erasures waiting"),
    "access.search_cases": ("案件の検索", "Searched cases"),
    "access.read_case_names_for_counter": ("会計窓口での氏名の閲覧", "Read the names for the counter"),
    "search_by.case_number": ("受付番号", "case number"), "search_by.name": ("氏名", "name"),
    "search_by.birth_date": ("生年月日", "birth date"), "search_by.phone": ("電話番号", "phone"),
})


def label(key: str, lang: str) -> str:
    """The word for `key` in `lang`; an unknown key shows as itself (a new code from a service is never hidden)."""
    pair = LABELS.get(key) or TEXT.get(key)
    if pair is None:
        return key.split(".", 1)[-1]
    return pair[0] if lang == "ja" else pair[1]


def department(code: str | None, lang: str) -> str:
    """The department's name as intake's catalogue gives it (desk.departments); its code when unavailable."""
    return departments.current().name(code, lang)


def refusal(code: str | None, lang: str, service: str | None = None) -> str:
    pair = REFUSALS.get(f"{service}.{code}") or REFUSALS.get(code or "conflict") or REFUSALS["conflict"]
    return pair[0] if lang == "ja" else pair[1]


def access_action(action: str, lang: str) -> str:
    """An access-log entry's action in words: a listing with what was asked for (filters and page, never personal
    data), a refusal with its route, or a read by its code."""
    if action.startswith("refused "):
        return f"{label('access.refused', lang)}: {action.removeprefix('refused ')}"
    if action.startswith("search_cases_by_"):  # what was searched by, never the values
        keys = [label(f"search_by.{key}", lang) for key in action.removeprefix("search_cases_by_").split("_and_")]
        searched = label("access.search_cases", lang)
        return f"{searched}（{'・'.join(keys)}）" if lang == "ja" else f"{searched} ({', '.join(keys)})"
    listing, _, query = action.partition("?")
    if query:
        return f"{label('access.' + listing, lang)}（{query}）"
    return label(f"access.{action}", lang)


def words(lang: str) -> dict[str, Any]:
    """What a template needs to speak `lang`."""
    return {"t": lambda key: label(key, lang), "dept": lambda code: department(code, lang), "lang": lang,
            "access_action": lambda action: access_action(action, lang)}


def refusal_detail(item: str, lang: str) -> str:
    """One entry of a refusal's `reasons`: a missing document, consent, or a reason code; else as the service said."""
    kind, _, value = item.partition(":")
    if kind == "document" and value:
        return label(f"document.{value}", lang)
    if item == "consent_verified":
        return "患者の同意の確認" if lang == "ja" else "The patient's consent, verified"
    if kind == "specialist_for" and value:
        return ("専門医：" if lang == "ja" else "A specialist for ") + department(value, lang)
    if f"reason.{item}" in LABELS:
        return label(f"reason.{item}", lang)
    return item
