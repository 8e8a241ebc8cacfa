-- One-time purchases: a payment-mode Checkout Session, granting its plan
-- from when it was paid, for the plan's access_days or forever.
CREATE TABLE purchases (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    customer_id TEXT,
    payment_intent_id TEXT,
    plan TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    -- pending (a delayed payment method), paid or failed
    status TEXT NOT NULL,
    paid_at BIGINT,
    last_event_created BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX purchases_org ON purchases (org_id);
CREATE INDEX purchases_payment_intent ON purchases (payment_intent_id);

-- What refunds and disputes did to a payment, kept whether or not its
-- purchase is known yet, so that either may arrive first. Its row is also
-- the lock that orders a purchase against its refunds and disputes.
CREATE TABLE payments (
    payment_intent_id TEXT PRIMARY KEY,
    refunded BOOLEAN NOT NULL DEFAULT FALSE,
    disputed BOOLEAN NOT NULL DEFAULT FALSE,
    dispute_event_created BIGINT,
    updated_at BIGINT NOT NULL
);

-- Access given by hand; revoked grants are kept for audit.
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    plan TEXT,
    features TEXT,
    quantity BIGINT NOT NULL,
    expires_at BIGINT,
    reason TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT,
    -- whether the history says it expired
    expiry_noted BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX grants_org ON grants (org_id, created_at);

-- What grants an answer (JSON); answers stored before are computed again,
-- since the rules' fingerprint changed with the catalog's.
ALTER TABLE entitlements ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
-- The grant that caused a change or a note, beside the event.
ALTER TABLE entitlement_changes ADD COLUMN grant_id TEXT;
ALTER TABLE history_notes ADD COLUMN grant_id TEXT;
