-- Version 13 for PostgreSQL (see ../0013_leases.sql): several daemons on one database (issue 15). A lease is a named job (`intake:`
-- an account's folder, `scheduler`, `daemon:` a daemon's own liveness) held by one daemon until
-- it expires; the holder renews it well before. Times are RFC 3339 UTC text, as everywhere.
CREATE TABLE leases (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    renewed_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
-- Which daemon marked an outbox mail `sending`: only a dead holder's sends become
-- `unconfirmed`, never those another daemon has in flight.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
