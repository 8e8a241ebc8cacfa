DROP INDEX entitlement_changes_org_position;
DROP INDEX webhook_events_org_position;
CREATE INDEX webhook_events_org_id ON webhook_events (org_id, received_at);
ALTER TABLE entitlement_changes DROP COLUMN position;
ALTER TABLE webhook_events DROP COLUMN position;
ALTER TABLE subscriptions DROP COLUMN dunning_invoice_created;
ALTER TABLE organizations DROP COLUMN history_position;
ALTER TABLE organizations DROP COLUMN customer_attempt;
