//! The SQL of staff corrections (`reprocess`, `assign`, `resolve`, see `crate::pipeline::correct`): what
//! a message was, forgetting what processing wrote, renumbering a branch's versions.

use super::{Result, Store, Tx};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// What one message is, as its rows say: disposition (or status), branch, its submission's
/// version and problems and fields (JSON as stored), whether it waits for a person.
#[derive(Debug, Clone)]
pub struct MessageState {
    pub disposition: String,
    pub branch: Option<String>,
    pub version: Option<i64>,
    pub latest: bool,
    pub problems: Option<String>,
    pub fields: Option<String>,
    pub needs_staff: bool,
}

/// A message as a correction sees it before acting on it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub status: String,
    pub disposition: Option<String>,
    /// INTERNALDATE, else when it was stored (db time text: sorts in time order).
    pub arrival: String,
    /// For an application whose branch was not recognised: the roster branch its form names.
    pub suggested_branch: Option<String>,
}

impl Store {
    /// Message `id` as a correction sees it; `None` when there is no such message.
    pub async fn candidate(&self, id: i64) -> Result<Option<Candidate>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT m.status, m.disposition, COALESCE(m.internal_date, m.stored_at),
                    (SELECT s.suggested_branch FROM submissions s WHERE s.message_id = m.id)
             FROM messages m WHERE m.id = $1",
        )
        .bind(id)
        .fetch_optional(p)
        .await?
        .map(|r| Candidate {
            status: r.get(0),
            disposition: r.get(1),
            arrival: r.get(2),
            suggested_branch: r.get(3),
        })))
    }

    /// Every processed message that can be replayed (not our own copies, not mail too large to
    /// read), in arrival order.
    pub async fn replayable_ids(&self) -> Result<Vec<i64>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT id FROM messages WHERE status != 'stored' AND COALESCE(disposition, '') NOT IN ('own_copy', 'too_large')
             ORDER BY COALESCE(internal_date, stored_at), id",
        )
        .fetch_all(p)
        .await?
        }))
    }

    /// Messages whose processing failed, in arrival order.
    pub async fn failed_ids(&self) -> Result<Vec<i64>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT id FROM messages WHERE status = 'failed' ORDER BY COALESCE(internal_date, stored_at), id",
        )
        .fetch_all(p)
        .await?
        }))
    }

    /// Records staff's `assign` (`Some`), or takes back exactly that assignment (`None` with
    /// the name that was set).
    pub async fn set_assigned(&self, id: i64, branch: Option<&str>, was: &str) -> Result<()> {
        match branch {
            Some(b) => on_pool!(self, |p| sqlx::query(
                "UPDATE messages SET assigned_branch = $1 WHERE id = $2"
            )
            .bind(b)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()),
            None => {
                on_pool!(self, |p| {
                    sqlx::query(
                "UPDATE messages SET assigned_branch = NULL WHERE id = $1 AND assigned_branch = $2",
            )
            .bind(id)
            .bind(was)
            .execute(p)
            .await?
            .rows_affected()
                })
            }
        };
        Ok(())
    }

    /// Marks message `id` handled when it waits for a person; `false` when it does not.
    pub async fn resolve(&self, id: i64, note: Option<&str>, now: DateTime<Utc>) -> Result<bool> {
        let done = on_pool!(self, |p| sqlx::query(concat!(
            "UPDATE messages SET resolved_at = $1, resolved_note = $2 WHERE id = $3 AND ",
            crate::needs_staff!()
        ))
        .bind(db_time(now))
        .bind(note)
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(done > 0)
    }
}

/// Message `id`'s state inside a transaction; `None` when there is no such message.
pub async fn message_state(tx: &mut Tx, id: i64) -> Result<Option<MessageState>> {
    Ok(on_conn!(tx.conn(), |c| {
        sqlx::query(
        "SELECT COALESCE(m.disposition, m.status), COALESCE(s.branch, m.branch), s.version, s.is_latest, s.problems, s.fields,
                m.needs_staff
         FROM messages m LEFT JOIN submissions s ON s.message_id = m.id WHERE m.id = $1",
    )
    .bind(id)
    .fetch_optional(c)
    .await?
    .map(|r| MessageState {
        disposition: r.get(0),
        branch: r.get(1),
        version: r.get(2),
        latest: r.get::<Option<bool>, _>(3).unwrap_or(false),
        problems: r.get(4),
        fields: r.get(5),
        needs_staff: r.get(6),
    })
    }))
}

/// The (kind, branch_key) of the submission message `id` is, if any.
pub async fn submission_keys(tx: &mut Tx, id: i64) -> Result<Vec<(String, String)>> {
    Ok(on_conn!(tx.conn(), |c| sqlx::query(
        "SELECT kind, branch_key FROM submissions WHERE message_id = $1"
    )
    .bind(id)
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()))
}

/// Forgets what processing wrote for message `id` (not the raw mail, not what was sent), so
/// the pipeline takes it up again.
pub async fn forget_processing(tx: &mut Tx, id: i64) -> Result<()> {
    on_conn!(tx.conn(), |c| {
        sqlx::query("DELETE FROM submissions WHERE message_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM attachments WHERE message_id = $1 AND parent_id IS NOT NULL")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM attachments WHERE message_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "UPDATE messages SET status = 'stored', disposition = NULL, reason = NULL, processed_at = NULL,
                    branch = NULL, thread_of = NULL, needs_staff = FALSE, no_answer = NULL, auto_hints = NULL
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// How many mails the outbox holds (to count what a replay queued).
pub async fn outbox_count(tx: &mut Tx) -> Result<usize> {
    let n: i64 = on_conn!(tx.conn(), |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox"
    )
    .fetch_one(c)
    .await?);
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Numbers a branch's submissions of one kind 1, 2, … by arrival and marks the last latest.
pub async fn renumber_versions(tx: &mut Tx, kind: &str, key: &str) -> Result<()> {
    on_conn!(tx.conn(), |c| {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM submissions WHERE kind = $1 AND branch_key = $2 ORDER BY received_at, message_id",
        )
        .bind(kind)
        .bind(key)
        .fetch_all(&mut *c)
        .await?;
        // Negative first: UNIQUE (kind, branch_key, version) holds at every step.
        sqlx::query(
            "UPDATE submissions SET version = -version, is_latest = FALSE WHERE kind = $1 AND branch_key = $2",
        )
        .bind(kind)
        .bind(key)
        .execute(&mut *c)
        .await?;
        let last = ids.len();
        for (i, id) in ids.iter().enumerate() {
            sqlx::query("UPDATE submissions SET version = $1, is_latest = $2 WHERE id = $3")
                .bind(i as i64 + 1)
                .bind(i + 1 == last)
                .bind(id)
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}
