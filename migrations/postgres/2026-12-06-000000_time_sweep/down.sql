DROP TABLE leases;
DROP INDEX entitlements_recheck;
