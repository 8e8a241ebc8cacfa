-- A random id of this database, made once: notification message ids name
-- it beside the feed position, so a rebuilt database (positions from 1
-- again) never reuses an id a receiver has already seen.
CREATE TABLE installation (
    id TEXT PRIMARY KEY
);
INSERT INTO installation (id) VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 16));
