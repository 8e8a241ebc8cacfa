-- The customer an event's object names, so that linking a customer finds
-- the events that wait for it by an index, not by reading their payloads.
ALTER TABLE webhook_events ADD COLUMN customer_id TEXT;
UPDATE webhook_events SET customer_id = COALESCE(
    CASE json_type(payload, '$.data.object.customer') WHEN 'text'
        THEN json_extract(payload, '$.data.object.customer') END,
    CASE json_type(payload, '$.data.object.customer.id') WHEN 'text'
        THEN json_extract(payload, '$.data.object.customer.id') END,
    CASE json_type(payload, '$.data.object.charge.customer') WHEN 'text'
        THEN json_extract(payload, '$.data.object.charge.customer') END
) WHERE outcome = 'unlinked' AND json_valid(payload);
CREATE INDEX webhook_events_unlinked_customer ON webhook_events (customer_id, created)
    WHERE outcome = 'unlinked';
