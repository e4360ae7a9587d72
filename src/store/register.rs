//! The SQL of a message's processing (see `crate::pipeline`): whether it still waits to be
//! processed, the disposition recorded for it, and a failure. (The review a closure mail is
//! checked against is read by [`super::reviews::current_level`].)
//!
//! Not pure: SQL.

use super::{Result, Store, Tx};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A message still in the `stored` state, as processing reads it first.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The branch staff assigned it to (`shenbao assign`).
    pub assigned: Option<String>,
}

/// Message `id` if it is still `stored` (not yet processed); `None` when it is unknown or
/// already processed.
pub async fn pending(tx: &mut Tx, id: i64) -> Result<Option<Pending>> {
    let row = sqlx::query("SELECT status, assigned_branch FROM messages WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.sqlite())
        .await?;
    let Some(row) = row else { return Ok(None) };
    if row.get::<String, _>(0) != "stored" {
        return Ok(None);
    }
    Ok(Some(Pending {
        assigned: row.get(1),
    }))
}

/// What processing records on the message itself.
#[derive(Debug, Clone)]
pub struct Processed {
    pub id: i64,
    /// `application`, `closure`, `reply` …
    pub disposition: &'static str,
    pub reason: String,
    pub subject: String,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    /// The sender's Message-ID, kept unless one is already recorded.
    pub message_id: Option<String>,
    pub processed_at: DateTime<Utc>,
    pub branch: Option<String>,
    /// The Message-ID of our mail it answers.
    pub thread_of: Option<String>,
    pub needs_staff: bool,
    pub no_answer: Option<String>,
    /// The weak automatic signals, as JSON.
    pub auto_hints: Option<String>,
}

/// Marks a message `processed` with its disposition.
pub async fn record_processed(tx: &mut Tx, p: &Processed) -> Result<()> {
    sqlx::query(
        "UPDATE messages SET status = 'processed', disposition = $1, reason = $2, subject = $3, from_addr = $4, from_name = $5, message_id = COALESCE(message_id, $6), processed_at = $7,
                             branch = $8, thread_of = $9, needs_staff = $10, no_answer = $11, auto_hints = $12
         WHERE id = $13",
    )
    .bind(p.disposition)
    .bind(&p.reason)
    .bind(&p.subject)
    .bind(&p.from_addr)
    .bind(&p.from_name)
    .bind(&p.message_id)
    .bind(db_time(p.processed_at))
    .bind(&p.branch)
    .bind(&p.thread_of)
    .bind(p.needs_staff)
    .bind(&p.no_answer)
    .bind(&p.auto_hints)
    .bind(p.id)
    .execute(tx.sqlite())
    .await?;
    Ok(())
}

impl Store {
    /// Marks a message that is still `stored` as `failed`, with the reason for staff.
    pub async fn mark_failed(&self, id: i64, error: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE messages SET status = 'failed', reason = $1, processed_at = $2 WHERE id = $3 AND status = 'stored'")
            .bind(format!("处理失败：{error}"))
            .bind(db_time(now))
            .bind(id)
            .execute(self.pool.sqlite())
            .await?;
        Ok(())
    }
}
