-- The envelope's correlation id (the case) beside each outbox row, published as the message's AMQP
-- `correlation_id` property: subscribers can route and trace by it without parsing the body. Rows written
-- before this migration have none and are published without the property.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS correlation_id text;
