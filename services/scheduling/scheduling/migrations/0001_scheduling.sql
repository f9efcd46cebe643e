-- Scheduling's read models, kept in the same transaction as the events and rebuildable from them.

-- One row per slot. `status` is as recorded: a `held` slot whose hold_expires_at has passed counts as
-- open (holds expire lazily, against the service's clock, when read).
CREATE TABLE IF NOT EXISTS slot_view (
    slot_id          uuid PRIMARY KEY,
    department       text        NOT NULL,
    physician_id     text        NOT NULL,
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    local_date       date        NOT NULL,  -- the consultation day in Asia/Tokyo
    status           text        NOT NULL CHECK (status IN ('open', 'held', 'booked')),
    held_for_case    uuid,
    hold_expires_at  timestamptz,
    booked_for_case  uuid,
    appointment_id   uuid,
    version          integer     NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS slot_view_department_day ON slot_view (department, local_date, starts_at);
CREATE INDEX IF NOT EXISTS slot_view_physician ON slot_view (physician_id, starts_at);

-- One row per case known to scheduling: where it stands, its candidate dates, its current appointment.
CREATE TABLE IF NOT EXISTS case_schedule_view (
    case_id          uuid PRIMARY KEY,
    status           text        NOT NULL,
    department       text,
    mode             text,
    candidates       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    hold_expires_at  timestamptz,
    appointment_id   uuid,
    fee_paid         boolean     NOT NULL DEFAULT false,
    version          integer     NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS case_schedule_view_status ON case_schedule_view (status);

-- One row per appointment (a case may have another after a cancellation).
CREATE TABLE IF NOT EXISTS appointment_view (
    appointment_id       uuid PRIMARY KEY,
    case_id              uuid        NOT NULL,
    status               text        NOT NULL CHECK (status IN ('booked', 'cancelled', 'completed', 'no_show')),
    mode                 text        NOT NULL,
    department           text        NOT NULL,
    physician_id         text        NOT NULL,
    slot_id              uuid        NOT NULL,
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz NOT NULL,
    local_date           date        NOT NULL,
    slip_issued_on       date,
    clinics_booking_ref  text,
    reschedules          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    cancellation_reason  text,
    cancelled_by         text,
    cancelled_at         timestamptz,
    completed_at         timestamptz,
    no_show_recorded_at  timestamptz,
    confirmed_at         timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS appointment_view_day ON appointment_view (local_date, starts_at);
CREATE INDEX IF NOT EXISTS appointment_view_case ON appointment_view (case_id);
