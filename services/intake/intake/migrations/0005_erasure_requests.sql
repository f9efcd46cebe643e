-- Erasure takes two privacy officers: one requests it (a pending row), another approves it.
CREATE TABLE IF NOT EXISTS erasure_requests (
    case_id       uuid PRIMARY KEY,
    requested_by  text        NOT NULL,
    requested_on  date        NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now()
);
