-- Reporting's own tables. Its event store (eventkit's `events`) holds the OpinionReport streams; the
-- tables below hold every event received from the bus, the report texts, and the read models.

-- Every contract event of every service, once (by event id): the log the read models are built and
-- rebuilt from. `occurred_at` is the envelope's time (when the owning service recorded it).
CREATE TABLE IF NOT EXISTS received_events (
    position       bigserial   PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    case_id        uuid        NOT NULL,
    source         text        NOT NULL,
    event_name     text        NOT NULL,
    event_version  integer     NOT NULL,
    sequence       integer     NOT NULL,
    occurred_at    timestamptz NOT NULL,
    actor_id       text,
    actor_role     text,
    causation_id   text,
    data           jsonb       NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);
-- One index serves the per-case recompute, the rebuild's case ranges and the timeline's order.
CREATE INDEX IF NOT EXISTS received_events_case_order
    ON received_events (case_id, occurred_at, source, sequence, event_id);

-- The report's text: clinical free text never leaves this database (events carry ids and codes only).
-- When intake erases the case's personal data (PersonalDataErased) the text goes too: summary NULL.
CREATE TABLE IF NOT EXISTS report_drafts (
    case_id       uuid        NOT NULL,
    draft_number  integer     NOT NULL CHECK (draft_number >= 1),
    report_id     uuid        NOT NULL,
    physician_id  text        NOT NULL,
    summary       text,
    drafted_at    timestamptz NOT NULL DEFAULT now(),
    erased_on     date,
    PRIMARY KEY (case_id, draft_number),
    CHECK ((summary IS NULL) = (erased_on IS NOT NULL))
);

-- The case board: one row per case, recomputed from all of the case's logged events.
CREATE TABLE IF NOT EXISTS case_board (
    case_id              uuid        PRIMARY KEY,
    stage                text        NOT NULL,
    department           text,
    mode                 text,
    submitted_on         date,
    consulted_on         date,
    report_delivered_on  date,
    closed_on            date,
    appointment_start    timestamptz,
    report_status        text,
    report_drafts        integer     NOT NULL,
    delivery_channel     text,
    decline_reasons      text[]      NOT NULL,
    withdrawal_reason    text,
    reschedules          integer     NOT NULL,
    no_shows             integer     NOT NULL,
    consultations        integer     NOT NULL,
    captured_yen         bigint      NOT NULL,
    refunded_yen         bigint      NOT NULL,
    event_count          integer     NOT NULL,
    last_event_at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS case_board_by_stage ON case_board (stage, last_event_at DESC);
CREATE INDEX IF NOT EXISTS case_board_by_submission ON case_board (submitted_on);

-- Business days (Mon-Fri, not a national holiday, not 29 Dec - 3 Jan), filled by the service from jpholiday.
CREATE TABLE IF NOT EXISTS business_calendar (
    day           date    PRIMARY KEY,
    business_day  boolean NOT NULL,
    ordinal       integer NOT NULL
);
