-- From now on each entry's hash is keyed (HMAC-SHA256 with the service's access log key): whoever can write the
-- table but does not hold the key cannot recompute the chain after changing a row. Entries written before keep
-- their plain SHA-256: they are those up to the id noted here, once, when the chain became keyed (the services'
-- runtime roles may only read this table).
CREATE TABLE IF NOT EXISTS access_log_unkeyed (last_id bigint NOT NULL);
INSERT INTO access_log_unkeyed (last_id)
    SELECT coalesce(max(id), 0) FROM access_log WHERE NOT EXISTS (SELECT 1 FROM access_log_unkeyed);
