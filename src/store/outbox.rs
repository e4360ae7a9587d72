//! The `outbox` table: every mail we send, rendered and queued inside the transaction that
//! decided to send it, then handed to SMTP, retried, confirmed or given up on (a dead letter).

use super::{Cols, Pool, Result, Store, Tx, time_col};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub message_id: String,
    pub to_addr: String,
    /// A copy recipient (also in the mail's `Cc` header).
    pub cc_addr: Option<String>,
    pub raw: Vec<u8>,
    pub attempts: i64,
    /// A send was in flight when the daemon died: it may or may not have reached the server.
    pub unconfirmed: bool,
}

/// A mail whose sending failed: given up on (`dead`) or queued for a retry.
#[derive(Debug, Clone)]
pub struct OutboxFailure {
    pub id: i64,
    pub to_addr: String,
    pub subject: String,
    /// Empty when none was recorded.
    pub last_error: String,
    /// Given up on; otherwise waiting for its retry.
    pub dead: bool,
}

/// Which outbox rows `shenbao outbox list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFilter {
    /// Given up on (`dead`): what `shenbao outbox retry` is for.
    Dead,
    /// Not sent yet: queued (new or waiting for a retry), being sent, or being confirmed.
    Queued,
    Sent,
    All,
}

/// An outbox row as staff see it (without the rendered bytes).
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    pub kind: String,
    pub to_addr: String,
    pub subject: String,
    /// queued | sending | unconfirmed | sent | dead
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What [`Store::outbox_retry`] did; each carries the row as it was before.
#[derive(Debug, Clone)]
pub enum Retry {
    /// Back in the queue, due now, attempts reset.
    Requeued(OutboxEntry),
    /// Queued and never tried: nothing to do.
    AlreadyQueued(OutboxEntry),
    /// Sent already: not sent twice.
    AlreadySent(OutboxEntry),
    /// Being handed to SMTP, or an interrupted send waiting for its copy: not touched.
    InFlight(OutboxEntry),
    /// No such id.
    Unknown,
}

/// The query behind [`OutboxEntry`], completed by a `WHERE …`/`ORDER BY …` literal.
macro_rules! outbox_entry_sql {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, to_addr, subject, status, attempts, next_attempt_at, last_error, created_at, sent_at FROM outbox ",
            $tail
        )
    };
}

impl Store {
    /// Queued mails whose time has come, oldest first.
    pub async fn due_outbox(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxRow>> {
        self.due_outbox_among(now, limit, None, None).await
    }

    /// [`Store::due_outbox`], only among the ids in `only` when given (what a command queued
    /// and now sends at once, leaving the rest to the daemon). With `from` (several daemons,
    /// perhaps with their own mailboxes, share the outbox), not the mail written in the name
    /// of another From that a live daemon sends in (its liveness lease notes it): that one
    /// sends it, with the SMTP login that matches and the copy landing in its mailbox. Mail
    /// whose From no live daemon sends in (a changed `smtp.from_address`, a daemon gone) is
    /// anyone's, so nothing waits forever.
    pub async fn due_outbox_among(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        only: Option<&[i64]>,
        from: Option<&str>,
    ) -> Result<Vec<OutboxRow>> {
        // Leases are judged by the wall clock, as the daemons judge them (crate::duty).
        let wall = db_time(Utc::now());
        let Some(ids) = only else {
            return Ok(on_pool!(self, |p| {
                sqlx::query(
                "SELECT id, kind, message_id, to_addr, raw, attempts, status, cc_addr FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status IN ('queued', 'unconfirmed') AND next_attempt_at <= $1 AND (CAST($3 AS TEXT) IS NULL OR from_addr IS NULL OR from_addr = $3 OR from_addr NOT IN (SELECT note FROM leases WHERE name LIKE 'daemon:%' AND note IS NOT NULL AND expires_at >= $4)) ORDER BY id LIMIT $2) ORDER BY id",
            )
            .bind(db_time(now))
            .bind(limit)
            .bind(from)
            .bind(&wall)
            .fetch_all(p)
            .await?
            .iter()
            .map(outbox_row)
            .collect()
            }));
        };
        // The id list is one parameter whatever its length: each backend reads it its own way.
        Ok(match &self.pool {
            Pool::Sqlite(p) => {
                let ids = serde_json::Value::from(ids.to_vec()).to_string();
                // SQLite only: PostgreSQL binds the ids as one BIGINT[] and asks `id = ANY($3)` (the arm below).
                sqlx::query(
                    "SELECT id, kind, message_id, to_addr, raw, attempts, status, cc_addr FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status IN ('queued', 'unconfirmed') AND next_attempt_at <= $1 AND id IN (SELECT value FROM json_each($3)) AND (CAST($4 AS TEXT) IS NULL OR from_addr IS NULL OR from_addr = $4 OR from_addr NOT IN (SELECT note FROM leases WHERE name LIKE 'daemon:%' AND note IS NOT NULL AND expires_at >= $5)) ORDER BY id LIMIT $2) ORDER BY id",
                )
                .bind(db_time(now))
                .bind(limit)
                .bind(ids)
                .bind(from)
                .bind(&wall)
                .fetch_all(p)
                .await?
                .iter()
                .map(outbox_row)
                .collect()
            }
            Pool::Postgres(p) => sqlx::query(
                "SELECT id, kind, message_id, to_addr, raw, attempts, status, cc_addr FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status IN ('queued', 'unconfirmed') AND next_attempt_at <= $1 AND id = ANY($3) AND (CAST($4 AS TEXT) IS NULL OR from_addr IS NULL OR from_addr = $4 OR from_addr NOT IN (SELECT note FROM leases WHERE name LIKE 'daemon:%' AND note IS NOT NULL AND expires_at >= $5)) ORDER BY id LIMIT $2) ORDER BY id",
            )
            .bind(db_time(now))
            .bind(limit)
            .bind(ids.to_vec())
            .bind(from)
            .bind(&wall)
            .fetch_all(p)
            .await?
            .iter()
            .map(outbox_row)
            .collect(),
        })
    }

    /// What was sent after `since`: (when, recipients besides the intake copy), for the
    /// account's sending caps ([`crate::send::limit`]).
    pub async fn sent_since(&self, since: DateTime<Utc>) -> Result<Vec<(DateTime<Utc>, u32)>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT sent_at, cc_addr IS NOT NULL FROM outbox WHERE status = 'sent' AND sent_at > $1",
        )
        .bind(db_time(since))
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| (time_col(r, 0), 1 + u32::from(r.col::<bool>(1))))
        .collect()
        }))
    }

    /// Mails waiting to be sent, in the order they will go: (outbox id, kind, recipients
    /// besides the intake copy, the deadline of a reminder).
    pub async fn waiting_outbox(&self) -> Result<Vec<(i64, String, u32, Option<DateTime<Utc>>)>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT o.id, o.kind, o.cc_addr IS NOT NULL, l.deadline FROM outbox o
             LEFT JOIN ledger l ON l.outbox_id = o.id
             WHERE o.status IN ('queued', 'unconfirmed') ORDER BY o.next_attempt_at, o.id",
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            (
                r.col(0),
                r.col(1),
                1 + u32::from(r.col::<bool>(2)),
                r.col::<Option<String>>(3)
                    .as_deref()
                    .and_then(crate::store::parse_db_time),
            )
        })
        .collect()))
    }

    /// Moves every queued mail due before `at` to `at` (the sending caps are reached); not an
    /// attempt.
    pub async fn outbox_postpone_due(&self, at: DateTime<Utc>) -> Result<u64> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE status = 'queued' AND next_attempt_at < $1",
        )
        .bind(db_time(at))
        .execute(p)
        .await?
        .rows_affected()
        }))
    }

    /// Answers to `message` waiting in the outbox (not yet handed to SMTP).
    pub async fn queued_answers(&self, message: i64) -> Result<usize> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE related_message = $1 AND status = 'queued'",
        )
        .bind(message)
        .fetch_one(p)
        .await?);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The earliest time a queued mail is due, to sleep until then.
    pub async fn next_outbox_due(&self) -> Result<Option<DateTime<Utc>>> {
        self.next_outbox_due_from(None).await
    }

    /// [`Store::next_outbox_due`] among the mail written in the name of `from` when given.
    pub async fn next_outbox_due_from(&self, from: Option<&str>) -> Result<Option<DateTime<Utc>>> {
        let wall = db_time(Utc::now());
        let due: Option<String> = on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE status IN ('queued', 'unconfirmed') AND (CAST($1 AS TEXT) IS NULL OR from_addr IS NULL OR from_addr = $1 OR from_addr NOT IN (SELECT note FROM leases WHERE name LIKE 'daemon:%' AND note IS NOT NULL AND expires_at >= $2))",
        )
        .bind(from)
        .bind(&wall)
        .fetch_one(p)
        .await?
        });
        Ok(due.as_deref().and_then(crate::store::parse_db_time))
    }

    /// Claims the mails `ids` that are still waiting (queued, or unconfirmed) for `holder`:
    /// marks them `sending` in its name and returns the ids it got. Of several daemons asking
    /// for the same mail, one gets it: on PostgreSQL the rows are locked `FOR UPDATE SKIP
    /// LOCKED` (a row another daemon is claiming is skipped, not waited for), on SQLite the
    /// one writer at a time does the same. The attempt is counted when the mail is really
    /// handed to SMTP ([`Store::outbox_attempting`]); a crash in between is known by the
    /// `sending` status and the claimer's name.
    pub async fn outbox_claim(
        &self,
        seen: &[(i64, bool)],
        holder: Option<&str>,
    ) -> Result<Vec<i64>> {
        if seen.is_empty() {
            return Ok(Vec::new());
        }
        // Claimed only in the state the sender read it in (queued, or unconfirmed): a mail that
        // became unconfirmed since (a dead daemon's send, recovered by another) must have its
        // copy looked for first, so it is left for the next read, which sees it as it is.
        let queued: Vec<i64> = seen.iter().filter(|(_, u)| !u).map(|(id, _)| *id).collect();
        let unconfirmed: Vec<i64> = seen.iter().filter(|(_, u)| *u).map(|(id, _)| *id).collect();
        let mut got: Vec<i64> = match &self.pool {
            Pool::Sqlite(p) => {
                let json = |ids: &[i64]| serde_json::Value::from(ids.to_vec()).to_string();
                // SQLite only: PostgreSQL locks the rows FOR UPDATE SKIP LOCKED and binds BIGINT[]s (the arm below).
                sqlx::query_scalar(
                    "UPDATE outbox SET status = 'sending', claimed_by = $2 WHERE (status = 'queued' AND id IN (SELECT value FROM json_each($1))) OR (status = 'unconfirmed' AND id IN (SELECT value FROM json_each($3))) RETURNING id",
                )
                .bind(json(&queued))
                .bind(holder)
                .bind(json(&unconfirmed))
                .fetch_all(p)
                .await?
            }
            Pool::Postgres(p) => sqlx::query_scalar(
                "UPDATE outbox SET status = 'sending', claimed_by = $2 WHERE id IN (SELECT id FROM outbox WHERE (status = 'queued' AND id = ANY($1)) OR (status = 'unconfirmed' AND id = ANY($3)) FOR UPDATE SKIP LOCKED) RETURNING id",
            )
            .bind(queued)
            .bind(holder)
            .bind(unconfirmed)
            .fetch_all(p)
            .await?,
        };
        got.sort_unstable();
        Ok(got)
    }

    /// Counts an attempt for each of `ids` (claimed, about to be handed to SMTP).
    pub async fn outbox_attempting(&self, ids: &[i64]) -> Result<()> {
        self.update_each(
            "UPDATE outbox SET attempts = attempts + 1 WHERE id = $1 AND status = 'sending'",
            ids,
            None,
        )
        .await
    }

    /// An interrupted send (claimed while `unconfirmed`) whose copy has arrived: it went
    /// through, so it is sent; not counted as an attempt.
    pub async fn outbox_confirmed(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, last_error = NULL WHERE id = $2 AND status = 'sending'",
        )
        .bind(db_time(now))
        .bind(id)
        .execute(p)
        .await?
        .rows_affected()
        });
        Ok(())
    }

    /// An interrupted send (claimed while `unconfirmed`) whose copy could not be looked for
    /// now: unconfirmed again, looked at again at `at`.
    pub async fn outbox_unclaim_unconfirmed(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
            "UPDATE outbox SET status = 'unconfirmed', claimed_by = NULL, next_attempt_at = $1 WHERE id = $2 AND status = 'sending'",
        )
        .bind(db_time(at))
        .bind(id)
        .execute(p)
        .await?
        .rows_affected()
        });
        Ok(())
    }

    /// Who has mails in flight (`sending`): each claiming daemon once, `None` for sends
    /// claimed by no daemon (a command such as `digest --now`, or rows from before claims).
    pub async fn outbox_senders(&self) -> Result<Vec<Option<String>>> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT DISTINCT claimed_by FROM outbox WHERE status = 'sending'"
        )
        .fetch_all(p)
        .await?))
    }

    /// The sends `holder` had in flight when it died (`None`: those claimed by no daemon)
    /// become `unconfirmed`, due after `grace`: time for the copy to arrive if the send went
    /// through. Returns how many.
    pub async fn outbox_recover_from(
        &self,
        holder: Option<&str>,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<u64> {
        let due = now + chrono::Duration::from_std(grace).unwrap_or_default();
        Ok(on_pool!(self, |p| {
            match holder {
            Some(h) => sqlx::query(
                "UPDATE outbox SET status = 'unconfirmed', claimed_by = NULL, next_attempt_at = $1 WHERE status = 'sending' AND claimed_by = $2",
            )
            .bind(db_time(due))
            .bind(h)
            .execute(p)
            .await?
            .rows_affected(),
            None => sqlx::query(
                "UPDATE outbox SET status = 'unconfirmed', next_attempt_at = $1 WHERE status = 'sending' AND claimed_by IS NULL",
            )
            .bind(db_time(due))
            .execute(p)
            .await?
            .rows_affected(),
        }
        }))
    }

    /// Mails marked in flight but not tried after all (the server went away before their
    /// turn): queued again, the attempt not counted.
    pub async fn outbox_not_tried(&self, ids: &[i64]) -> Result<()> {
        self.update_each(
            "UPDATE outbox SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE id = $1 AND status = 'sending'",
            ids,
            None,
        )
        .await
    }

    /// Mails the server accepted (one transaction).
    pub async fn outbox_sent_many(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        self.update_each(
            "UPDATE outbox SET status = 'sent', sent_at = $1, last_error = NULL WHERE id = $2",
            ids,
            Some(db_time(now)),
        )
        .await
    }

    /// Runs `sql` (`… WHERE id = $1`, or `$2` after an optional first parameter `$1`) for every
    /// id, in one transaction: as one statement per few hundred ids (`id IN (…)`), since each
    /// statement is a round trip to the database (issue 16's profile: moving and sending a
    /// backlog cost one per mail).
    pub(super) async fn update_each(
        &self,
        sql: &'static str,
        ids: &[i64],
        first: Option<String>,
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let k = if first.is_some() { 2 } else { 1 };
        let one = format!("id = ${k}");
        debug_assert!(sql.contains(&one), "{sql}");
        let mut tx = self.begin_write().await?;
        for chunk in ids.chunks(500) {
            let list = super::params(k..k + chunk.len());
            let many = sql.replacen(&one, &format!("id IN ({list})"), 1);
            on_conn!(tx.conn(), |c| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(many));
                if let Some(v) = &first {
                    q = q.bind(v.clone());
                }
                for &id in chunk {
                    q = q.bind(id);
                }
                q.execute(c).await?.rows_affected()
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// An unconfirmed send whose copy could not be looked for now: look again at `at`.
    pub async fn outbox_postpone(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE id = $2 AND status = 'unconfirmed'",
        )
        .bind(db_time(at))
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(())
    }

    /// A failed attempt: retry at `retry_at`, or give up (`None`: dead letter).
    pub async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        on_pool!(self, |p| {
            match retry_at {
            Some(t) => sqlx::query("UPDATE outbox SET status = 'queued', last_error = $1, next_attempt_at = $2 WHERE id = $3")
                .bind(error)
                .bind(db_time(t))
                .bind(id)
                .execute(p)
                .await?
                .rows_affected(),
            None => sqlx::query("UPDATE outbox SET last_error = $1, status = 'dead' WHERE id = $2")
                .bind(error)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected(),
        }
        });
        Ok(())
    }

    /// The outbox for `shenbao outbox list`, oldest first.
    pub async fn outbox_list(&self, filter: OutboxFilter) -> Result<Vec<OutboxEntry>> {
        let sql = match filter {
            OutboxFilter::Dead => outbox_entry_sql!("WHERE status = 'dead' ORDER BY id"),
            OutboxFilter::Queued => outbox_entry_sql!(
                "WHERE status IN ('queued', 'sending', 'unconfirmed') ORDER BY id"
            ),
            OutboxFilter::Sent => outbox_entry_sql!("WHERE status = 'sent' ORDER BY id"),
            OutboxFilter::All => outbox_entry_sql!("ORDER BY id"),
        };
        Ok(on_pool!(self, |p| sqlx::query(sql)
            .fetch_all(p)
            .await?
            .iter()
            .map(outbox_entry)
            .collect()))
    }

    /// Every mail about `branch` (a roster name), newest first: those queued for it
    /// (acknowledgements, reminders, results) and those answering one of its versions (a
    /// version assigned to it later by staff), in the store's campaign. For the board's
    /// 支部详情.
    pub async fn outbox_for_branch(&self, branch: &str) -> Result<Vec<OutboxEntry>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(outbox_entry_sql!(
            "WHERE campaign = $2 AND (branch = $1 OR related_message IN (SELECT message_id FROM submissions WHERE branch = $1))
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(branch)
        .bind(self.campaign())
        .fetch_all(p)
        .await?
        .iter()
        .map(outbox_entry)
        .collect()
        }))
    }

    /// One outbox row, for messages about it.
    pub async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>> {
        Ok(on_pool!(self, |p| sqlx::query(outbox_entry_sql!(
            "WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(outbox_entry)))
    }

    /// Puts a dead letter (or a mail waiting for its next retry) back in the queue: due now,
    /// attempts back to 0 so the backoff and `smtp.max_attempts` start over. A mail already
    /// sent, being sent, or whose interrupted send is still being confirmed is left alone:
    /// sending it again could deliver it twice.
    pub async fn outbox_retry(&self, id: i64, now: DateTime<Utc>) -> Result<Retry> {
        let mut tx = self.begin_write().await?;
        let before = on_conn!(tx.conn(), |c| sqlx::query(outbox_entry_sql!(
            "WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(outbox_entry));
        let Some(before) = before else {
            tx.commit().await?;
            return Ok(Retry::Unknown);
        };
        let verdict = match before.status.as_str() {
            "dead" | "queued" => {
                if before.status == "queued" && before.attempts == 0 {
                    // Never tried yet: it is due already (or scheduled on purpose); nothing to reset.
                    Retry::AlreadyQueued(before)
                } else {
                    on_conn!(tx.conn(), |c| {
                        sqlx::query(
                        "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = $1 WHERE id = $2 AND status IN ('dead', 'queued')",
                    )
                    .bind(db_time(now))
                    .bind(id)
                    .execute(c)
                    .await?
                    .rows_affected()
                    });
                    Retry::Requeued(before)
                }
            }
            "sent" => Retry::AlreadySent(before),
            _ => Retry::InFlight(before),
        };
        tx.commit().await?;
        Ok(verdict)
    }

    /// [`Store::outbox_retry`] for every dead letter at once; returns them as they were.
    pub async fn outbox_retry_dead(&self, now: DateTime<Utc>) -> Result<Vec<OutboxEntry>> {
        let mut tx = self.begin_write().await?;
        let dead = on_conn!(tx.conn(), |c| {
            let dead = sqlx::query(outbox_entry_sql!("WHERE status = 'dead' ORDER BY id"))
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(outbox_entry)
                .collect();
            sqlx::query(
                "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = $1 WHERE status = 'dead'",
            )
            .bind(db_time(now))
            .execute(&mut *c)
            .await?;
            dead
        });
        tx.commit().await?;
        Ok(dead)
    }

    /// How many outbox mails have each status, for `status`.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT status, COUNT(*) FROM outbox GROUP BY 1 ORDER BY 1"
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| (r.col(0), r.col(1)))
        .collect()))
    }

    /// The dead letters: (outbox id, recipient, subject, last error), oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<(i64, String, String, String)>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT id, to_addr, subject, COALESCE(last_error, '') FROM outbox WHERE status = 'dead' ORDER BY id"
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| (r.col(0), r.col(1), r.col(2), r.col(3)))
        .collect()
        }))
    }

    /// Mails given up on or waiting for a retry after a failed attempt, oldest first, for
    /// the digest.
    pub async fn outbox_failures(&self) -> Result<Vec<OutboxFailure>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT id, to_addr, subject, COALESCE(last_error, ''), status FROM outbox
         WHERE status = 'dead' OR (status = 'queued' AND attempts > 0) ORDER BY id",
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| OutboxFailure {
            id: r.col(0),
            to_addr: r.col(1),
            subject: r.col(2),
            last_error: r.col(3),
            dead: r.col::<String>(4) == "dead",
        })
        .collect()))
    }
}

/// A row of the due-mail query (`id, kind, message_id, to_addr, raw, attempts, status, cc_addr`).
fn outbox_row(r: &impl Cols) -> OutboxRow {
    OutboxRow {
        id: r.col(0),
        kind: r.col(1),
        message_id: r.col(2),
        to_addr: r.col(3),
        raw: r.col(4),
        attempts: r.col(5),
        unconfirmed: r.col::<String>(6) == "unconfirmed",
        cc_addr: r.col(7),
    }
}

fn outbox_entry(r: &impl Cols) -> OutboxEntry {
    let time = |i: usize| {
        r.col::<Option<String>>(i)
            .as_deref()
            .and_then(crate::store::parse_db_time)
    };
    OutboxEntry {
        id: r.col(0),
        kind: r.col(1),
        to_addr: r.col(2),
        subject: r.col(3),
        status: r.col(4),
        attempts: r.col(5),
        next_attempt_at: time(6),
        last_error: r.col(7),
        created_at: time(8),
        sent_at: time(9),
    }
}

/// Puts a rendered mail into the durable outbox inside the caller's transaction (the one that
/// records the decision to send it), with its copy recipient, the message it answers, the
/// branch it is about and the campaign it belongs to (the answered message's; a reminder's,
/// digest's or result's own). The one way anything enters the outbox; a second enqueue of the same
/// Message-ID is ignored. Returns the row id: the new row's, or the one already queued under
/// that Message-ID.
pub async fn enqueue(
    tx: &mut Tx,
    mail: &crate::notify::compose::Outgoing,
    related_message: Option<i64>,
    branch: Option<&str>,
    campaign: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let from = from_address(&mail.raw);
    Ok(on_conn!(tx.conn(), |c| {
        let new: Option<i64> = sqlx::query_scalar(
            "INSERT INTO outbox (kind, message_id, related_message, to_addr, subject, raw, next_attempt_at, created_at, cc_addr, branch, from_addr, campaign) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(mail.kind.as_str())
        .bind(&mail.message_id)
        .bind(related_message)
        .bind(&mail.to)
        .bind(&mail.subject)
        .bind(&mail.raw)
        .bind(db_time(now))
        .bind(&mail.cc)
        .bind(branch)
        .bind(&from)
        .bind(campaign)
        .fetch_optional(&mut *c)
        .await?;
        match new {
            Some(id) => id,
            None => {
                sqlx::query_scalar::<_, i64>("SELECT id FROM outbox WHERE message_id = $1")
                    .bind(&mail.message_id)
                    .fetch_one(&mut *c)
                    .await?
            }
        }
    }))
}

/// The address in the `From` header of a mail we wrote (lower case), read from the header
/// only: whose outbox mail it is ([`Store::due_outbox_among`]).
pub fn from_address(raw: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| {
            m.from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_lowercase)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::compose::{OutboxKind, Outgoing};
    use crate::store::submissions::{NewVersion, insert_version};

    fn mail(kind: OutboxKind, id: &str, subject: &str) -> Outgoing {
        Outgoing {
            kind,
            message_id: id.to_string(),
            to: "a@example.test".to_string(),
            subject: subject.to_string(),
            raw: b"raw".to_vec(),
            cc: None,
        }
    }

    fn version(branch: Option<&str>, message: i64, now: DateTime<Utc>) -> NewVersion {
        NewVersion {
            kind: "application",
            branch_key: branch.map_or("?某支部".to_string(), str::to_string),
            branch: branch.map(str::to_string),
            college: None,
            branch_text: None,
            match_kind: "exact",
            match_score: 1.0,
            match_reason: String::new(),
            version: 1,
            message_id: message,
            sender: "a@example.test".to_string(),
            received_at: now,
            late: false,
            problems: "[]".to_string(),
            created_at: now,
            fields: None,
            fields_source: None,
            form_fields: None,
            summary_fields: None,
            problem_details: "[]".to_string(),
            sender_changed: false,
            suggested_branch: None,
            content_key: String::new(),
            campaign: "default".to_string(),
        }
    }

    /// A second enqueue of the same Message-ID queues nothing and names the row already
    /// queued (`ON CONFLICT DO NOTHING RETURNING id` returns no row then). On both backends.
    #[tokio::test]
    async fn enqueuing_a_message_id_twice_names_the_first_row() {
        for store in crate::store::test_stores("outbox_twice").await {
            let backend = store.backend();
            let now = Utc::now();
            let mut tx = store.begin_write().await.expect("tx");
            let first = enqueue(
                &mut tx,
                &mail(OutboxKind::Ack, "same", "一"),
                None,
                None,
                "default",
                now,
            )
            .await
            .expect("first");
            let other = enqueue(
                &mut tx,
                &mail(OutboxKind::Ack, "other", "二"),
                None,
                None,
                "default",
                now,
            )
            .await
            .expect("other");
            let again = enqueue(
                &mut tx,
                &mail(OutboxKind::Ack, "same", "三"),
                None,
                None,
                "default",
                now,
            )
            .await
            .expect("again");
            tx.commit().await.expect("commit");
            assert_ne!(first, other, "{backend}");
            assert_eq!(again, first, "{backend}");
            let subjects: Vec<String> = store
                .outbox_list(OutboxFilter::All)
                .await
                .expect("list")
                .into_iter()
                .map(|e| e.subject)
                .collect();
            assert_eq!(subjects, ["一", "二"], "{backend}");
        }
    }

    fn status_of(list: &[OutboxEntry], id: i64) -> (String, i64, Option<DateTime<Utc>>) {
        let e = list.iter().find(|e| e.id == id).expect("row in the list");
        (e.status.clone(), e.attempts, e.next_attempt_at)
    }

    /// A mail's way through the outbox on both backends: queued and due at its time (also
    /// among given ids), in flight, not tried, sent (and counted for the caps), failed and
    /// retried later, given up on, put back by `outbox retry` (one or all), interrupted by a
    /// crash and postponed; each step read back through the functions staff and the sender
    /// use.
    #[tokio::test]
    async fn a_mail_goes_through_the_queue() {
        for store in crate::store::test_stores("outbox_queue").await {
            let backend = store.backend();
            let t0 = DateTime::parse_from_rfc3339("2025-09-26T08:00:00+08:00")
                .expect("time")
                .with_timezone(&Utc);
            let at = |m: i64| t0 + chrono::Duration::minutes(m);
            let answered =
                super::super::submissions::testing::message(&store, 1, "processed", None).await;
            let mut with_cc = mail(OutboxKind::Ack, "a", "回执");
            with_cc.cc = Some("copy@example.test".to_string());
            with_cc.raw = b"the whole mail".to_vec();
            let mut tx = store.begin_write().await.expect("tx");
            let a = enqueue(
                &mut tx,
                &with_cc,
                Some(answered),
                Some("海洋支部"),
                "2025-autumn",
                t0,
            )
            .await
            .expect("a");
            let b = enqueue(
                &mut tx,
                &mail(OutboxKind::Reminder, "b", "提醒"),
                None,
                Some("海洋支部"),
                "default",
                t0,
            )
            .await
            .expect("b");
            let c = enqueue(
                &mut tx,
                &mail(OutboxKind::Digest, "c", "摘要"),
                None,
                None,
                "2026-spring",
                t0,
            )
            .await
            .expect("c");
            let deadline = at(60 * 24);
            let reminder = crate::store::ledger::LedgerEntry {
                key: "remind:r:b",
                kind: "reminder",
                rule: "r",
                recipient: "a@example.test",
                branch: Some("海洋支部"),
                period_end: None,
                deadline: Some(deadline),
                offset_secs: Some(86_400),
                skipped: None,
                campaign: "default",
            };
            crate::store::ledger::record(&mut tx, &reminder, t0)
                .await
                .expect("ledger");
            crate::store::ledger::set_outbox(&mut tx, "default", "remind:r:b", b)
                .await
                .expect("ledger outbox");
            tx.commit().await.expect("commit");

            // Queued: due from its time on, oldest first.
            assert!(store.due_outbox(at(-1), 10).await.expect("due").is_empty());
            let due = store.due_outbox(t0, 10).await.expect("due");
            let ids: Vec<i64> = due.iter().map(|r| r.id).collect();
            assert_eq!(ids, [a, b, c], "{backend}");
            for (id, campaign) in [(a, "2025-autumn"), (b, "default"), (c, "2026-spring")] {
                assert_eq!(
                    crate::store::test_campaigns(&store, "outbox", &format!("id = {id}")).await,
                    [campaign],
                    "{backend}: the campaign the mail is for"
                );
            }
            assert_eq!(due[0].kind, "ack");
            assert_eq!(due[0].message_id, "a");
            assert_eq!(due[0].to_addr, "a@example.test");
            assert_eq!(due[0].cc_addr.as_deref(), Some("copy@example.test"));
            assert_eq!(due[0].raw, b"the whole mail");
            assert_eq!((due[0].attempts, due[0].unconfirmed), (0, false));
            assert_eq!(due[1].cc_addr, None);
            let first: Vec<i64> = store
                .due_outbox(t0, 1)
                .await
                .expect("due")
                .iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(first, [a], "{backend}: the limit");
            let among: Vec<i64> = store
                .due_outbox_among(t0, 10, Some(&[c, b, 999]), None)
                .await
                .expect("among")
                .iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(among, [b, c], "{backend}: among ids");
            assert!(
                store
                    .due_outbox_among(t0, 10, Some(&[]), None)
                    .await
                    .expect("among none")
                    .is_empty(),
                "{backend}"
            );
            assert!(
                store
                    .due_outbox_among(at(-1), 10, Some(&[a]), None)
                    .await
                    .expect("among, not due")
                    .is_empty(),
                "{backend}"
            );
            assert_eq!(store.next_outbox_due().await.expect("next"), Some(t0));
            let waiting = store.waiting_outbox().await.expect("waiting");
            assert_eq!(
                waiting,
                [
                    (a, "ack".to_string(), 2, None),
                    (b, "reminder".to_string(), 1, Some(deadline)),
                    (c, "digest".to_string(), 1, None),
                ],
                "{backend}"
            );
            assert_eq!(store.queued_answers(answered).await.expect("answers"), 1);
            assert_eq!(
                store
                    .outbox_entry(a)
                    .await
                    .expect("entry")
                    .map(|e| e.subject),
                Some("回执".to_string())
            );
            assert!(store.outbox_entry(999).await.expect("none").is_none());

            // In flight: an attempt each, no longer due; one not tried after all.
            assert_eq!(
                store
                    .outbox_claim(&[(a, false), (b, false), (c, false)], None)
                    .await
                    .expect("claim"),
                [a, b, c]
            );
            store.outbox_attempting(&[a, b, c]).await.expect("sending");
            assert!(store.due_outbox(t0, 10).await.expect("due").is_empty());
            assert_eq!(store.next_outbox_due().await.expect("next"), None);
            assert_eq!(store.queued_answers(answered).await.expect("answers"), 0);
            store.outbox_not_tried(&[c]).await.expect("not tried");
            let all = store.outbox_list(OutboxFilter::All).await.expect("all");
            assert_eq!(status_of(&all, a), ("sending".into(), 1, Some(t0)));
            assert_eq!(status_of(&all, c), ("queued".into(), 0, Some(t0)));
            // Not in flight: not tried is a no-op, and the count never goes below 0.
            store.outbox_not_tried(&[c]).await.expect("again");
            let all = store.outbox_list(OutboxFilter::All).await.expect("all");
            assert_eq!(status_of(&all, c), ("queued".into(), 0, Some(t0)));

            // Sent: counted for the caps with its copy recipient.
            store.outbox_sent_many(&[a], at(1)).await.expect("sent");
            assert_eq!(store.sent_since(t0).await.expect("since"), [(at(1), 2)]);
            assert!(store.sent_since(at(1)).await.expect("since").is_empty());
            let sent = store.outbox_entry(a).await.expect("a").expect("row");
            assert_eq!((sent.status.as_str(), sent.sent_at), ("sent", Some(at(1))));

            // Failed: retried later, then given up on.
            store
                .outbox_failed(b, "421 稍后再试", Some(at(10)))
                .await
                .expect("failed");
            let failures = store.outbox_failures().await.expect("failures");
            assert_eq!(failures.len(), 1, "{backend}");
            assert_eq!((failures[0].id, failures[0].dead), (b, false));
            assert_eq!(failures[0].last_error, "421 稍后再试");
            assert_eq!(failures[0].subject, "提醒");
            let all = store.outbox_list(OutboxFilter::All).await.expect("all");
            assert_eq!(status_of(&all, b), ("queued".into(), 1, Some(at(10))));
            store
                .outbox_failed(b, "550 mailbox unavailable", None)
                .await
                .expect("dead");
            assert_eq!(
                store.dead_letters().await.expect("dead"),
                [(
                    b,
                    "a@example.test".to_string(),
                    "提醒".to_string(),
                    "550 mailbox unavailable".to_string()
                )]
            );
            let failures = store.outbox_failures().await.expect("failures");
            assert_eq!(failures.len(), 1, "{backend}");
            assert!(failures[0].dead);

            // The lists `outbox list` shows, and the counts of `status`.
            let ids_of = |l: Vec<OutboxEntry>| l.iter().map(|e| e.id).collect::<Vec<_>>();
            assert_eq!(
                ids_of(store.outbox_list(OutboxFilter::Dead).await.expect("l")),
                [b]
            );
            assert_eq!(
                ids_of(store.outbox_list(OutboxFilter::Queued).await.expect("l")),
                [c]
            );
            assert_eq!(
                ids_of(store.outbox_list(OutboxFilter::Sent).await.expect("l")),
                [a]
            );
            assert_eq!(
                ids_of(store.outbox_list(OutboxFilter::All).await.expect("l")),
                [a, b, c]
            );
            assert_eq!(
                store.outbox_counts().await.expect("counts"),
                [
                    ("dead".to_string(), 1),
                    ("queued".to_string(), 1),
                    ("sent".to_string(), 1)
                ],
                "{backend}"
            );
            let dead = store.outbox_entry(b).await.expect("b").expect("row");
            assert_eq!(dead.last_error.as_deref(), Some("550 mailbox unavailable"));
            assert_eq!(dead.created_at, Some(t0));
            assert_eq!(dead.kind, "reminder");

            // `outbox retry`: what is left alone, and a dead letter due again from scratch.
            assert!(
                matches!(store.outbox_retry(c, at(20)).await.expect("retry"), Retry::AlreadyQueued(e) if e.id == c)
            );
            assert!(
                matches!(store.outbox_retry(a, at(20)).await.expect("retry"), Retry::AlreadySent(e) if e.id == a)
            );
            assert!(matches!(
                store.outbox_retry(999, at(20)).await.expect("retry"),
                Retry::Unknown
            ));
            match store.outbox_retry(b, at(20)).await.expect("retry") {
                Retry::Requeued(before) => {
                    assert_eq!((before.status.as_str(), before.attempts), ("dead", 1))
                }
                other => panic!("{backend}: {other:?}"),
            }
            let all = store.outbox_list(OutboxFilter::All).await.expect("all");
            assert_eq!(status_of(&all, b), ("queued".into(), 0, Some(at(20))));
            // All dead letters at once.
            store
                .outbox_failed(b, "550 again", None)
                .await
                .expect("dead");
            store.outbox_failed(c, "550 too", None).await.expect("dead");
            assert_eq!(
                ids_of(store.outbox_retry_dead(at(30)).await.expect("retry dead")),
                [b, c]
            );
            assert!(store.dead_letters().await.expect("dead").is_empty());
            let all = store.outbox_list(OutboxFilter::All).await.expect("all");
            assert_eq!(status_of(&all, b), ("queued".into(), 0, Some(at(30))));
            assert_eq!(status_of(&all, c), ("queued".into(), 0, Some(at(30))));

            // A crash during the hand-over: unconfirmed, due after the grace, not retried by hand.
            assert_eq!(
                store
                    .outbox_claim(&[(c, false)], None)
                    .await
                    .expect("claim"),
                [c]
            );
            store.outbox_attempting(&[c]).await.expect("sending");
            assert!(
                matches!(store.outbox_retry(c, at(40)).await.expect("retry"), Retry::InFlight(e) if e.id == c)
            );
            assert_eq!(
                store
                    .outbox_recover_from(None, at(40), Duration::from_secs(600))
                    .await
                    .expect("recover"),
                1
            );
            let due = store.due_outbox(at(50), 10).await.expect("due");
            let due: Vec<(i64, bool)> = due.iter().map(|r| (r.id, r.unconfirmed)).collect();
            assert_eq!(due, [(b, false), (c, true)], "{backend}");
            // Postponed: only an unconfirmed send is.
            store.outbox_postpone(c, at(70)).await.expect("postpone");
            store
                .outbox_postpone(b, at(70))
                .await
                .expect("postpone queued");
            let all = store.outbox_list(OutboxFilter::All).await.expect("all");
            assert_eq!(status_of(&all, c), ("unconfirmed".into(), 1, Some(at(70))));
            assert_eq!(status_of(&all, b), ("queued".into(), 0, Some(at(30))));
            // The caps reached: queued mails due before then move, unconfirmed ones do not.
            assert_eq!(
                store
                    .outbox_postpone_due(at(60))
                    .await
                    .expect("postpone due"),
                1
            );
            let all = store.outbox_list(OutboxFilter::All).await.expect("all");
            assert_eq!(status_of(&all, b), ("queued".into(), 0, Some(at(60))));
            assert_eq!(store.outbox_postpone_due(at(60)).await.expect("again"), 0);
            assert_eq!(store.next_outbox_due().await.expect("next"), Some(at(60)));
        }
    }

    /// Two daemons claim the same due mails at once: each mail goes to exactly one of them;
    /// a daemon that died has its sends in flight recovered (by name), a live one's are left;
    /// an interrupted send is confirmed or handed back only while claimed. On both backends.
    #[tokio::test]
    async fn claims_give_each_mail_to_one_daemon() {
        let queued = |ids: &[i64]| ids.iter().map(|id| (*id, false)).collect::<Vec<_>>();
        for store in crate::store::test_stores("outbox_claims").await {
            let backend = store.backend();
            let t0 = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 9, 20, 1, 0, 0).unwrap();
            let mut ids = Vec::new();
            for n in 0..40 {
                let mail = crate::notify::compose::Outgoing {
                    kind: crate::notify::compose::OutboxKind::Ack,
                    message_id: format!("claim{n}@x"),
                    to: "b@example.test".into(),
                    cc: None,
                    subject: "回执".into(),
                    raw: b"x".to_vec(),
                };
                let mut tx = store.begin_write().await.expect("begin");
                ids.push(
                    enqueue(&mut tx, &mail, None, None, "default", t0)
                        .await
                        .expect("enqueue"),
                );
                tx.commit().await.expect("commit");
            }
            let (a, b) = tokio::join!(
                async {
                    let mut got = Vec::new();
                    for chunk in ids.chunks(5) {
                        got.extend(
                            store
                                .outbox_claim(&queued(chunk), Some("A"))
                                .await
                                .expect("A"),
                        );
                    }
                    got
                },
                async {
                    let mut got = Vec::new();
                    for chunk in ids.chunks(5).rev() {
                        got.extend(
                            store
                                .outbox_claim(&queued(chunk), Some("B"))
                                .await
                                .expect("B"),
                        );
                    }
                    got
                }
            );
            let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
            all.sort_unstable();
            assert_eq!(all, ids, "{backend}: every mail claimed exactly once");
            assert!(
                store
                    .outbox_claim(&queued(&ids), Some("C"))
                    .await
                    .expect("C")
                    .is_empty()
            );
            let mut senders = store.outbox_senders().await.expect("senders");
            senders.sort();
            assert!(
                !senders.is_empty()
                    && senders
                        .iter()
                        .all(|h| matches!(h.as_deref(), Some("A" | "B"))),
                "{backend}: {senders:?}"
            );
            // One of them died (B, or A when B got nothing): its sends become unconfirmed,
            // the other's stay in flight.
            let (dead, got, alive) = if b.is_empty() {
                ("A", &a, "B")
            } else {
                ("B", &b, "A")
            };
            let n = store
                .outbox_recover_from(Some(dead), t0, Duration::from_secs(60))
                .await
                .expect("recover");
            assert_eq!(n as usize, got.len(), "{backend}");
            let due = store
                .due_outbox(t0 + chrono::Duration::seconds(61), 100)
                .await
                .expect("due");
            assert_eq!(due.len(), got.len(), "{backend}");
            assert!(due.iter().all(|r| r.unconfirmed));
            // Read as queued before the recovery made it unconfirmed: not claimed in that stale
            // state (its copy must be looked for first).
            assert!(
                store
                    .outbox_claim(&[(due[0].id, false)], Some(alive))
                    .await
                    .expect("stale")
                    .is_empty(),
                "{backend}"
            );
            // The other takes them over: the copy of the first arrived, the second cannot be
            // checked now.
            let take: Vec<i64> = due.iter().map(|r| r.id).take(2).collect();
            assert_eq!(take.len(), 2, "{backend}: at least two claimed by {dead}");
            assert_eq!(
                store
                    .outbox_claim(
                        &take.iter().map(|id| (*id, true)).collect::<Vec<_>>(),
                        Some(alive)
                    )
                    .await
                    .expect("claim"),
                take
            );
            store
                .outbox_confirmed(take[0], t0)
                .await
                .expect("confirmed");
            store
                .outbox_unclaim_unconfirmed(take[1], t0 + chrono::Duration::seconds(300))
                .await
                .expect("unclaim");
            let all = store.outbox_list(OutboxFilter::All).await.expect("list");
            let status = |id: i64| {
                all.iter()
                    .find(|e| e.id == id)
                    .map(|e| (e.status.clone(), e.attempts))
            };
            assert_eq!(status(take[0]), Some(("sent".into(), 0)), "{backend}");
            assert_eq!(
                status(take[1]),
                Some(("unconfirmed".into(), 0)),
                "{backend}"
            );
            // Not claimed any more: confirming it now changes nothing.
            store
                .outbox_confirmed(take[1], t0)
                .await
                .expect("confirmed");
            assert_eq!(
                store
                    .outbox_list(OutboxFilter::All)
                    .await
                    .expect("list")
                    .iter()
                    .find(|e| e.id == take[1])
                    .map(|e| e.status.clone()),
                Some("unconfirmed".into())
            );
            // Mail written in another daemon's name (its own mailbox and SMTP login) is not
            // this one's to send; mail without a From is anyone's.
            let mut own = Vec::new();
            for (n, from) in [
                (0, "A <a@example.test>"),
                (1, "B <B@Example.test>"),
                (2, ""),
            ] {
                let raw = if from.is_empty() {
                    b"Subject: x\r\n\r\nx".to_vec()
                } else {
                    format!("From: {from}\r\nSubject: x\r\n\r\nx").into_bytes()
                };
                let mail = crate::notify::compose::Outgoing {
                    kind: crate::notify::compose::OutboxKind::Ack,
                    message_id: format!("from{n}@x"),
                    to: "b@example.test".into(),
                    cc: None,
                    subject: "回执".into(),
                    raw,
                };
                let mut tx = store.begin_write().await.expect("begin");
                own.push(
                    enqueue(&mut tx, &mail, None, None, "default", t0)
                        .await
                        .expect("enqueue"),
                );
                tx.commit().await.expect("commit");
            }
            let due = |from: Option<&'static str>| {
                let store = store.clone();
                let own = own.clone();
                async move {
                    store
                        .due_outbox_among(t0, 100, Some(&own), from)
                        .await
                        .expect("due")
                        .iter()
                        .map(|r| r.id)
                        .collect::<Vec<i64>>()
                }
            };
            // No daemon sends as A or B: all three are anyone's.
            assert_eq!(due(Some("a@example.test")).await, own, "{backend}");
            // Daemons sending as A and as B are alive (their liveness leases note it).
            for (holder, from) in [("hA", "a@example.test"), ("hB", "b@example.test")] {
                let job = format!("daemon:{holder}");
                assert!(
                    store
                        .take_lease(&job, holder, Utc::now(), Duration::from_secs(60))
                        .await
                        .expect("lease")
                );
                store.note_lease(&job, holder, from).await.expect("note");
            }
            assert_eq!(
                due(Some("a@example.test")).await,
                [own[0], own[2]],
                "{backend}"
            );
            assert_eq!(
                due(Some("b@example.test")).await,
                [own[1], own[2]],
                "{backend}"
            );
            assert_eq!(due(None).await, own, "{backend}");
            assert_eq!(
                store
                    .next_outbox_due_from(Some("c@example.test"))
                    .await
                    .expect("next"),
                Some(t0),
                "{backend}: the one without a From"
            );
            // B's daemon is gone (its lease given back): its mail is anyone's again.
            store
                .release_lease("daemon:hB", "hB")
                .await
                .expect("release");
            assert_eq!(due(Some("a@example.test")).await, own, "{backend}");
        }
    }

    /// The mails about one branch by its name, on both backends (the ones answering its
    /// versions: the SQLite test below).
    #[tokio::test]
    async fn the_mails_queued_for_one_branch() {
        for store in crate::store::test_stores("outbox_branch").await {
            let backend = store.backend();
            let t0 = DateTime::parse_from_rfc3339("2025-09-26T08:00:00+08:00")
                .expect("time")
                .with_timezone(&Utc);
            let mut tx = store.begin_write().await.expect("tx");
            let mut ids = Vec::new();
            for (i, (id, branch)) in [
                ("x1", Some("海洋支部")),
                ("x2", Some("别的支部")),
                ("x3", Some("海洋支部")),
                ("x4", None),
            ]
            .into_iter()
            .enumerate()
            {
                ids.push(
                    enqueue(
                        &mut tx,
                        &mail(OutboxKind::Ack, id, id),
                        None,
                        branch,
                        "default",
                        t0 + chrono::Duration::minutes(i as i64),
                    )
                    .await
                    .expect("enqueue"),
                );
            }
            tx.commit().await.expect("commit");
            let got: Vec<i64> = store
                .outbox_for_branch("海洋支部")
                .await
                .expect("list")
                .iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(got, [ids[2], ids[0]], "{backend}: newest first");
            assert!(
                store
                    .outbox_for_branch("没有的支部")
                    .await
                    .expect("none")
                    .is_empty()
            );
        }
    }

    /// A branch's mails: queued for it, or answering one of its versions; newest first,
    /// with their delivery state; another branch's and the reviewers' digests left out.
    #[tokio::test]
    async fn the_mails_about_one_branch() {
        let root =
            std::env::temp_dir().join(format!("shenbao-outbox-branch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(
            &format!("sqlite://{}", root.join("shenbao.db").display()),
            &root,
        )
        .await
        .expect("open");
        let t0 = DateTime::parse_from_rfc3339("2025-09-26T08:00:00+08:00")
            .expect("time")
            .with_timezone(&Utc);
        let at = |m: i64| t0 + chrono::Duration::minutes(m);
        let mut ids = Vec::new();
        for (i, raw) in [
            &b"Message-ID: <m1@x>\r\n\r\none"[..],
            &b"Message-ID: <m2@x>\r\n\r\ntwo"[..],
        ]
        .iter()
        .enumerate()
        {
            match store
                .insert_file_message(raw, None, at(i as i64))
                .await
                .expect("message")
            {
                crate::store::Inserted::New(id) => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        let a = "海洋支部";
        let mut tx = store.begin_write().await.expect("tx");
        insert_version(&mut tx, &version(Some(a), ids[0], at(0)))
            .await
            .expect("v1");
        // The second mail's branch was not recognised at first; staff assigned it to `a`.
        insert_version(&mut tx, &version(None, ids[1], at(1)))
            .await
            .expect("unknown");
        let ack = enqueue(
            &mut tx,
            &mail(OutboxKind::Ack, "ack1", "回执一"),
            Some(ids[0]),
            Some(a),
            "default",
            at(2),
        )
        .await
        .expect("ack");
        let unknown_ack = enqueue(
            &mut tx,
            &mail(OutboxKind::Ack, "ack2", "回执二"),
            Some(ids[1]),
            None,
            "default",
            at(3),
        )
        .await
        .expect("ack2");
        enqueue(
            &mut tx,
            &mail(OutboxKind::Reminder, "rem-b", "别的支部"),
            None,
            Some("别的支部"),
            "default",
            at(4),
        )
        .await
        .expect("other");
        enqueue(
            &mut tx,
            &mail(OutboxKind::Digest, "digest", "摘要"),
            None,
            None,
            "default",
            at(5),
        )
        .await
        .expect("digest");
        let result = enqueue(
            &mut tx,
            &mail(OutboxKind::Result, "result", "评审结果"),
            None,
            Some(a),
            "default",
            at(6),
        )
        .await
        .expect("result");
        tx.commit().await.expect("commit");
        assert!(
            store
                .outbox_for_branch(a)
                .await
                .expect("before")
                .iter()
                .all(|e| e.id != unknown_ack)
        );
        sqlx::query("UPDATE submissions SET branch = ? WHERE message_id = ?")
            .bind(a)
            .bind(ids[1])
            .execute(store.pool.sqlite())
            .await
            .expect("assign");
        store.outbox_sent_many(&[ack], at(7)).await.expect("sent");
        store
            .outbox_failed(result, "550 mailbox unavailable", None)
            .await
            .expect("dead");

        let got = store.outbox_for_branch(a).await.expect("list");
        let summary: Vec<(i64, &str, &str)> = got
            .iter()
            .map(|e| (e.id, e.kind.as_str(), e.status.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (result, "result", "dead"),
                (unknown_ack, "ack", "queued"),
                (ack, "ack", "sent"),
            ]
        );
        assert_eq!(
            got[0].last_error.as_deref(),
            Some("550 mailbox unavailable")
        );
        assert_eq!(got[2].sent_at, Some(at(7)));
        assert_eq!(got[2].created_at, Some(at(2)));
        assert_eq!(got[2].subject, "回执一");
        assert!(
            store
                .outbox_for_branch("没有的支部")
                .await
                .expect("none")
                .is_empty()
        );
        // By index: the outbox's rows carry whole rendered mails, too many to read through.
        let plan: Vec<String> = sqlx::query(
            "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE branch = ?1 OR related_message IN (SELECT message_id FROM submissions WHERE branch = ?1)",
        )
        .bind(a)
        .fetch_all(store.pool.sqlite())
        .await
        .expect("plan")
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, 3))
        .collect();
        let plan = plan.join("\n");
        assert!(!plan.contains("SCAN outbox"), "{plan}");
        assert!(plan.contains("outbox_by_branch"), "{plan}");
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
    }
}
