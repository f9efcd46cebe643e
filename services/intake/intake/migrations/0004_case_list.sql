-- The desk's case list pages by submission date (then case id), newest or oldest first.
CREATE INDEX IF NOT EXISTS case_view_submitted ON case_view (submitted_on, case_id);
