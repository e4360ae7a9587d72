-- Version 13 for PostgreSQL (see ../0013_leases.sql): several daemons on one database (issue 15). A lease is a named job (`intake:`
-- an account's folder, `scheduler`, `daemon:` a daemon's own liveness) held by one daemon until
-- it expires; the holder renews it well before. Times are RFC 3339 UTC text, as everywhere.
CREATE TABLE leases (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    renewed_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    -- A daemon's liveness lease: the From address it sends in (see outbox.from_addr).
    note         TEXT
);
-- Which daemon marked an outbox mail `sending`: only a dead holder's sends become
-- `unconfirmed`, never those another daemon has in flight.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
-- Whose mail it is: the From address it was written with. Several daemons reading different
-- mailboxes share one outbox; each sends only mail written in its own name (its SMTP login
-- must match, and the copy of an interrupted send is looked for in its own mailbox).
ALTER TABLE outbox ADD COLUMN from_addr TEXT;
