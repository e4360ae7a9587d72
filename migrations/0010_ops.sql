-- Version 10: what `shenbao health` and `status` watch.
-- daemon_state: one row per component of the running daemon ('imap' = the last successful
-- contact with the IMAP server: a poll, an IDLE wake or a fetch; 'scheduler' = the last
-- scheduler step, with its error when it failed).
CREATE TABLE daemon_state (
    component   TEXT PRIMARY KEY,
    at          TEXT NOT NULL,             -- our clock, like every time column
    ok          INTEGER NOT NULL DEFAULT 1,
    detail      TEXT
);

-- A template that failed at run time: the mail was written with the built-in template
-- instead, and staff see the error in `status`, `health` and the digest until it is fixed.
CREATE TABLE template_errors (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    template    TEXT NOT NULL,             -- file name, e.g. ack.txt.j2
    error       TEXT NOT NULL,             -- in Chinese, with the line and the unknown name
    message     INTEGER REFERENCES messages(id)   -- the mail being answered, when there is one
);
CREATE INDEX template_errors_by_at ON template_errors (at);
