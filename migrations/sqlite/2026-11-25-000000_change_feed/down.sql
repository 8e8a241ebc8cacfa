DROP INDEX entitlement_changes_unsequenced;
DROP INDEX entitlement_changes_feed;
ALTER TABLE entitlement_changes DROP COLUMN feed_position;
ALTER TABLE entitlement_changes DROP COLUMN answer;
