-- Per-case keys for crypto-shredding (eventkit.crypto). A NULL key is an erased one; the row stays as
-- the record that, when and by whom the case's personal data was erased.
CREATE TABLE IF NOT EXISTS case_keys (
    case_id     text PRIMARY KEY,
    key         bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    erased_by   text,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);
