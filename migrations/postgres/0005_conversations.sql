-- Version 5 for PostgreSQL (see ../0005_conversations.sql): conversations, corrections and
-- sender trust.
ALTER TABLE messages ADD COLUMN branch TEXT;
ALTER TABLE messages ADD COLUMN thread_of TEXT;
ALTER TABLE messages ADD COLUMN needs_staff BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE messages ADD COLUMN no_answer TEXT;
ALTER TABLE messages ADD COLUMN auto_hints TEXT;
ALTER TABLE messages ADD COLUMN assigned_branch TEXT;
ALTER TABLE messages ADD COLUMN resolved_at TEXT;
ALTER TABLE messages ADD COLUMN resolved_note TEXT;
CREATE INDEX messages_needs_staff ON messages (needs_staff, resolved_at);

ALTER TABLE submissions ADD COLUMN sender_changed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE submissions ADD COLUMN suggested_branch TEXT;
ALTER TABLE submissions ADD COLUMN content_key TEXT;
CREATE INDEX submissions_by_branch ON submissions (branch, sender);

ALTER TABLE outbox ADD COLUMN cc_addr TEXT;
ALTER TABLE outbox ADD COLUMN branch TEXT;
UPDATE messages SET needs_staff = TRUE WHERE disposition = 'question';
