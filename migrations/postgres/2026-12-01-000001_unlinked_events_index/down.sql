DROP INDEX webhook_events_unlinked;
