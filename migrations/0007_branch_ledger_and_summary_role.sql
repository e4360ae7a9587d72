-- Version 7, part 1: reminders and result mails go per branch, not per address.
-- Two branches may share one secretary's address; the ledger key of a reminder now names the
-- branch (remind:<rule>:<deadline>:<offset>:branch=<支部名称>) and this column records it, so
-- "already sent for this occasion" is asked per branch. Rows written before this version have
-- no branch (NULL) and a key ending in the address: the planner treats such a row as covering
-- every branch at that address for that occasion, so upgrading never sends a reminder twice.
ALTER TABLE ledger ADD COLUMN branch TEXT;
CREATE INDEX ledger_by_branch ON ledger (kind, rule, branch);

-- Version 7, part 2: the closure materials 工作案例 (重点, 特色) and 活动总结 (一般) are distinct attachment roles
-- from this version on; before, both were stored as case_study. A file got that role only from
-- its name, 工作案例 checked first (then 活动总结 / 活動總結), so the name tells which it was.
UPDATE attachments SET role = 'activity_summary'
 WHERE role = 'case_study'
   AND instr(filename, '工作案例') = 0
   AND (instr(filename, '活动总结') > 0 OR instr(filename, '活動總結') > 0);
