//! The `attachments` table: the files of each mail (zip entries under their zip) with the
//! role, format and blob intake gave them, as `export`, `show`, the materials bundle and the
//! closure checklist read them.

use super::{Result, Store, Tx};
use crate::attach::Role;
use sqlx::{Row, SqliteConnection};

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
        let rows = sqlx::query(
            "SELECT id, parent_id, filename, role, format, declared_format, size, sha256, error FROM attachments WHERE message_id = ? ORDER BY parent_id IS NOT NULL, ordinal, id",
        )
        .bind(message)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AttachmentRow {
                id: r.get(0),
                parent: r.get(1),
                filename: r.get(2),
                role: r.get(3),
                format: r.get(4),
                declared_format: r.get(5),
                size: r.get(6),
                sha256: r.get(7),
                error: r.get(8),
            })
            .collect())
    }

    /// Roles of every file a branch has sent for closure so far (zip entries included).
    pub async fn closure_roles(&self, branch: &str) -> Result<Vec<Role>> {
        closure_roles_on(&mut *self.pool.acquire().await?, branch).await
    }
}

/// [`Store::closure_roles`] inside a write transaction.
pub async fn closure_roles(tx: &mut Tx, branch: &str) -> Result<Vec<Role>> {
    closure_roles_on(tx.conn(), branch).await
}

/// [`Store::closure_roles`] on a connection. Transitional: `pipeline/` still holds its
/// transaction as a bare connection and reaches this as `campaign::closure::roles_sent`; once
/// it holds a [`Tx`] it calls [`closure_roles`] and this goes private.
pub(crate) async fn closure_roles_on(
    conn: &mut SqliteConnection,
    branch: &str,
) -> Result<Vec<Role>> {
    let rows = sqlx::query(
        "SELECT DISTINCT a.role FROM attachments a JOIN submissions s ON s.message_id = a.message_id
         WHERE s.kind = 'closure' AND s.branch_key = ?",
    )
    .bind(branch)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Role::parse(&r.get::<String, _>(0)))
        .collect())
}
