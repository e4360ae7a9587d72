-- Version 3: the ledger of scheduled mail (reminders, digests).
-- One row per occasion × recipient, inserted in the same transaction that queues the mail in
-- the outbox: the primary key is what makes a restart, a second daemon or a clock jump unable
-- to send the same reminder or digest twice.
CREATE TABLE ledger (
    key           TEXT PRIMARY KEY,           -- e.g. remind:<rule>:<deadline>:<offset>:<recipient>
    kind          TEXT NOT NULL,              -- reminder | digest
    rule          TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    period_end    TEXT,                       -- digests: the fire instant the digest covers up to
    deadline      TEXT,                       -- reminders: the deadline the occasion counted from
    offset_secs   INTEGER,                    -- reminders: how long before it
    outbox_id     INTEGER REFERENCES outbox(id),
    skipped       TEXT,                       -- why nothing was sent (e.g. an empty digest)
    created_at    TEXT NOT NULL
);
CREATE INDEX ledger_by_rule ON ledger (kind, rule, period_end);
