-- Version 12 (PostgreSQL): what the board reads again after every change, as in the SQLite
-- migration of the same number. The latest applications' index covers the columns the board
-- shows (INCLUDE); the 板块 is read from the row, since `fields` is plain TEXT here.
CREATE INDEX submissions_board ON submissions (kind, is_latest, received_at, id)
    INCLUDE (branch, version, late, sender_changed, problems);
CREATE INDEX submissions_arrivals ON submissions (kind, received_at);
CREATE INDEX messages_counts ON messages (status, disposition);
CREATE INDEX messages_waiting ON messages (id)
    WHERE ((needs_staff = TRUE OR status = 'failed' OR disposition = 'too_large') AND resolved_at IS NULL);
CREATE INDEX messages_unanswered ON messages (id) WHERE no_answer IS NOT NULL;
CREATE INDEX submissions_sender_changed ON submissions (id) WHERE sender_changed = TRUE;
