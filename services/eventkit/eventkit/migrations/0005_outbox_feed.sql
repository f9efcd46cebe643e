-- The catch-up feed (eventkit.feed) pages through the outbox by (txid, id): the writing transaction's id, then
-- the row's. A transaction that has not finished can only ever write rows above every finished one's txid, so
-- the feed, serving only rows below the oldest unfinished transaction, never gains a row behind a page it served.
-- Rows written before this migration share its transaction's id and keep their order by id.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS outbox_feed ON outbox (txid, id);
