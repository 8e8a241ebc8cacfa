-- Which rules (the catalog's fingerprint and the policy) answers are
-- computed under: those of the replica that started last, or of
-- `billing-api catalog activate`. A replica with other rules serves what
-- is stored and leaves recomputing to one whose rules are in force, so
-- that two catalogs during a rolling deploy never take turns.
CREATE TABLE rules_in_force (
    name TEXT PRIMARY KEY,
    rules TEXT NOT NULL,
    activated_at BIGINT NOT NULL
);
