-- Version 12: what the board reads again after every change (总览 and 支部 at 10,000
-- branches and 30,000 versions). Each index lets one read walk a few hundred KB of index
-- instead of the whole table, whose rows carry every version's fields three times (tens of MB):
-- Each branch's latest application in arrival order, with every column the board shows
-- (the 板块 as the same expression the read uses), and the counts of `status`.
CREATE INDEX submissions_board ON submissions (
    kind, is_latest, received_at, id, branch, version, late, sender_changed, problems,
    (CASE WHEN json_valid(fields) THEN json_extract(fields, '$.section') END)
);
-- The arrival time of every version (the arrivals-per-day chart).
CREATE INDEX submissions_arrivals ON submissions (kind, received_at);
-- The messages per status and disposition.
CREATE INDEX messages_counts ON messages (status, disposition);
-- The few mails waiting for a person, unanswered, or from an unfamiliar sender: partial
-- indexes that hold only those rows (the conditions are the reads' own, word for word).
CREATE INDEX messages_waiting ON messages (id)
    WHERE ((needs_staff = TRUE OR status = 'failed' OR disposition = 'too_large') AND resolved_at IS NULL);
CREATE INDEX messages_unanswered ON messages (id) WHERE no_answer IS NOT NULL;
CREATE INDEX submissions_sender_changed ON submissions (id) WHERE sender_changed = TRUE;
