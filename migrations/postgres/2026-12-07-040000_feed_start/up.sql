-- Where the change feed starts: every change positioned at or below
-- pruned_upto has been deleted (retention.changes_days), so a cursor below
-- it has missed changes and a cursor at or above it has missed none.
CREATE TABLE feed_start (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_upto BIGINT NOT NULL
);
INSERT INTO feed_start (id, pruned_upto) VALUES (1, 0);
