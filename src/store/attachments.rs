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

    /// Roles of every file a branch has sent for closure so far in the store's campaign (zip
    /// entries included).
    pub async fn closure_roles(&self, branch: &str) -> Result<Vec<Role>> {
        let campaign = self.campaign();
        match &self.pool {
            super::Pool::Sqlite(p) => {
                closure_roles_on(Conn::Sqlite(&mut *p.acquire().await?), campaign, branch).await
            }
            super::Pool::Postgres(p) => {
                closure_roles_on(Conn::Postgres(&mut *p.acquire().await?), campaign, branch).await
            }
        }
    }
}

/// [`Store::closure_roles`] of `campaign` inside a write transaction.
pub async fn closure_roles(tx: &mut Tx, campaign: &str, branch: &str) -> Result<Vec<Role>> {
    closure_roles_on(tx.conn(), campaign, branch).await
}

/// [`Store::closure_roles`] on a connection.
async fn closure_roles_on(conn: Conn<'_>, campaign: &str, branch: &str) -> Result<Vec<Role>> {
    let roles: Vec<String> = on_conn!(conn, |c| {
        sqlx::query_scalar(
            "SELECT DISTINCT a.role FROM attachments a JOIN submissions s ON s.message_id = a.message_id
             WHERE s.campaign = $2 AND s.kind = 'closure' AND s.branch_key = $1",
        )
        .bind(branch)
        .bind(campaign)
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
    if atts.is_empty() {
        return Ok(());
    }
    // Three statements for the whole mail (the blobs, the files, the files inside archives)
    // rather than two per file: each is a round trip to the database (issue 16's profile).
    record_blobs_of(tx, &[atts], now).await?;
    record_files(tx, message, atts).await
}

/// The blob rows of every file (zip entries too) of several mails, in one statement: the
/// pipeline's commit group records them all before the mails' own rows
/// ([`record_files`]).
pub async fn record_blobs_of(
    tx: &mut Tx,
    mails: &[&[Attachment]],
    now: DateTime<Utc>,
) -> Result<()> {
    let blobs: Vec<(&str, u64)> = mails
        .iter()
        .flat_map(|atts| crate::campaign::rules::all_files(atts))
        .map(|a| (a.sha256.as_str(), a.size as u64))
        .collect();
    if blobs.is_empty() {
        return Ok(());
    }
    crate::store::Store::record_blobs(tx.conn(), &blobs, now).await
}

/// [`record_attachments`] without the blob rows, recorded already ([`record_blobs_of`]).
pub async fn record_files(tx: &mut Tx, message: i64, atts: &[Attachment]) -> Result<()> {
    if atts.is_empty() {
        return Ok(());
    }
    let top: Vec<(Option<i64>, usize, &Attachment)> =
        atts.iter().enumerate().map(|(i, a)| (None, i, a)).collect();
    let parents = insert_attachments(tx, message, &top).await?;
    let inner: Vec<(Option<i64>, usize, &Attachment)> = atts
        .iter()
        .zip(&parents)
        .flat_map(|(a, &parent)| {
            a.entries
                .iter()
                .enumerate()
                .map(move |(j, e)| (Some(parent), j, e))
        })
        .collect();
    insert_attachments(tx, message, &inner).await?;
    Ok(())
}

/// Inserts the rows `(parent, ordinal, file)` of one message in one statement; their ids, in
/// the order given.
async fn insert_attachments(
    tx: &mut Tx,
    message: i64,
    rows: &[(Option<i64>, usize, &Attachment)],
) -> Result<Vec<i64>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Built at run time: one row of eleven parameters per file after the message's `$1`; run
    // on both backends by the tests.
    let sql = format!(
        "INSERT INTO attachments (message_id, parent_id, ordinal, filename, safe_name, content_type, format, declared_format, role, size, sha256, error)
         VALUES {} RETURNING parent_id, ordinal, id",
        crate::store::values_rows(1, rows.len(), 11, |p| format!(
            "($1, {})",
            crate::store::params(p.iter().copied())
        ))
    );
    let ids: Vec<(Option<i64>, i64, i64)> = on_conn!(tx.conn(), |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(message);
        for &(parent, ordinal, a) in rows {
            q = q
                .bind(parent)
                .bind(ordinal as i64)
                .bind(&a.filename)
                .bind(&a.safe_name)
                .bind(&a.content_type)
                .bind(a.format.as_str())
                .bind(&a.declared_format)
                .bind(a.role.as_str())
                .bind(a.size as i64)
                .bind(&a.sha256)
                .bind(&a.error);
        }
        q.fetch_all(c).await?
    });
    // RETURNING gives no order: matched back by (parent, ordinal), unique within a message.
    rows.iter()
        .map(|&(parent, ordinal, _)| {
            ids.iter()
                .find(|&&(p, o, _)| p == parent && o == ordinal as i64)
                .map(|&(_, _, id)| id)
                .ok_or_else(|| {
                    crate::store::StoreError::Db(sqlx::Error::Protocol(format!(
                        "数据库没有返回邮件 {message} 的第 {} 个附件的编号",
                        ordinal + 1
                    )))
                })
        })
        .collect()
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
    use super::super::submissions::insert_version;
    use super::super::submissions::testing::{message, version};
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
    /// nothing; on both backends.
    #[tokio::test]
    async fn one_attachment_by_id() {
        for store in crate::store::test_stores("attachment").await {
            let backend = store.backend();
            let now = Utc::now();
            let id = message(&store, 1, "processed", None).await;
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
            assert_eq!(rows.len(), 2, "{backend}");
            assert_eq!(rows[0].filename, "材料.zip", "{backend}");
            assert_eq!(rows[0].parent, None, "{backend}");
            let entry = store
                .attachment(rows[1].id)
                .await
                .expect("read")
                .expect("found");
            assert_eq!(entry.filename, "申请表.docx", "{backend}");
            assert_eq!(entry.parent, Some(rows[0].id), "{backend}");
            assert_eq!(entry.sha256, crate::store::blobs::sha256_hex(b"docx bytes"));
            assert_eq!(entry.size, 10, "{backend}");
            assert!(
                store
                    .attachment(rows[1].id + 100)
                    .await
                    .expect("read")
                    .is_none()
            );
        }
    }

    /// The files of many messages at once: each message's own files before its zip entries,
    /// in the order they came, a message without files absent; the read errors recorded;
    /// the same on both backends.
    #[tokio::test]
    async fn the_files_of_many_messages() {
        for store in crate::store::test_stores("attachments_many").await {
            let backend = store.backend();
            let now = Utc::now();
            let first = message(&store, 1, "processed", None).await;
            let second = message(&store, 2, "processed", None).await;
            let bare = message(&store, 3, "processed", None).await;
            let mut tx = store.begin_write().await.expect("tx");
            record_attachments(
                &mut tx,
                first,
                &[
                    file("材料.zip", b"zip", vec![file("a.docx", b"a", vec![])]),
                    file("汇总表.xlsx", b"xlsx", vec![]),
                ],
                now,
            )
            .await
            .expect("first");
            // The same bytes in two messages: one blob row.
            record_attachments(
                &mut tx,
                second,
                &[file("汇总表.xlsx", b"xlsx", vec![])],
                now,
            )
            .await
            .expect("second");
            set_read_errors(
                &mut tx,
                first,
                &[(crate::store::blobs::sha256_hex(b"xlsx"), "表格损坏".into())],
            )
            .await
            .expect("errors");
            tx.commit().await.expect("commit");
            let many = store
                .attachments_of_many(&[first, second, bare])
                .await
                .expect("many");
            assert_eq!(many.len(), 2, "{backend}");
            assert!(!many.contains_key(&bare), "{backend}");
            let names: Vec<&str> = many[&first].iter().map(|a| a.filename.as_str()).collect();
            assert_eq!(names, ["材料.zip", "汇总表.xlsx", "a.docx"], "{backend}");
            assert_eq!(many[&second].len(), 1, "{backend}");
            for (id, rows) in &many {
                let one: Vec<i64> = store
                    .attachments(*id)
                    .await
                    .expect("one")
                    .iter()
                    .map(|a| a.id)
                    .collect();
                let ids: Vec<i64> = rows.iter().map(|a| a.id).collect();
                assert_eq!(ids, one, "{backend}");
            }
            let errors: Vec<(i64, Option<String>)> = on_pool!(store, |p| {
                sqlx::query(
                    "SELECT message_id, read_error FROM attachments WHERE sha256 = $1 ORDER BY message_id"
                )
                .bind(crate::store::blobs::sha256_hex(b"xlsx"))
                .fetch_all(p)
                .await
                .expect("errors")
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
            });
            assert_eq!(
                errors,
                [(first, Some("表格损坏".to_string())), (second, None)],
                "{backend}"
            );
            let blobs: i64 = on_pool!(store, |p| sqlx::query_scalar(
                "SELECT COUNT(*) FROM blobs WHERE sha256 = $1"
            )
            .bind(crate::store::blobs::sha256_hex(b"xlsx"))
            .fetch_one(p)
            .await
            .expect("blobs"));
            assert_eq!(blobs, 1, "{backend}");
        }
    }

    /// The roles of a branch's closure files (zip entries too, each role once), from the
    /// pool and inside a write transaction; an application's files are not counted.
    #[tokio::test]
    async fn the_roles_of_a_branchs_closure_files() {
        for store in crate::store::test_stores("closure_roles").await {
            let store = store.for_campaign("2025-autumn");
            let backend = store.backend();
            let a = "土木工程学院本科生第一党支部";
            let now = Utc::now();
            let applied = message(&store, 1, "processed", Some("application")).await;
            let closed = message(&store, 2, "processed", Some("closure")).await;
            let again = message(&store, 3, "processed", Some("closure")).await;
            let with_role = |name: &str, role: Role, entries| {
                let mut f = file(name, name.as_bytes(), entries);
                f.role = role;
                f
            };
            let mut tx = store.begin_write().await.expect("tx");
            insert_version(&mut tx, &version(a, 1, applied, 1, None))
                .await
                .expect("application");
            for (n, id) in [(1, closed), (2, again)] {
                let mut v = version(a, n, id, n + 1, None);
                v.kind = "closure";
                insert_version(&mut tx, &v).await.expect("closure");
            }
            record_attachments(
                &mut tx,
                applied,
                &[with_role("申请表.docx", Role::Form, vec![])],
                now,
            )
            .await
            .expect("form");
            let zip = with_role(
                "结题.zip",
                Role::Other,
                vec![with_role("结题报告.docx", Role::ClosureReport, vec![])],
            );
            record_attachments(&mut tx, closed, &[zip], now)
                .await
                .expect("closure files");
            record_attachments(
                &mut tx,
                again,
                &[
                    with_role("报销单.pdf", Role::Reimbursement, vec![]),
                    with_role("结题报告2.docx", Role::ClosureReport, vec![]),
                ],
                now,
            )
            .await
            .expect("again");
            let mut in_tx = closure_roles(&mut tx, "2025-autumn", a)
                .await
                .expect("in tx");
            tx.commit().await.expect("commit");
            let mut from_pool = store.closure_roles(a).await.expect("pool");
            in_tx.sort_by_key(|r| r.as_str());
            from_pool.sort_by_key(|r| r.as_str());
            assert_eq!(
                from_pool,
                [Role::ClosureReport, Role::Other, Role::Reimbursement],
                "{backend}"
            );
            assert_eq!(in_tx, from_pool, "{backend}");
            assert!(
                store
                    .closure_roles("别的支部")
                    .await
                    .expect("none")
                    .is_empty()
            );
        }
    }
}
