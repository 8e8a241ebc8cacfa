-- Events waiting for an organization are counted on every /metrics scrape
-- and listed for linking: an index of them alone keeps that cheap.
CREATE INDEX webhook_events_unlinked ON webhook_events (created) WHERE outcome = 'unlinked';
