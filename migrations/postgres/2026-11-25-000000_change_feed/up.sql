-- Each change carries the whole answer at its version (JSON), as the
-- change feed and notifications send it. Changes stored before have none:
-- their plan, status and features stand for it.
ALTER TABLE entitlement_changes ADD COLUMN answer TEXT;

-- A change's place in the feed, given once it has committed, in the order
-- the changes became visible (see the feed's sequencer).
ALTER TABLE entitlement_changes ADD COLUMN feed_position BIGINT;
UPDATE entitlement_changes SET feed_position = id;
CREATE UNIQUE INDEX entitlement_changes_feed ON entitlement_changes (feed_position);
CREATE INDEX entitlement_changes_unsequenced ON entitlement_changes (id) WHERE feed_position IS NULL;
