-- Version 16: the sender's choice of due mail reads the index alone (issue 16). It picks the
-- oldest due mails whose From it may send: status, next_attempt_at and from_addr. With only
-- the first two in the index, every due row was read to test its From and to sort by id, and
-- an ack's raw mail (a few KiB, most of a 4 KiB page) comes before from_addr in the row, so
-- each such test read the row's overflow pages too: a backlog of 1,000 acks read the whole
-- queue again for every batch of 20 it sent.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at, from_addr);
