//! The SQL of conversations and loop protection (see `crate::campaign::conversation` and the
//! pipeline): which of our mails a reply answers, a branch's earlier senders and latest
//! version, how often identical content was acknowledged.

use super::{Result, Tx};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A mail of ours, as the outbox remembers it.
#[derive(Debug, Clone)]
pub struct OurMail {
    /// `ack`, `reminder`, `result` …
    pub kind: String,
    /// The branch it was about (recorded with it, or the submission it answered).
    pub branch: Option<String>,
    /// `application` or `closure` when it answered a submission.
    pub submission_kind: Option<String>,
    pub subject: String,
}

/// The mail we sent with this Message-ID (without <>), if it is ours.
pub async fn our_mail(tx: &mut Tx, message_id: &str) -> Result<Option<OurMail>> {
    let row = sqlx::query(
        "SELECT o.kind, COALESCE(o.branch, s.branch), s.kind, o.subject FROM outbox o
         LEFT JOIN submissions s ON s.message_id = o.related_message
         WHERE o.message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(tx.sqlite())
    .await?;
    Ok(row.map(|r| OurMail {
        kind: r.get(0),
        branch: r.get(1),
        submission_kind: r.get(2),
        subject: r.get(3),
    }))
}

/// The addresses that sent `branch`'s earlier versions (message `except` left out).
pub async fn earlier_senders(tx: &mut Tx, branch: &str, except: i64) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT sender FROM submissions WHERE branch = $1 AND message_id != $2",
    )
    .bind(branch)
    .bind(except)
    .fetch_all(tx.sqlite())
    .await?)
}

/// A version's content as loop protection sees it: the same files for the same branch,
/// answered to the same address.
pub struct IdenticalContent<'a> {
    pub kind: &'a str,
    pub branch_key: &'a str,
    pub content_key: &'a str,
    pub to: &'a str,
}

/// How many acknowledgements went out in the window to the same address for earlier versions
/// of the same branch and kind with exactly this content (`message` itself excluded): a loop
/// re-sends one mail from one address; different people sending the same files are not one.
pub async fn identical_acks(
    tx: &mut Tx,
    c: IdenticalContent<'_>,
    message: i64,
    since: DateTime<Utc>,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox o JOIN submissions s ON s.message_id = o.related_message
         WHERE s.kind = $1 AND s.branch_key = $2 AND s.content_key = $3 AND s.message_id != $4
           AND o.kind = 'ack' AND o.to_addr = $5 AND o.created_at >= $6",
    )
    .bind(c.kind)
    .bind(c.branch_key)
    .bind(c.content_key)
    .bind(message)
    .bind(c.to)
    .bind(db_time(since))
    .fetch_one(tx.sqlite())
    .await?)
}

/// The latest version number of a branch's submissions of `kind`, if any.
pub async fn latest_version(tx: &mut Tx, kind: &str, branch: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MAX(version) FROM submissions WHERE kind = $1 AND branch = $2")
            .bind(kind)
            .bind(branch)
            .fetch_one(tx.sqlite())
            .await?,
    )
}

/// How many automatic mails of `kind_like` (an SQL `LIKE` pattern: `subject_help`,
/// `no_materials`) went to `to` since `since`: the cap on notes to one address.
pub async fn recent_answers(
    tx: &mut Tx,
    to: &str,
    kind_like: &str,
    since: DateTime<Utc>,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE to_addr = $1 AND kind LIKE $2 AND created_at >= $3",
    )
    .bind(to)
    .bind(kind_like)
    .bind(db_time(since))
    .fetch_one(tx.sqlite())
    .await?)
}
