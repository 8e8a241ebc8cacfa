-- The customer an event's object names, so that linking a customer finds
-- the events that wait for it by an index, not by reading their payloads.
ALTER TABLE webhook_events ADD COLUMN customer_id TEXT;
UPDATE webhook_events AS e SET customer_id = COALESCE(
    CASE jsonb_typeof(p.object -> 'customer') WHEN 'string'
        THEN p.object ->> 'customer' END,
    CASE jsonb_typeof(p.object #> '{customer,id}') WHEN 'string'
        THEN p.object #>> '{customer,id}' END,
    CASE jsonb_typeof(p.object #> '{charge,customer}') WHEN 'string'
        THEN p.object #>> '{charge,customer}' END
)
FROM (
    SELECT id, payload::jsonb #> '{data,object}' AS object
    FROM webhook_events WHERE outcome = 'unlinked'
) AS p
WHERE e.id = p.id;
CREATE INDEX webhook_events_unlinked_customer ON webhook_events (customer_id, created)
    WHERE outcome = 'unlinked';
