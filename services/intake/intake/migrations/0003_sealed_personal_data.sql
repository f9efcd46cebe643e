-- Personal data is now sealed with a per-case key (crypto-shredding). Pre-release schema change: the
-- plaintext table held development data only and is replaced rather than migrated.
DROP TABLE IF EXISTS case_personal_data;
CREATE TABLE case_personal_data (
    case_id  uuid PRIMARY KEY,
    sealed   bytea NOT NULL
);
ALTER TABLE case_view ADD COLUMN IF NOT EXISTS personal_data_erased_on date;
