-- shenbao schema, version 1.
-- Times are RFC 3339 UTC text ("2025-09-22T01:41:42Z"): they sort lexically in time order.
-- Raw mail and attachment bytes live in the data directory, content-addressed by sha256
-- (see README); `blobs` records which ones are known to be fully written.

CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);

-- One row per watched IMAP folder: the UIDVALIDITY we know and the last UID committed.
CREATE TABLE mailbox_state (
    account      TEXT NOT NULL,
    folder       TEXT NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (account, folder)
);

-- Every message that reached shenbao, stored before anything else happens.
CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    source         TEXT NOT NULL,             -- 'imap' | 'file'
    account        TEXT,
    folder         TEXT,
    uidvalidity    INTEGER,
    uid            INTEGER,
    message_id     TEXT,                      -- the sender's Message-ID, without <>
    raw_sha256     TEXT NOT NULL REFERENCES blobs(sha256),
    size           INTEGER NOT NULL,
    internal_date  TEXT,                      -- the server's arrival time (IMAP INTERNALDATE)
    stored_at      TEXT NOT NULL,             -- our clock
    subject        TEXT,
    from_addr      TEXT,
    from_name      TEXT,
    status         TEXT NOT NULL DEFAULT 'stored',   -- stored | processed | failed
    disposition    TEXT,                      -- application | closure | auto | question | subject_help | duplicate | too_large
    reason         TEXT,                      -- why, in words, for staff
    moved          INTEGER NOT NULL DEFAULT 0,
    processed_at   TEXT,
    UNIQUE (account, folder, uidvalidity, uid)
);
CREATE INDEX messages_by_mid ON messages (message_id, raw_sha256);
CREATE INDEX messages_by_status ON messages (status);

-- Attachments in mail order; zip entries point at their zip with parent_id.
CREATE TABLE attachments (
    id               INTEGER PRIMARY KEY,
    message_id       INTEGER NOT NULL REFERENCES messages(id),
    parent_id        INTEGER REFERENCES attachments(id),
    ordinal          INTEGER NOT NULL,
    filename         TEXT NOT NULL,
    safe_name        TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    format           TEXT NOT NULL,
    declared_format  TEXT,
    role             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    sha256           TEXT NOT NULL REFERENCES blobs(sha256),
    error            TEXT
);
CREATE INDEX attachments_by_message ON attachments (message_id);

-- Applications and closures. A branch's next mail of the same kind is the next version; the
-- latest counts and every earlier one is kept.
CREATE TABLE submissions (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,             -- application | closure
    branch_key     TEXT NOT NULL,             -- roster name, or '?' + the name as written
    branch         TEXT,                      -- roster name; NULL when unknown
    college        TEXT,
    branch_text    TEXT,                      -- as written in the subject
    match_kind     TEXT NOT NULL,             -- exact | fuzzy | unknown
    match_score    REAL NOT NULL,
    match_reason   TEXT NOT NULL,
    version        INTEGER NOT NULL,
    is_latest      INTEGER NOT NULL,
    message_id     INTEGER NOT NULL UNIQUE REFERENCES messages(id),
    sender         TEXT NOT NULL,
    received_at    TEXT NOT NULL,             -- INTERNALDATE, else our clock
    late           INTEGER NOT NULL,
    problems       TEXT NOT NULL,             -- JSON array of problem codes
    created_at     TEXT NOT NULL,
    UNIQUE (kind, branch_key, version)
);
CREATE INDEX submissions_latest ON submissions (kind, is_latest);

-- The durable outbox: a mail is rendered once, stored here in the same transaction as the
-- decision to send it, and sent (and retried) from here.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,           -- ack | subject_help | ...
    message_id       TEXT NOT NULL UNIQUE,    -- ours, without <>
    related_message  INTEGER REFERENCES messages(id),
    to_addr          TEXT NOT NULL,
    subject          TEXT NOT NULL,
    raw              BLOB NOT NULL,
    status           TEXT NOT NULL DEFAULT 'queued',  -- queued | sent | dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_recipient ON outbox (to_addr, created_at);
