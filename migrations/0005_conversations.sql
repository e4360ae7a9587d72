-- Version 5: conversations, corrections and sender trust.
-- A mail that answers one of ours is conversation unless it carries materials; staff see it
-- (needs_staff) until they resolve it. Every decision not to answer is kept in no_answer.

-- The roster branch a message concerns (registered, answered on a thread, or assigned).
ALTER TABLE messages ADD COLUMN branch TEXT;
-- Our Message-ID (without <>) that this mail answers, found in In-Reply-To or References.
ALTER TABLE messages ADD COLUMN thread_of TEXT;
-- 1 while the message waits for a person (question, reply, unrecognised branch …).
ALTER TABLE messages ADD COLUMN needs_staff INTEGER NOT NULL DEFAULT 0;
-- Why nothing was sent back when a person might expect an answer, in words, for staff.
ALTER TABLE messages ADD COLUMN no_answer TEXT;
-- The weak automatic-mail signals seen (JSON array of {code, detail, strength}).
ALTER TABLE messages ADD COLUMN auto_hints TEXT;
-- Staff's `shenbao assign ID BRANCH`: the branch this message is registered for.
ALTER TABLE messages ADD COLUMN assigned_branch TEXT;
-- Staff's `shenbao resolve ID`: when, and what they noted.
ALTER TABLE messages ADD COLUMN resolved_at TEXT;
ALTER TABLE messages ADD COLUMN resolved_note TEXT;
CREATE INDEX messages_needs_staff ON messages (needs_staff, resolved_at);

-- 1 when a version came from an address that is neither the roster's secretary nor the
-- sender of the branch's earlier versions (the secretary is copied on the acknowledgement).
ALTER TABLE submissions ADD COLUMN sender_changed INTEGER NOT NULL DEFAULT 0;
-- The roster branch the form names, when the subject's branch could not be recognised.
ALTER TABLE submissions ADD COLUMN suggested_branch TEXT;
-- sha256 over the sorted sha256s of the material files: tells a resend of identical content.
ALTER TABLE submissions ADD COLUMN content_key TEXT;
-- A branch's earlier senders (sender trust) and versions, looked up for every registration.
CREATE INDEX submissions_by_branch ON submissions (branch, sender);

-- A copy recipient (the roster's secretary, for a version from another address).
ALTER TABLE outbox ADD COLUMN cc_addr TEXT;
-- The roster branch a mail was about: a reply to it is about that branch.
ALTER TABLE outbox ADD COLUMN branch TEXT;
UPDATE messages SET needs_staff = 1 WHERE disposition = 'question';
