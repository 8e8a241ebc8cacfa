-- Outbound notifications. Each endpoint reads the change feed from where
-- it was first configured; what it must still be sent is kept per
-- organization, so one organization's versions go out in order while
-- organizations do not wait for each other.
CREATE TABLE notify_endpoints (
    name TEXT PRIMARY KEY,
    -- The feed position up to which changes have been taken in.
    feed_position BIGINT NOT NULL
);

CREATE TABLE notify_progress (
    endpoint TEXT NOT NULL,
    org_id TEXT NOT NULL,
    -- The newest version to send, and the last one sent (or given up).
    wanted_version BIGINT NOT NULL,
    sent_version BIGINT NOT NULL,
    -- Failed attempts at the next version, since when it fails, why.
    attempts INTEGER NOT NULL DEFAULT 0,
    failing_since BIGINT,
    last_error TEXT,
    -- Not before (unix ms), and until when a sender holds it (unix ms).
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    leased_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint, org_id)
);
CREATE INDEX notify_progress_due ON notify_progress (endpoint, next_attempt_at)
    WHERE wanted_version > sent_version;
