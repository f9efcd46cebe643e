-- The case number staff read over the phone (SO-2026-00123), from CaseSubmitted (contracts 1.3.0): the board shows
-- it beside the id. Cases submitted before it have none until a rebuild (their events carry none either).
ALTER TABLE case_board ADD COLUMN IF NOT EXISTS case_number text;
