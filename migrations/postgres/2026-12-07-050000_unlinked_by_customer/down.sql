DROP INDEX webhook_events_unlinked_customer;
ALTER TABLE webhook_events DROP COLUMN customer_id;
