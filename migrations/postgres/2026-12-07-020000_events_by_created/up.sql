-- The newest event's `created` is Stripe's clock as last heard: a
-- reconciliation reads it before each page to stamp what it lists.
CREATE INDEX webhook_events_created ON webhook_events (created);
