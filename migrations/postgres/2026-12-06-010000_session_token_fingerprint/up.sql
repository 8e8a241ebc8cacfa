-- Which token a session signed in with, beyond its name: a digest of a
-- digest of the token, so that a session whose token was replaced,
-- removed or lost its admin scopes ends at its next request. Sessions
-- from before have none and end at their next request.
ALTER TABLE admin_sessions ADD COLUMN token_fingerprint TEXT NOT NULL DEFAULT '';
