-- Version 7 for PostgreSQL (see ../0007_branch_ledger_and_summary_role.sql): reminders go per
-- branch; 活动总结 files become their own attachment role (strpos is SQLite's instr).
ALTER TABLE ledger ADD COLUMN branch TEXT;
CREATE INDEX ledger_by_branch ON ledger (kind, rule, branch);

UPDATE attachments SET role = 'activity_summary'
 WHERE role = 'case_study'
   AND strpos(filename, '工作案例') = 0
   AND (strpos(filename, '活动总结') > 0 OR strpos(filename, '活動總結') > 0);
