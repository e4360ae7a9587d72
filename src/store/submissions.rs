//! The `submissions` table: each version of an application or closure mail a branch sent,
//! with its matched branch, problems and fields, and the views of it that `export`, `status`,
//! the digest, the closure phase and the review import read.

use super::{Result, Store, time_col};
use crate::clock::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A version from an address that is neither the roster's nor an earlier sender's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SenderChange {
    pub message: i64,
    pub kind: String,
    pub branch: String,
    pub version: i64,
    pub sender: String,
    pub received_at: DateTime<Utc>,
}

impl Store {
    /// Versions from unfamiliar addresses recorded in `(since, until]`, oldest first.
    pub async fn sender_changes(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<SenderChange>> {
        let rows = sqlx::query(
            "SELECT message_id, kind, branch, version, sender, received_at FROM submissions
             WHERE sender_changed = 1 AND branch IS NOT NULL AND created_at > ? AND created_at <= ? ORDER BY id",
        )
        .bind(since.map(db_time).unwrap_or_default())
        .bind(until.map_or_else(|| "9999".to_string(), db_time))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SenderChange {
                message: r.get(0),
                kind: r.get(1),
                branch: r.get(2),
                version: r.get(3),
                sender: r.get(4),
                received_at: time_col(r, 5),
            })
            .collect())
    }
}
