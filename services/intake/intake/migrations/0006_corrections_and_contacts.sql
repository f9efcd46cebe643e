-- Corrections of a case's details and the contact log. Their notes are personal data: sealed with the case's own
-- key like the rest (never in events), unreadable once that key is erased. The case view lists both.
CREATE TABLE IF NOT EXISTS case_notes (
    note_id      uuid PRIMARY KEY,
    case_id      uuid        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('correction', 'contact')),
    sealed       bytea       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS case_notes_case ON case_notes (case_id, kind);
ALTER TABLE case_view ADD COLUMN IF NOT EXISTS corrections jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE case_view ADD COLUMN IF NOT EXISTS contacts jsonb NOT NULL DEFAULT '[]'::jsonb;
