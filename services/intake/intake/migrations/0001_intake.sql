-- Intake's read model and the personal data that never goes into events.
CREATE TABLE IF NOT EXISTS case_view (
    case_id                 uuid PRIMARY KEY,
    status                  text        NOT NULL,
    mode                    text        NOT NULL,
    department              text        NOT NULL,
    requester_relationship  text        NOT NULL,
    patient_is_minor        boolean     NOT NULL,
    consent_basis           text,
    documents               jsonb       NOT NULL DEFAULT '[]'::jsonb,
    decline_reasons         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    history                 jsonb       NOT NULL DEFAULT '[]'::jsonb,
    submitted_on            date        NOT NULL,
    version                 integer     NOT NULL,
    updated_at              timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS case_view_status ON case_view (status, submitted_on);

CREATE TABLE IF NOT EXISTS case_personal_data (
    case_id                uuid PRIMARY KEY,
    requester_name         text NOT NULL,
    requester_phone        text,
    patient_name           text NOT NULL,
    patient_birth_date     date NOT NULL,
    attending_name         text NOT NULL,
    attending_institution  text NOT NULL,
    question               text NOT NULL
);
