//! The SQL of a message's attachments (the `attachments` and `blobs` tables) as processing
//! records them: every file, archive entries under their archive, and what could not be read.
//!
//! Not pure: SQL.

use super::{Result, Tx};
use crate::clock::db_time;
use crate::message::Attachment;
use crate::notify::ack::enum_str;
use chrono::{DateTime, Utc};

/// Records the attachments of `message` (their files already in the blob directory), archive
/// entries under their archive.
pub async fn record_attachments(
    tx: &mut Tx,
    message: i64,
    atts: &[Attachment],
    now: DateTime<Utc>,
) -> Result<()> {
    for (i, a) in atts.iter().enumerate() {
        let parent = insert_attachment(tx, message, None, i, a, now).await?;
        for (j, e) in a.entries.iter().enumerate() {
            insert_attachment(tx, message, Some(parent), j, e, now).await?;
        }
    }
    Ok(())
}

async fn insert_attachment(
    tx: &mut Tx,
    message: i64,
    parent: Option<i64>,
    ordinal: usize,
    a: &Attachment,
    now: DateTime<Utc>,
) -> Result<i64> {
    let sha = &a.sha256;
    sqlx::query("INSERT OR IGNORE INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)")
        .bind(sha)
        .bind(a.bytes.len() as i64)
        .bind(db_time(now))
        .execute(tx.conn())
        .await?;
    let id = sqlx::query(
        "INSERT INTO attachments (message_id, parent_id, ordinal, filename, safe_name, content_type, format, declared_format, role, size, sha256, error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(message)
    .bind(parent)
    .bind(ordinal as i64)
    .bind(&a.filename)
    .bind(&a.safe_name)
    .bind(&a.content_type)
    .bind(enum_str(&a.format))
    .bind(&a.declared_format)
    .bind(enum_str(&a.role))
    .bind(a.size as i64)
    .bind(sha)
    .bind(&a.error)
    .execute(tx.conn())
    .await?
    .last_insert_rowid();
    Ok(id)
}

/// Records why attachments of `message` could not be read: `(sha256, error)`.
pub async fn set_read_errors(tx: &mut Tx, message: i64, errors: &[(String, String)]) -> Result<()> {
    for (sha, error) in errors {
        sqlx::query("UPDATE attachments SET read_error = ? WHERE message_id = ? AND sha256 = ?")
            .bind(error)
            .bind(message)
            .bind(sha)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}
