-- Organizations and the Stripe customer the service created for each.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    stripe_customer_id TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The last applied state of every subscription Stripe told us about.
-- org_id is NULL while a subscription waits for its checkout event.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES organizations (id),
    customer_id TEXT,
    status TEXT,
    current_period_start BIGINT,
    current_period_end BIGINT,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    -- Dunning: when the unpaid invoice first failed, which invoice, and the
    -- latest payment, so invoice events order themselves.
    past_due_since BIGINT,
    dunning_invoice TEXT,
    last_paid_at BIGINT,
    last_event_created BIGINT,
    -- In refetch mode: when the applied state was read from Stripe (ms).
    state_read_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX subscriptions_org_id ON subscriptions (org_id);
CREATE INDEX subscriptions_customer_id ON subscriptions (customer_id);

CREATE TABLE subscription_items (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    price_id TEXT NOT NULL,
    quantity BIGINT NOT NULL
);
CREATE INDEX subscription_items_subscription_id ON subscription_items (subscription_id);

-- The materialized answer of GET /v1/entitlements/{org_id}.
CREATE TABLE entitlements (
    org_id TEXT PRIMARY KEY REFERENCES organizations (id),
    plan TEXT NOT NULL,
    status TEXT NOT NULL,
    features TEXT NOT NULL,
    subscription_id TEXT,
    current_period_end BIGINT,
    cancel_at_period_end BOOLEAN NOT NULL,
    grace_until BIGINT,
    valid_until BIGINT,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Every verified webhook event, once, with its raw payload and outcome.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    created BIGINT NOT NULL,
    livemode BOOLEAN NOT NULL,
    org_id TEXT,
    subscription_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_events_org_id ON webhook_events (org_id, received_at);

-- One row per change of an organization's entitlements.
CREATE TABLE entitlement_changes (
    id BIGSERIAL PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    version BIGINT NOT NULL,
    event_id TEXT,
    plan TEXT NOT NULL,
    status TEXT NOT NULL,
    features TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    UNIQUE (org_id, version)
);
