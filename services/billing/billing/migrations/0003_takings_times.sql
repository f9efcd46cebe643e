-- When and in what order each ledger line's money moved (its event's time and position in the event store), for
-- the day's list of transactions the cashier closes the till with. Lines written before this have neither until a
-- rebuild (`python -m billing rebuild`); they list first.
ALTER TABLE takings_entries ADD COLUMN IF NOT EXISTS occurred_at timestamptz;
ALTER TABLE takings_entries ADD COLUMN IF NOT EXISTS position bigint;
CREATE INDEX IF NOT EXISTS takings_entries_day_order ON takings_entries (business_date, position, event_id);
