-- What time alone changes (a grant or a pass expiring, a grace period or a
-- canceled subscription's last period ending) is found by when it is due.
CREATE INDEX entitlements_recheck ON entitlements (recheck_at) WHERE recheck_at IS NOT NULL;

-- Background work that one replica at a time does holds a lease here:
-- its holder, until when (unix ms).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
