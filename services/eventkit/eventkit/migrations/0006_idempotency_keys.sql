-- Idempotency-Key (eventkit.idempotency): one row per key and signed-in subject (`request_key`, a hash of both),
-- with the request's fingerprint and, once answered, the answer. A row without an answer is a request in flight.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    request_key  text PRIMARY KEY,
    fingerprint  text        NOT NULL,
    status       integer,
    headers      jsonb,
    body         bytea,
    locked_at    timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);
-- The events a keyed request appended carry the key in their metadata, written in the command's own transaction:
-- a request whose answer was lost after it committed is found by them.
CREATE INDEX IF NOT EXISTS events_idempotency_key ON events ((metadata->>'idempotency_key'))
    WHERE metadata ? 'idempotency_key';
