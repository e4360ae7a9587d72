-- Version 11 for PostgreSQL (see ../0011_board_indexes.sql): the board's 支部详情 looks up the
-- mails about one branch by index.
CREATE INDEX outbox_by_branch ON outbox (branch);
CREATE INDEX outbox_by_related ON outbox (related_message);
