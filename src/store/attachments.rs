//! The `attachments` table: the files of each mail (zip entries under their zip) with the
//! role, format and blob intake gave them, as `export`, `show`, the materials bundle and the
//! closure checklist read them.
//!
//! The SQL of a message's attachments (the `attachments` and `blobs` tables) as processing
//! records them: every file, archive entries under their archive, and what could not be read.
//!
//! Not pure: SQL.

use super::{Cols, Conn, Result, Store, Tx};
use crate::attach::Role;
use sqlx::Row;

use crate::message::Attachment;
use crate::store::db_time;
use chrono::{DateTime, Utc};

fn attachment_row(r: &impl Cols) -> AttachmentRow {
    AttachmentRow {
        id: r.col(0),
        parent: r.col(1),
        filename: r.col(2),
        role: r.col(3),
        format: r.col(4),
        declared_format: r.col(5),
        size: r.col(6),
        sha256: r.col(7),
        error: r.col(8),
    }
}

/// One stored attachment (a zip entry names its zip in `parent`).
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub id: i64,
    pub parent: Option<i64>,
    pub filename: String,
    pub role: String,
    pub format: String,
    pub declared_format: Option<String>,
    pub size: i64,
    pub sha256: String,
    pub error: Option<String>,
}

impl Store {
    /// The attachments of a message: the mail's own files first, then zip entries, each in
    /// the order they came.
    pub async fn attachments(&self, message: i64) -> Result<Vec<AttachmentRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT id, parent_id, filename, role, format, declared_format, size, sha256, error FROM attachments WHERE message_id = $1 ORDER BY parent_id IS NOT NULL, ordinal, id",
        )
        .bind(message)
        .fetch_all(p)
        .await?
        .iter()
        .map(attachment_row)
        .collect()
        }))
    }

    /// [`Store::attachments`] of many messages in a few queries (by chunks of ids) instead of
    /// one per message: `export` and the board read the files of every branch's latest
    /// version at once. Messages without attachments are absent from the map.
    pub async fn attachments_of_many(
        &self,
        messages: &[i64],
    ) -> Result<std::collections::HashMap<i64, Vec<AttachmentRow>>> {
        let mut out: std::collections::HashMap<i64, Vec<AttachmentRow>> =
            std::collections::HashMap::new();
        // SQLite's and PostgreSQL's limits of bound parameters are far above this.
        for chunk in messages.chunks(500) {
            let marks = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "SELECT id, parent_id, filename, role, format, declared_format, size, sha256, error, message_id FROM attachments WHERE message_id IN ({marks}) ORDER BY message_id, parent_id IS NOT NULL, ordinal, id"
            );
            // Only "$1,$2,…" marks are formatted in; the ids are bound.
            let rows: Vec<(i64, AttachmentRow)> = on_pool!(self, |p| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p)
                    .await?
                    .iter()
                    .map(|r| (r.get(9), attachment_row(r)))
                    .collect()
            });
            for (message, row) in rows {
                out.entry(message).or_default().push(row);
            }
        }
        Ok(out)
    }

    /// One stored attachment by its id (the board's downloads go by id, never by path).
    pub async fn attachment(&self, id: i64) -> Result<Option<AttachmentRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT id, parent_id, filename, role, format, declared_format, size, sha256, error FROM attachments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(p)
        .await?
        .as_ref()
        .map(attachment_row)
        }))
    }

    /// Roles of every file a branch has sent for closure so far (zip entries included).
    pub async fn closure_roles(&self, branch: &str) -> Result<Vec<Role>> {
        match &self.pool {
            super::Pool::Sqlite(p) => {
                closure_roles_on(Conn::Sqlite(&mut *p.acquire().await?), branch).await
            }
            super::Pool::Postgres(p) => {
                closure_roles_on(Conn::Postgres(&mut *p.acquire().await?), branch).await
            }
        }
    }
}

/// [`Store::closure_roles`] inside a write transaction.
pub async fn closure_roles(tx: &mut Tx, branch: &str) -> Result<Vec<Role>> {
    closure_roles_on(tx.conn(), branch).await
}

/// [`Store::closure_roles`] on a connection.
async fn closure_roles_on(conn: Conn<'_>, branch: &str) -> Result<Vec<Role>> {
    let roles: Vec<String> = on_conn!(conn, |c| {
        sqlx::query_scalar(
        "SELECT DISTINCT a.role FROM attachments a JOIN submissions s ON s.message_id = a.message_id
         WHERE s.kind = 'closure' AND s.branch_key = $1",
    )
    .bind(branch)
    .fetch_all(c)
    .await?
    });
    Ok(roles.iter().map(|r| Role::parse(r)).collect())
}

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
    let id: i64 = on_conn!(tx.conn(), |c| {
        sqlx::query(
        "INSERT INTO blobs (sha256, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(sha)
    .bind(a.bytes.len() as i64)
    .bind(db_time(now))
    .execute(&mut *c)
    .await?;
        sqlx::query_scalar(
        "INSERT INTO attachments (message_id, parent_id, ordinal, filename, safe_name, content_type, format, declared_format, role, size, sha256, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(message)
    .bind(parent)
    .bind(ordinal as i64)
    .bind(&a.filename)
    .bind(&a.safe_name)
    .bind(&a.content_type)
    .bind(a.format.as_str())
    .bind(&a.declared_format)
    .bind(a.role.as_str())
    .bind(a.size as i64)
    .bind(sha)
    .bind(&a.error)
    .fetch_one(&mut *c)
    .await?
    });
    Ok(id)
}

/// Records why attachments of `message` could not be read: `(sha256, error)`.
pub async fn set_read_errors(tx: &mut Tx, message: i64, errors: &[(String, String)]) -> Result<()> {
    for (sha, error) in errors {
        on_conn!(tx.conn(), |c| sqlx::query(
            "UPDATE attachments SET read_error = $1 WHERE message_id = $2 AND sha256 = $3"
        )
        .bind(error)
        .bind(message)
        .bind(sha)
        .execute(c)
        .await?
        .rows_affected());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8], entries: Vec<Attachment>) -> Attachment {
        let mut a = crate::message::attachment(
            name.to_string(),
            "application/octet-stream".to_string(),
            bytes.to_vec(),
        );
        a.entries = entries;
        a
    }

    /// An attachment is found by its id, a zip entry names its zip, and an unknown id is
    /// nothing.
    #[tokio::test]
    async fn one_attachment_by_id() {
        let root = std::env::temp_dir().join(format!("shenbao-attachment-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(
            &format!("sqlite://{}", root.join("shenbao.db").display()),
            &root,
        )
        .await
        .expect("open");
        let now = Utc::now();
        let id = store
            .insert_file_message(b"Message-ID: <a@x>\r\n\r\nhi", None, now)
            .await
            .expect("message")
            .id();
        let zip = file(
            "材料.zip",
            b"zip bytes",
            vec![file("申请表.docx", b"docx bytes", vec![])],
        );
        let mut tx = store.begin_write().await.expect("tx");
        record_attachments(&mut tx, id, &[zip], now)
            .await
            .expect("record");
        tx.commit().await.expect("commit");
        let rows = store.attachments(id).await.expect("rows");
        assert_eq!(rows.len(), 2);
        let entry = store
            .attachment(rows[1].id)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(entry.filename, "申请表.docx");
        assert_eq!(entry.parent, Some(rows[0].id));
        assert_eq!(entry.sha256, crate::store::blobs::sha256_hex(b"docx bytes"));
        assert_eq!(entry.size, 10);
        assert!(
            store
                .attachment(rows[1].id + 100)
                .await
                .expect("read")
                .is_none()
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
    }
}
