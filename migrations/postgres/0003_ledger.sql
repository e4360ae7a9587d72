-- Version 3 for PostgreSQL (see ../0003_ledger.sql): the ledger of scheduled mail.
CREATE TABLE ledger (
    key           TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    rule          TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    period_end    TEXT,
    deadline      TEXT,
    offset_secs   BIGINT,
    outbox_id     BIGINT REFERENCES outbox(id),
    skipped       TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX ledger_by_rule ON ledger (kind, rule, period_end);
