-- The payer's name for receipts, as intake published it in CaseSubmitted: sealed with the case's key, which
-- only intake holds. Billing never stores the name in clear; after erasure the key is gone and this is noise.
CREATE TABLE IF NOT EXISTS case_payers (
    case_id            uuid PRIMARY KEY,
    payer_name_sealed  text        NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now()
);
