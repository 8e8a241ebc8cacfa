ALTER TABLE admin_sessions DROP COLUMN token_fingerprint;
