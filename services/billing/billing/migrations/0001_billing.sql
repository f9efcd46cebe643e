-- Billing's read models, the charge worker's queue and the receipt counter. Money is integer yen.
CREATE TABLE IF NOT EXISTS invoices (
    invoice_id         uuid PRIMARY KEY,
    case_id            uuid,
    issued             boolean     NOT NULL,
    status             text        NOT NULL,
    mode               text,
    consultation_date  date,
    total              integer     NOT NULL,
    state              jsonb       NOT NULL,
    history            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    version            integer     NOT NULL,
    issued_at          timestamptz,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_case ON invoices (case_id) WHERE issued;
CREATE INDEX IF NOT EXISTS invoices_status ON invoices (status, issued_at) WHERE issued;

CREATE TABLE IF NOT EXISTS receipts (
    receipt_number  text PRIMARY KEY,
    invoice_id      uuid NOT NULL UNIQUE,
    issued_on       date NOT NULL
);

CREATE TABLE IF NOT EXISTS takings_entries (
    event_id       uuid PRIMARY KEY,
    invoice_id     uuid    NOT NULL,
    business_date  date    NOT NULL,
    method         text    NOT NULL,
    captured       integer NOT NULL CHECK (captured >= 0),
    refunded       integer NOT NULL CHECK (refunded >= 0)
);
CREATE INDEX IF NOT EXISTS takings_entries_date ON takings_entries (business_date);
CREATE INDEX IF NOT EXISTS takings_entries_invoice ON takings_entries (invoice_id);

CREATE TABLE IF NOT EXISTS charge_queue (
    invoice_id       uuid PRIMARY KEY,
    case_id          uuid        NOT NULL,
    attempt          integer     NOT NULL,
    idempotency_key  text        NOT NULL,
    amount           integer     NOT NULL CHECK (amount > 0),
    requested_at     timestamptz NOT NULL,
    tries            integer     NOT NULL DEFAULT 0,
    next_try_at      timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    last_error       text
);
CREATE INDEX IF NOT EXISTS charge_queue_due ON charge_queue (next_try_at);

-- Not a projection (never rebuilt): the last receipt number given out per year, locked per receipt.
CREATE TABLE IF NOT EXISTS receipt_counters (
    year         integer PRIMARY KEY,
    last_number  integer NOT NULL CHECK (last_number >= 1)
);
