-- Version 11: what the board's 支部详情 looks up per branch. The mails about one branch, by
-- the branch they were queued for or by the version they answer: without these indexes each
-- look-up read the whole outbox, whose rows carry the rendered mails (hundreds of MB at
-- 30,000 mails; 0.3–2 s a page).
CREATE INDEX outbox_by_branch ON outbox (branch);
CREATE INDEX outbox_by_related ON outbox (related_message);
