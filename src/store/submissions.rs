//! The SQL of versions (the `submissions` table) as processing writes them: the next version
//! number of a branch, and a new version that replaces the latest.
//!
//! Not pure: SQL.

use super::{Result, Tx};
use crate::clock::db_time;
use chrono::{DateTime, Utc};

/// The next version number of `branch_key`'s submissions of `kind` (1 for the first).
pub async fn next_version(tx: &mut Tx, kind: &str, branch_key: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM submissions WHERE kind = ? AND branch_key = ?",
    )
    .bind(kind)
    .bind(branch_key)
    .fetch_one(tx.conn())
    .await?)
}

/// A version as it is written; JSON columns already serialised.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// `application` or `closure`.
    pub kind: &'static str,
    pub branch_key: String,
    pub branch: Option<String>,
    pub college: Option<String>,
    pub branch_text: Option<String>,
    /// `exact`, `fuzzy` or `unknown`.
    pub match_kind: &'static str,
    pub match_score: f64,
    pub match_reason: String,
    pub version: i64,
    /// The message it came in.
    pub message_id: i64,
    pub sender: String,
    pub received_at: DateTime<Utc>,
    pub late: bool,
    /// The problem codes, as a JSON list.
    pub problems: String,
    pub created_at: DateTime<Utc>,
    pub fields: Option<String>,
    pub fields_source: Option<&'static str>,
    pub form_fields: Option<String>,
    pub summary_fields: Option<String>,
    /// The findings, as JSON.
    pub problem_details: String,
    pub sender_changed: bool,
    pub suggested_branch: Option<String>,
    pub content_key: String,
}

/// Writes `v` as the latest version of its branch (the previous latest no longer is).
pub async fn insert_version(tx: &mut Tx, v: &NewVersion) -> Result<()> {
    sqlx::query("UPDATE submissions SET is_latest = 0 WHERE kind = ? AND branch_key = ?")
        .bind(v.kind)
        .bind(&v.branch_key)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO submissions (kind, branch_key, branch, college, branch_text, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at,
                                  fields, fields_source, form_fields, summary_fields, problem_details, sender_changed, suggested_branch, content_key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(v.kind)
    .bind(&v.branch_key)
    .bind(&v.branch)
    .bind(&v.college)
    .bind(&v.branch_text)
    .bind(v.match_kind)
    .bind(v.match_score)
    .bind(&v.match_reason)
    .bind(v.version)
    .bind(v.message_id)
    .bind(&v.sender)
    .bind(db_time(v.received_at))
    .bind(v.late)
    .bind(&v.problems)
    .bind(db_time(v.created_at))
    .bind(&v.fields)
    .bind(v.fields_source)
    .bind(&v.form_fields)
    .bind(&v.summary_fields)
    .bind(&v.problem_details)
    .bind(v.sender_changed)
    .bind(&v.suggested_branch)
    .bind(&v.content_key)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The roles (`Role` codes) of every file that `branch`'s closure versions brought.
pub async fn closure_roles_sent(tx: &mut Tx, branch: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT a.role FROM attachments a JOIN submissions s ON s.message_id = a.message_id
         WHERE s.kind = 'closure' AND s.branch_key = ?",
    )
    .bind(branch)
    .fetch_all(tx.conn())
    .await?)
}
