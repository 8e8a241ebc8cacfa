-- Signed-in operators of the admin console. The browser holds the session
-- id in a cookie; only its SHA-256 digest is stored, never the token it
-- signed in with.
CREATE TABLE admin_sessions (
    id_digest TEXT PRIMARY KEY,
    -- The name of the token that signed in, recorded as the author of
    -- what the session changes.
    token_name TEXT NOT NULL,
    -- Signed in with the admin:read scope only: nothing may be changed.
    read_only BOOLEAN NOT NULL,
    -- Every form that changes something must carry this.
    csrf_token TEXT NOT NULL,
    -- Unix seconds.
    expires_at BIGINT NOT NULL
);
