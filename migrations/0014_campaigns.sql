-- Version 14: every row carries its campaign (issue 15, "campaigns are first-class"). The same
-- subject comes back every semester; a mail belongs to the campaign whose subject it carries
-- and in whose window it arrived (`campaign::calendar::select`), and what it leads to — its
-- version, the answer, the reminders, digests, results and review decisions — to the same one.
-- A database written before knew one campaign only: its rows get the id of the single
-- `[campaign]` table without an `id`, `default`.
ALTER TABLE messages ADD COLUMN campaign TEXT NOT NULL DEFAULT 'default';
ALTER TABLE submissions ADD COLUMN campaign TEXT NOT NULL DEFAULT 'default';
ALTER TABLE outbox ADD COLUMN campaign TEXT NOT NULL DEFAULT 'default';
ALTER TABLE ledger ADD COLUMN campaign TEXT NOT NULL DEFAULT 'default';
ALTER TABLE review_imports ADD COLUMN campaign TEXT NOT NULL DEFAULT 'default';
ALTER TABLE reviews ADD COLUMN campaign TEXT NOT NULL DEFAULT 'default';
-- Where the reads of one campaign (`--campaign`, the board) will start: each branch's latest
-- version, the messages per status and disposition, the outbox per kind and status, the
-- ledger per rule, the current review decisions.
CREATE INDEX submissions_by_campaign ON submissions (campaign, kind, is_latest);
CREATE INDEX messages_by_campaign ON messages (campaign, status, disposition);
CREATE INDEX outbox_by_campaign ON outbox (campaign, kind, status);
CREATE INDEX ledger_by_campaign ON ledger (campaign, kind, rule);
CREATE INDEX reviews_by_campaign ON reviews (campaign, branch, is_current);
