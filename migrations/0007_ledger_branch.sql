-- Version 7: reminders and result mails go per branch, not per address.
-- Two branches may share one secretary's address; the ledger key of a reminder now names the
-- branch (remind:<rule>:<deadline>:<offset>:branch=<支部名称>) and this column records it, so
-- "already sent for this occasion" is asked per branch. Rows written before this version have
-- no branch (NULL) and a key ending in the address: the planner treats such a row as covering
-- every branch at that address for that occasion, so upgrading never sends a reminder twice.
ALTER TABLE ledger ADD COLUMN branch TEXT;
CREATE INDEX ledger_by_branch ON ledger (kind, rule, branch);
