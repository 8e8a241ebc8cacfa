-- An organization's history in the order its entries were written: every
-- event applied to an organization and every change of its entitlements
-- takes the next position of that organization, under its row lock, so
-- positions follow commit order and pages never skip or repeat an entry.
ALTER TABLE organizations ADD COLUMN history_position BIGINT NOT NULL DEFAULT 0;
-- Which attempt at creating the organization's Stripe customer is next:
-- part of the idempotency key, moved on after Stripe fails on its side.
ALTER TABLE organizations ADD COLUMN customer_attempt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_events ADD COLUMN position BIGINT;
-- When the invoice in dunning was created, so that only a payment of that
-- invoice or a newer one ends dunning.
ALTER TABLE subscriptions ADD COLUMN dunning_invoice_created BIGINT;
ALTER TABLE entitlement_changes ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
-- The rules (catalog and policy) an answer was computed under, and when it
-- must be computed again because time alone changes it (a grace period or
-- a canceled subscription's last period ends). NULL: compute again.
ALTER TABLE entitlements ADD COLUMN rules TEXT;
ALTER TABLE entitlements ADD COLUMN recheck_at BIGINT;

-- What operators did to an organization (a replay), in its history.
CREATE TABLE history_notes (
    org_id TEXT NOT NULL REFERENCES organizations (id),
    position BIGINT NOT NULL,
    action TEXT NOT NULL,
    event_id TEXT,
    detail TEXT NOT NULL,
    noted_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, position)
);

-- Existing entries keep the order the history showed them in: by time,
-- events before the changes of the same second.
CREATE TEMPORARY TABLE history_backfill AS
SELECT kind, event_id, change_id, org_id,
       ROW_NUMBER() OVER (PARTITION BY org_id ORDER BY at, kind, version, event_id) AS position
FROM (
    SELECT 0 AS kind, id AS event_id, NULL AS change_id, org_id, received_at AS at, 0 AS version
    FROM webhook_events WHERE org_id IS NOT NULL
    UNION ALL
    SELECT 1, NULL, id, org_id, changed_at, version FROM entitlement_changes
) AS entries;

UPDATE webhook_events SET position = b.position
FROM history_backfill AS b WHERE b.kind = 0 AND b.event_id = webhook_events.id;
UPDATE entitlement_changes SET position = b.position
FROM history_backfill AS b WHERE b.kind = 1 AND b.change_id = entitlement_changes.id;
UPDATE organizations SET history_position = (
    SELECT COALESCE(MAX(b.position), 0) FROM history_backfill AS b WHERE b.org_id = organizations.id
);
DROP TABLE history_backfill;

DROP INDEX webhook_events_org_id;
CREATE INDEX webhook_events_org_position ON webhook_events (org_id, position);
CREATE INDEX entitlement_changes_org_position ON entitlement_changes (org_id, position);
