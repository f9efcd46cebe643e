-- A case number a person can read over the phone (SO-2026-00123): per year of submission (Asia/Tokyo), in order,
-- assigned in the submission's transaction, never reused. Kept beside the stream, not in a projection: a rebuild
-- never drops or renumbers it, and an erasure keeps it (it is no personal data).
CREATE TABLE IF NOT EXISTS case_number_counters (
    year  integer PRIMARY KEY,
    last  integer NOT NULL CHECK (last > 0)
);
CREATE TABLE IF NOT EXISTS case_numbers (
    case_id   uuid    PRIMARY KEY,
    number    text    NOT NULL UNIQUE,
    year      integer NOT NULL,
    sequence  integer NOT NULL CHECK (sequence > 0),
    UNIQUE (year, sequence)
);
-- The cases submitted before case numbers, numbered in the order they were submitted.
INSERT INTO case_numbers (case_id, number, year, sequence)
SELECT case_id, format('SO-%s-%s', year, lpad(sequence::text, 5, '0')), year, sequence
FROM (SELECT case_id, extract(year FROM submitted_on)::integer AS year,
             row_number() OVER (PARTITION BY extract(year FROM submitted_on)
                                ORDER BY submitted_on, updated_at, case_id)::integer AS sequence
      FROM case_view) AS numbered
ON CONFLICT (case_id) DO NOTHING;
INSERT INTO case_number_counters (year, last)
SELECT year, max(sequence) FROM case_numbers GROUP BY year
ON CONFLICT (year) DO UPDATE SET last = greatest(case_number_counters.last, excluded.last);

-- The keyed blind index the desk finds a case by when the patient calls back: HMAC-SHA256 (INTAKE_SEARCH_INDEX_KEY)
-- of each normalised value (the patient's name and its kana, the birth date, the requester's phone), never the
-- value. An erasure deletes the case's rows in its own transaction.
CREATE TABLE IF NOT EXISTS case_search_index (
    kind     text  NOT NULL,
    digest   bytea NOT NULL,
    case_id  uuid  NOT NULL,
    PRIMARY KEY (kind, digest, case_id)
);
CREATE INDEX IF NOT EXISTS case_search_index_case ON case_search_index (case_id);
