"""Codes shared by the events (DOMAIN.md): modes, refusal reasons, document kinds."""

from enum import StrEnum


class Mode(StrEnum):
    IN_PERSON = "in_person"
    ONLINE = "online"


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
