ALTER TABLE history_notes DROP COLUMN grant_id;
ALTER TABLE entitlement_changes DROP COLUMN grant_id;
ALTER TABLE entitlements DROP COLUMN sources;
DROP TABLE grants;
DROP TABLE payments;
DROP TABLE purchases;
