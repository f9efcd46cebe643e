"""Codes shared by the events: modes, departments, refusal reasons, document kinds."""

from enum import StrEnum


class Mode(StrEnum):
    IN_PERSON = "in_person"
    ONLINE = "online"


class Department(StrEnum):
    """The departments whose specialists give second opinions. Intake's roster (INTAKE_DEPARTMENTS) is a subset;
    a case is accepted only for a department of the roster. Adding a code is a compatible change."""

    CARDIOLOGY = "cardiology"
    CARDIOVASCULAR_SURGERY = "cardiovascular_surgery"
    GASTROENTEROLOGY = "gastroenterology"
    GASTROINTESTINAL_SURGERY = "gastrointestinal_surgery"
    HEPATOLOGY = "hepatology"
    NEPHROLOGY = "nephrology"
    HEMATOLOGY = "hematology"
    NEUROLOGY = "neurology"
    NEUROSURGERY = "neurosurgery"
    ONCOLOGY = "oncology"
    RADIATION_ONCOLOGY = "radiation_oncology"
    PEDIATRICS = "pediatrics"
    DERMATOLOGY = "dermatology"
    RHEUMATOLOGY = "rheumatology"
    INFECTIOUS_DISEASES = "infectious_diseases"
    OTOLARYNGOLOGY = "otolaryngology"
    TRANSPLANT_SURGERY = "transplant_surgery"
    PLASTIC_SURGERY = "plastic_surgery"
    ENDOCRINOLOGY = "endocrinology"
    RESPIRATORY_MEDICINE = "respiratory_medicine"
    UROLOGY = "urology"
    OBSTETRICS_GYNECOLOGY = "obstetrics_gynecology"


class Relationship(StrEnum):
    SELF = "self"
    FAMILY = "family"
    OTHER = "other"


class RefusalReason(StrEnum):
    """The guide's refusal reasons, in the guide's order, then the specialist's own decline."""

    REQUESTER_NOT_PATIENT_OR_FAMILY = "requester_not_patient_or_family"
    MISSING_PATIENT_CONSENT = "missing_patient_consent"
    SEEKS_TREATMENT_HERE = "seeks_treatment_here"
    COMPLAINT_OR_LITIGATION = "complaint_or_litigation"
    PATIENT_DECEASED = "patient_deceased"
    ATTENDING_PHYSICIAN_NOT_CONSENTING = "attending_physician_not_consenting"
    NO_SPECIALIST_AVAILABLE = "no_specialist_available"
    DECLINED_BY_SPECIALIST = "declined_by_specialist"
    REFER_TO_GENERAL_OUTPATIENT = "refer_to_general_outpatient"


class DeclineReason(StrEnum):
    """Why a request is refused (CaseDeclined v2): the guide's reasons, then the specialist's own decline.

    Unlike `RefusalReason` (v1) it has no referral code: a referral to the general outpatient clinic is a
    `Recommendation`, not a reason.
    """

    REQUESTER_NOT_PATIENT_OR_FAMILY = "requester_not_patient_or_family"
    MISSING_PATIENT_CONSENT = "missing_patient_consent"
    SEEKS_TREATMENT_HERE = "seeks_treatment_here"
    COMPLAINT_OR_LITIGATION = "complaint_or_litigation"
    PATIENT_DECEASED = "patient_deceased"
    ATTENDING_PHYSICIAN_NOT_CONSENTING = "attending_physician_not_consenting"
    NO_SPECIALIST_AVAILABLE = "no_specialist_available"
    DECLINED_BY_SPECIALIST = "declined_by_specialist"


class Recommendation(StrEnum):
    GENERAL_OUTPATIENT = "general_outpatient"


class Screening(StrEnum):
    """Who declined: intake on the submitted facts, or the specialist on the request's content."""

    AUTOMATIC = "automatic"
    SPECIALIST = "specialist"


class DocumentKind(StrEnum):
    APPLICATION_FORM = "application_form"
    CONSENT_FORM = "consent_form"
    RELATIONSHIP_PROOF = "relationship_proof"
    REFERRAL_LETTER = "referral_letter"
    TEST_RESULTS = "test_results"


class ConsentBasis(StrEnum):
    """Why the patient's consent is taken as given."""

    REQUESTER_IS_PATIENT = "requester_is_patient"
    CONSENT_FORM = "consent_form"
    MINOR_WITH_RELATIONSHIP_PROOF = "minor_with_relationship_proof"


class WithdrawalReason(StrEnum):
    PATIENT_REQUEST = "patient_request"
    PATIENT_DECEASED = "patient_deceased"
    DUPLICATE_REQUEST = "duplicate_request"
    NO_RESPONSE = "no_response"
    OTHER = "other"


class ActorRole(StrEnum):
    COORDINATOR = "coordinator"
    PHYSICIAN = "physician"
    CASHIER = "cashier"
    AUDITOR = "auditor"
    SYSTEM = "system"


class CancelledBy(StrEnum):
    PATIENT = "patient"
    HOSPITAL = "hospital"


class CancellationReason(StrEnum):
    PATIENT_REQUEST = "patient_request"
    PATIENT_UNWELL = "patient_unwell"
    PHYSICIAN_UNAVAILABLE = "physician_unavailable"
    HOSPITAL_CLOSURE = "hospital_closure"
    CASE_WITHDRAWN = "case_withdrawn"
    OTHER = "other"


class RescheduleReason(StrEnum):
    PATIENT_REQUEST = "patient_request"
    PHYSICIAN_UNAVAILABLE = "physician_unavailable"
    HOSPITAL_REQUEST = "hospital_request"
    OTHER = "other"


class PaymentMethod(StrEnum):
    """At the counter: cash or card. Online: the card registered on the telemedicine platform."""

    CASH = "cash"
    CARD = "card"
    ONLINE_CARD = "online_card"


class PaymentChannel(StrEnum):
    """How an invoice is to be paid (the fees table of docs/domain.md)."""

    COUNTER_BEFORE_CONSULTATION = "counter_before_consultation"
    TELEMEDICINE_PLATFORM_CARD = "telemedicine_platform_card"


class PaymentFailureReason(StrEnum):
    CARD_DECLINED = "card_declined"
    GATEWAY_TIMEOUT = "gateway_timeout"
    GATEWAY_ERROR = "gateway_error"


class RefundReason(StrEnum):
    CANCELLED_BY_HOSPITAL = "cancelled_by_hospital"
    OVERPAYMENT = "overpayment"
    GOODWILL = "goodwill"
    OTHER = "other"


class InvoiceVoidReason(StrEnum):
    APPOINTMENT_CANCELLED = "appointment_cancelled"
    CASE_WITHDRAWN = "case_withdrawn"


class DeliveryChannel(StrEnum):
    HANDED_TO_PATIENT = "handed_to_patient"
    POSTED_TO_ATTENDING_PHYSICIAN = "posted_to_attending_physician"


class AmendmentReason(StrEnum):
    """Why a final report was amended (ReportAmended); the physician's own words stay in reporting."""

    CORRECTION = "correction"
    NEW_INFORMATION = "new_information"
    CLARIFICATION = "clarification"
    OTHER = "other"


class CorrectedField(StrEnum):
    """What a correction of a case changed (CaseDetailsCorrected): the personal details (their values stay sealed
    in intake), the question, and the request's facts a refusal is decided on."""

    REQUESTER_NAME = "requester_name"
    REQUESTER_PHONE = "requester_phone"
    PATIENT_NAME = "patient_name"
    PATIENT_BIRTH_DATE = "patient_birth_date"
    PATIENT_POSTAL_ADDRESS = "patient_postal_address"
    ATTENDING_PHYSICIAN_NAME = "attending_physician_name"
    ATTENDING_INSTITUTION = "attending_institution"
    ATTENDING_INSTITUTION_ADDRESS = "attending_institution_address"
    QUESTION = "question"
    PATIENT_DECEASED = "patient_deceased"
    ATTENDING_PHYSICIAN_CONSENTS = "attending_physician_consents"
    WANTS_TREATMENT_HERE = "wants_treatment_here"
    COMPLAINT_OR_LITIGATION = "complaint_or_litigation"


class CorrectionReason(StrEnum):
    """Why a case's details were corrected; the coordinator's own words, if any, stay sealed in intake."""

    TYPING_ERROR = "typing_error"
    REPORTED_BY_REQUESTER = "reported_by_requester"
    DIFFERS_FROM_DOCUMENTS = "differs_from_documents"
    OTHER = "other"


class ContactDirection(StrEnum):
    """A call or letter from the patient's side to the desk (`incoming`), or from the desk to them (`outgoing`)."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


class ContactChannel(StrEnum):
    PHONE = "phone"
    LETTER = "letter"
    EMAIL = "email"
