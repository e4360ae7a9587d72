//! The `submissions` table: each version of an application or closure mail a branch sent,
//! with its matched branch, problems and fields, and the views of it that `export`, `status`,
//! the digest, the closure phase and the review import read.
//!
//! The SQL of versions (the `submissions` table) as processing writes them: the next version
//! number of a branch, and a new version that replaces the latest.
//!
//! Not pure: SQL.

use super::{Result, Store, Tx, time_col};
use crate::store::db_time;
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
             WHERE sender_changed = TRUE AND branch IS NOT NULL AND created_at > $1 AND created_at <= $2 ORDER BY id",
        )
        .bind(since.map(db_time).unwrap_or_default())
        .bind(until.map_or_else(|| "9999".to_string(), db_time))
        .fetch_all(self.pool.sqlite())
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

/// The submission columns [`SubmissionRow`] reads, in its order, for a `WHERE` clause. A
/// macro so the query stays one `&'static str` (sqlx takes no runtime-built SQL).
macro_rules! submissions_where {
    ($where:literal) => {
        concat!(
            "SELECT s.kind, s.branch, s.college, s.branch_text, s.match_kind, s.match_score, s.match_reason, s.version,
                    (SELECT COUNT(*) FROM submissions o WHERE o.kind = s.kind AND o.branch_key = s.branch_key),
                    s.received_at, s.late, s.sender, m.subject, m.message_id, s.problems, s.message_id,
                    s.fields, s.fields_source, s.problem_details, s.sender_changed, s.suggested_branch
             FROM submissions s JOIN messages m ON m.id = s.message_id WHERE ",
            $where
        )
    };
}

/// A version of a submission as `export` and `show` read it, with its mail's subject and
/// Message-ID; the JSON columns decoded.
#[derive(Debug, Clone)]
pub struct SubmissionRow {
    pub kind: String,
    pub branch: Option<String>,
    pub college: Option<String>,
    /// The branch as the subject wrote it.
    pub branch_text: Option<String>,
    pub match_kind: String,
    pub match_score: f64,
    pub match_reason: String,
    pub version: i64,
    /// How many versions of this kind the branch has sent.
    pub versions: i64,
    pub received_at: DateTime<Utc>,
    pub late: bool,
    pub sender: String,
    pub subject: Option<String>,
    /// The mail's Message-ID header.
    pub message_id: Option<String>,
    pub problems: Vec<String>,
    /// The `messages` row of the mail.
    pub message: i64,
    pub fields: Option<serde_json::Value>,
    pub fields_source: Option<String>,
    pub problem_details: Vec<serde_json::Value>,
    pub sender_changed: bool,
    pub suggested_branch: Option<String>,
}

fn submission_row(r: &sqlx::sqlite::SqliteRow) -> SubmissionRow {
    SubmissionRow {
        kind: r.get(0),
        branch: r.get(1),
        college: r.get(2),
        branch_text: r.get(3),
        match_kind: r.get(4),
        match_score: r.get(5),
        match_reason: r.get(6),
        version: r.get(7),
        versions: r.get(8),
        received_at: time_col(r, 9),
        late: r.get(10),
        sender: r.get(11),
        subject: r.get(12),
        message_id: r.get(13),
        problems: serde_json::from_str(&r.get::<String, _>(14)).unwrap_or_default(),
        message: r.get(15),
        fields: r
            .get::<Option<String>, _>(16)
            .and_then(|j| serde_json::from_str(&j).ok()),
        fields_source: r.get(17),
        problem_details: r
            .get::<Option<String>, _>(18)
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        sender_changed: r.get(19),
        suggested_branch: r.get(20),
    }
}

/// A closure mail of a branch, as the materials bundle reads it.
#[derive(Debug, Clone)]
pub struct ClosureSubmission {
    pub branch_key: String,
    pub branch: Option<String>,
    pub college: Option<String>,
    /// The branch as the subject wrote it.
    pub branch_text: Option<String>,
    /// The `messages` row of the mail.
    pub message: i64,
    pub received_at: Option<DateTime<Utc>>,
}

/// How many branches' latest applications are in, and how they stand, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplicationCounts {
    /// Of recognised branches.
    pub applied: i64,
    /// Of recognised branches, without problems.
    pub clean: i64,
    /// Of mail whose branch was not recognised.
    pub unknown_branch: i64,
}

impl Store {
    /// Every branch's latest submission of each kind, in order of arrival.
    pub async fn latest_submissions(&self) -> Result<Vec<SubmissionRow>> {
        let rows = sqlx::query(submissions_where!(
            "s.is_latest = TRUE ORDER BY s.received_at, s.id"
        ))
        .fetch_all(self.pool.sqlite())
        .await?;
        Ok(rows.iter().map(submission_row).collect())
    }

    /// Every version of one branch's submissions (matched by roster name or as written),
    /// oldest first.
    pub async fn submission_history(&self, branch: &str) -> Result<Vec<SubmissionRow>> {
        let key = crate::textnorm::normalize(branch);
        let rows = sqlx::query(submissions_where!(
            "s.branch = $1 OR s.branch_key = $1 OR s.branch_key = $2 ORDER BY s.kind, s.version"
        ))
        .bind(branch)
        .bind(format!("?{key}"))
        .fetch_all(self.pool.sqlite())
        .await?;
        Ok(rows.iter().map(submission_row).collect())
    }

    /// Every closure mail, newest first.
    pub async fn closure_submissions(&self) -> Result<Vec<ClosureSubmission>> {
        let rows = sqlx::query(
            "SELECT branch_key, branch, college, branch_text, message_id, received_at FROM submissions
         WHERE kind = 'closure' ORDER BY received_at DESC, id DESC",
        )
        .fetch_all(self.pool.sqlite())
        .await?;
        Ok(rows
            .iter()
            .map(|r| ClosureSubmission {
                branch_key: r.get(0),
                branch: r.get(1),
                college: r.get(2),
                branch_text: r.get(3),
                message: r.get(4),
                received_at: crate::store::parse_db_time(&r.get::<String, _>(5)),
            })
            .collect())
    }

    /// The latest applications counted for `status`.
    pub async fn application_counts(&self) -> Result<ApplicationCounts> {
        let row = sqlx::query(
            "SELECT COUNT(*) FILTER (WHERE branch IS NOT NULL), COUNT(*) FILTER (WHERE branch IS NOT NULL AND problems = '[]'), COUNT(*) FILTER (WHERE branch IS NULL)
         FROM submissions WHERE is_latest = TRUE AND kind = 'application'",
        )
        .fetch_one(self.pool.sqlite())
        .await?;
        Ok(ApplicationCounts {
            applied: row.get(0),
            clean: row.get(1),
            unknown_branch: row.get(2),
        })
    }

    /// Branches (roster names) whose latest application is in, in order of arrival.
    pub async fn applicants(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT branch FROM submissions WHERE kind = 'application' AND is_latest = TRUE AND branch IS NOT NULL
         ORDER BY received_at, id",
        )
        .fetch_all(self.pool.sqlite())
        .await?)
    }
}

/// The next version number of `branch_key`'s submissions of `kind` (1 for the first).
pub async fn next_version(tx: &mut Tx, kind: &str, branch_key: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM submissions WHERE kind = $1 AND branch_key = $2",
    )
    .bind(kind)
    .bind(branch_key)
    .fetch_one(tx.sqlite())
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
    sqlx::query("UPDATE submissions SET is_latest = FALSE WHERE kind = $1 AND branch_key = $2")
        .bind(v.kind)
        .bind(&v.branch_key)
        .execute(tx.sqlite())
        .await?;
    sqlx::query(
        "INSERT INTO submissions (kind, branch_key, branch, college, branch_text, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at,
                                  fields, fields_source, form_fields, summary_fields, problem_details, sender_changed, suggested_branch, content_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, TRUE, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
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
    .execute(tx.sqlite())
    .await?;
    Ok(())
}
