-- Who has signed in to the desk, by staff id: the name pages show instead of the id (the hospital's staff
-- directory, STAFF_DIRECTORY_FILE, wins where it lists the member), their roles, and when they last signed in.
-- Written at each sign-in; names of staff only, never a patient's.
CREATE TABLE desk_staff (
    staff_id      text PRIMARY KEY,
    display_name  text NOT NULL,
    roles         jsonb NOT NULL,
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
