-- Version 15 for PostgreSQL (see ../0015_campaign_scoped_keys.sql): a campaign's version
-- numbers and ledger keys are its own. PostgreSQL changes the constraints in place.
ALTER TABLE submissions DROP CONSTRAINT submissions_kind_branch_key_version_key;
ALTER TABLE submissions ADD CONSTRAINT submissions_campaign_version_key
    UNIQUE (campaign, kind, branch_key, version);
DROP INDEX submissions_latest;
CREATE INDEX submissions_latest ON submissions (campaign, kind, is_latest);
DROP INDEX submissions_board;
CREATE INDEX submissions_board ON submissions (campaign, kind, is_latest, received_at, id)
    INCLUDE (branch, version, late, sender_changed, problems);
DROP INDEX submissions_arrivals;
CREATE INDEX submissions_arrivals ON submissions (campaign, kind, received_at);
DROP INDEX submissions_by_campaign;

ALTER TABLE ledger DROP CONSTRAINT ledger_pkey;
ALTER TABLE ledger ADD PRIMARY KEY (campaign, key);
DROP INDEX ledger_by_rule;
CREATE INDEX ledger_by_rule ON ledger (campaign, kind, rule, period_end);
DROP INDEX ledger_by_branch;
CREATE INDEX ledger_by_branch ON ledger (campaign, kind, rule, branch);
DROP INDEX ledger_by_campaign;
