DROP INDEX webhook_events_created;
