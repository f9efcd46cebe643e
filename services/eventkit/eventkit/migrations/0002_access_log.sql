-- Who read which patient's personal data, and when (MHLW guideline: tamper-evident access records).
-- Append-only: the database refuses updates and deletes; each row's hash covers the previous row's hash,
-- so a row changed or removed behind the database's back breaks the chain (`GET /audit/access-log/verify`).
CREATE TABLE IF NOT EXISTS access_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    text        NOT NULL,
    actor_role  text        NOT NULL,
    case_id     text        NOT NULL,
    action      text        NOT NULL,
    prev_hash   text        NOT NULL,
    hash        text        NOT NULL
);
CREATE INDEX IF NOT EXISTS access_log_case ON access_log (case_id, at);

CREATE OR REPLACE FUNCTION access_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only';
END $$;

DROP TRIGGER IF EXISTS access_log_no_change ON access_log;
CREATE TRIGGER access_log_no_change BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_is_append_only();
DROP TRIGGER IF EXISTS access_log_no_truncate ON access_log;
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_is_append_only();
