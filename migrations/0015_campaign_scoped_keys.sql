-- Version 15: a campaign's versions and ledger keys are its own (issue 15). Next semester a
-- branch's first application is version 1 again, and a result mail "重点, 5000元" to the same
-- branch is a new mail, not one the ledger already holds. The version number was unique per
-- (kind, branch) and the ledger key unique across the database; both now count per campaign.
-- SQLite cannot change a table's UNIQUE constraint or primary key in place: both tables are
-- rebuilt (nothing references either by id, except ledger → outbox, kept) with their columns
-- in the same order (`db copy` compares tables column by column with PostgreSQL's), their rows
-- copied as they are, and the indexes the reads use recreated with the campaign in front.

CREATE TABLE submissions_v15 (
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
    fields           TEXT,
    fields_source    TEXT,
    form_fields      TEXT,
    summary_fields   TEXT,
    problem_details  TEXT,
    sender_changed   INTEGER NOT NULL DEFAULT 0,
    suggested_branch TEXT,
    content_key      TEXT,
    campaign         TEXT NOT NULL DEFAULT 'default',
    UNIQUE (campaign, kind, branch_key, version)
);
INSERT INTO submissions_v15 (id, kind, branch_key, branch, college, branch_text, match_kind,
    match_score, match_reason, version, is_latest, message_id, sender, received_at, late,
    problems, created_at, fields, fields_source, form_fields, summary_fields, problem_details,
    sender_changed, suggested_branch, content_key, campaign)
SELECT id, kind, branch_key, branch, college, branch_text, match_kind,
    match_score, match_reason, version, is_latest, message_id, sender, received_at, late,
    problems, created_at, fields, fields_source, form_fields, summary_fields, problem_details,
    sender_changed, suggested_branch, content_key, campaign
FROM submissions;
DROP TABLE submissions;
ALTER TABLE submissions_v15 RENAME TO submissions;
CREATE INDEX submissions_latest ON submissions (campaign, kind, is_latest);
CREATE INDEX submissions_by_branch ON submissions (branch, sender);
CREATE INDEX submissions_board ON submissions (
    campaign, kind, is_latest, received_at, id, branch, version, late, sender_changed, problems,
    (CASE WHEN json_valid(fields) THEN json_extract(fields, '$.section') END)
);
CREATE INDEX submissions_arrivals ON submissions (campaign, kind, received_at);
CREATE INDEX submissions_sender_changed ON submissions (id) WHERE sender_changed = TRUE;

CREATE TABLE ledger_v15 (
    key           TEXT NOT NULL,              -- e.g. remind:<rule>:<deadline>:<offset>:branch=<支部>
    kind          TEXT NOT NULL,              -- reminder | digest | result
    rule          TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    period_end    TEXT,                       -- digests: the fire instant the digest covers up to
    deadline      TEXT,                       -- reminders: the deadline the occasion counted from
    offset_secs   INTEGER,                    -- reminders: how long before it
    outbox_id     INTEGER REFERENCES outbox(id),
    skipped       TEXT,                       -- why nothing was sent (e.g. an empty digest)
    created_at    TEXT NOT NULL,
    branch        TEXT,
    campaign      TEXT NOT NULL DEFAULT 'default',
    PRIMARY KEY (campaign, key)
);
INSERT INTO ledger_v15 (campaign, key, kind, rule, recipient, period_end, deadline, offset_secs,
    outbox_id, skipped, created_at, branch)
SELECT campaign, key, kind, rule, recipient, period_end, deadline, offset_secs,
    outbox_id, skipped, created_at, branch
FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v15 RENAME TO ledger;
CREATE INDEX ledger_by_rule ON ledger (campaign, kind, rule, period_end);
CREATE INDEX ledger_by_branch ON ledger (campaign, kind, rule, branch);
