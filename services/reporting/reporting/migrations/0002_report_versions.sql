-- Amendments of a final report: version 1 is the last draft as finalized (report_drafts); each amendment is
-- a new version, kept beside the earlier ones. The texts are about the patient: erased with their data.
CREATE TABLE IF NOT EXISTS report_versions (
    case_id       uuid        NOT NULL,
    version       integer     NOT NULL CHECK (version >= 2),
    report_id     uuid        NOT NULL,
    physician_id  text        NOT NULL,
    reason        text        NOT NULL,
    summary       text,
    note          text,
    amended_at    timestamptz NOT NULL DEFAULT now(),
    erased_on     date,
    PRIMARY KEY (case_id, version),
    CHECK ((summary IS NULL) = (erased_on IS NOT NULL))
);
