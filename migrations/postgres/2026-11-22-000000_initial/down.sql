DROP TABLE entitlement_changes;
DROP TABLE webhook_events;
DROP TABLE entitlements;
DROP TABLE subscription_items;
DROP TABLE subscriptions;
DROP TABLE organizations;
