//! The `messages` table: every mail as it arrived (from IMAP or a file), stored before
//! anything looks at it, with what processing decided about it and whether it waits for a
//! person. Storing a fetched message also moves its folder's watermark ([`super::mailbox`]) in
//! the same transaction.

use super::mailbox::set_watermark;
use super::{Result, Store, blobs, time_col};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

/// Where a stored message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapKey {
    pub account: String,
    pub folder: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new row.
    New(i64),
    /// The same bytes with the same Message-ID were already stored (e.g. after UIDVALIDITY
    /// changed, or a file ingested twice): the existing row.
    Duplicate(i64),
}

impl Inserted {
    pub fn id(self) -> i64 {
        match self {
            Inserted::New(id) | Inserted::Duplicate(id) => id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: i64,
    pub raw_sha256: String,
    pub internal_date: Option<DateTime<Utc>>,
    pub stored_at: DateTime<Utc>,
    pub uid: Option<u32>,
}

/// A mail that waits for a person ([`needs_staff!`]), for `status` and the digest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StaffRow {
    pub id: i64,
    pub from: String,
    pub subject: String,
    pub reason: String,
    /// Arrival (INTERNALDATE, else our clock), UTC.
    pub received_at: DateTime<Utc>,
    /// The branch it concerns, when known.
    pub branch: Option<String>,
    pub disposition: String,
    /// For an application whose branch was not recognised: the roster branch its form names.
    pub suggested_branch: Option<String>,
    /// A reply: the subject of our mail it answers (its thread).
    pub thread_subject: Option<String>,
}

/// One message as the board's message page shows it: what processing decided, whether it
/// still waits for a person, and when and how it was handled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageRecord {
    pub id: i64,
    pub raw_sha256: String,
    pub size: i64,
    pub from: String,
    pub subject: String,
    /// stored | processed | failed
    pub status: String,
    /// The disposition, or the status when there is none (`failed`, `stored`).
    pub disposition: String,
    pub reason: String,
    pub branch: Option<String>,
    /// Arrival (INTERNALDATE, else our clock), UTC.
    pub received_at: DateTime<Utc>,
    /// It is in the list of [`Store::needs_staff`] now.
    pub waits_for_staff: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_note: Option<String>,
    pub suggested_branch: Option<String>,
    pub thread_subject: Option<String>,
    pub no_answer: Option<String>,
}

/// A mail that waited for a person and was marked handled (`resolve`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResolvedRow {
    pub id: i64,
    pub from: String,
    pub subject: String,
    pub disposition: String,
    pub reason: String,
    pub branch: Option<String>,
    pub received_at: DateTime<Utc>,
    pub resolved_at: DateTime<Utc>,
    pub note: Option<String>,
}

/// A mail a person may have expected an answer to and did not get one, with the reason.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnansweredRow {
    pub id: i64,
    pub from: String,
    pub subject: String,
    pub branch: Option<String>,
    pub why: String,
    pub received_at: DateTime<Utc>,
}

/// The Message-ID of raw bytes, read with the headers only (the body is not parsed here).
/// A message as one UID FETCH gave it: where it is, its bytes, its INTERNALDATE.
pub type Fetched<'a> = (ImapKey, &'a [u8], Option<DateTime<Utc>>);

/// A message's bytes as written to the blob directory.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub sha256: String,
    pub size: u64,
    /// The sender's Message-ID, read from the header (see [`raw_message_id`]).
    pub message_id: Option<String>,
}

/// The Message-ID in the header of `raw`, which may be only the head of a message: the
/// header is all that is read.
pub fn raw_message_id(raw: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| m.message_id().map(str::to_string))
}

impl Store {
    /// Stores a message fetched over IMAP: blob, row and watermark in one transaction.
    pub async fn insert_imap_message(
        &self,
        key: &ImapKey,
        raw: &[u8],
        internal_date: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Inserted> {
        let sha = self.write_blob(raw).await?;
        let blob = StoredBlob {
            sha256: sha,
            size: raw.len() as u64,
            message_id: raw_message_id(raw),
        };
        self.insert_imap_blob(key, &blob, internal_date, now).await
    }

    /// As [`Store::insert_imap_message`], for a message whose bytes were already written to
    /// the blob directory (a large one, fetched in parts straight to disk).
    pub async fn insert_imap_blob(
        &self,
        key: &ImapKey,
        blob: &StoredBlob,
        internal_date: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Inserted> {
        let mut tx = self.begin_write().await?;
        let inserted = self
            .insert_imap_row(tx.sqlite(), key, blob, internal_date, now)
            .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Stores the messages of one UID FETCH: every blob written (on one blocking thread), then
    /// every row in one transaction, in the order given (UID order, so the watermark only
    /// moves forward). Same result as [`Store::insert_imap_message`] one by one, with one
    /// commit instead of one per message.
    pub async fn insert_imap_batch(
        &self,
        messages: &[Fetched<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<Inserted>> {
        let blobs = self.blobs.clone();
        let owned: Vec<Vec<u8>> = messages.iter().map(|m| m.1.to_vec()).collect();
        let written = tokio::task::spawn_blocking(move || {
            let mut staged = Vec::new();
            let written = owned
                .iter()
                .map(|raw| {
                    let (sha256, file) = blobs.stage(raw)?;
                    staged.extend(file);
                    Ok(StoredBlob {
                        sha256,
                        size: raw.len() as u64,
                        message_id: raw_message_id(raw),
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            blobs::publish(staged)?;
            Ok::<_, std::io::Error>(written)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(messages.len());
        for ((key, _, internal_date), blob) in messages.iter().zip(&written) {
            out.push(
                self.insert_imap_row(tx.sqlite(), key, blob, *internal_date, now)
                    .await?,
            );
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The row of one fetched message and the watermark after it, inside the caller's
    /// transaction.
    async fn insert_imap_row(
        &self,
        tx: &mut SqliteConnection,
        key: &ImapKey,
        blob: &StoredBlob,
        internal_date: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Inserted> {
        let sha = &blob.sha256;
        let size = i64::try_from(blob.size).unwrap_or(i64::MAX);
        if let Some(row) = sqlx::query(
            "SELECT id FROM messages WHERE account = $1 AND folder = $2 AND uidvalidity = $3 AND uid = $4",
        )
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .fetch_optional(&mut *tx)
        .await?
        {
            return Ok(Inserted::Duplicate(row.get(0)));
        }
        self.record_blob(
            super::Conn::Sqlite(&mut *tx),
            sha,
            usize::try_from(blob.size).unwrap_or(usize::MAX),
            now,
        )
        .await?;
        let mid = blob.message_id.as_deref();
        if let Some(existing) = find_duplicate(&mut *tx, mid, sha).await? {
            set_watermark(&mut *tx, key, now).await?;
            return Ok(Inserted::Duplicate(existing));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (source, account, folder, uidvalidity, uid, message_id, raw_sha256, size, internal_date, stored_at)
             VALUES ('imap', $1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .bind(mid)
        .bind(sha)
        .bind(size)
        .bind(internal_date.map(db_time))
        .bind(db_time(now))
        .fetch_one(&mut *tx)
        .await?;
        set_watermark(&mut *tx, key, now).await?;
        Ok(Inserted::New(id))
    }

    /// Records a message too large to fetch: nothing is lost silently, staff see it in status.
    pub async fn insert_too_large(
        &self,
        key: &ImapKey,
        size: u64,
        internal_date: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let placeholder = format!(
            "X-Shenbao-Placeholder: message {} in {} UIDVALIDITY {} was {} bytes, above imap.max_message_size\r\n\r\n",
            key.uid, key.folder, key.uidvalidity, size
        );
        let sha = self.write_blob(placeholder.as_bytes()).await?;
        let mut tx = self.begin_write().await?;
        self.record_blob(tx.conn(), &sha, placeholder.len(), now)
            .await?;
        sqlx::query(
            "INSERT INTO messages (source, account, folder, uidvalidity, uid, raw_sha256, size, internal_date, stored_at, status, disposition, reason, processed_at)
             VALUES ('imap', $1, $2, $3, $4, $5, $6, $7, $8, 'processed', 'too_large', $9, $8)
             ON CONFLICT DO NOTHING",
        )
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .bind(&sha)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(internal_date.map(db_time))
        .bind(db_time(now))
        .bind(format!("邮件大小 {size} 字节，超过 imap.max_message_size，未下载，留在原文件夹由人工处理"))
        .execute(tx.sqlite())
        .await?;
        set_watermark(tx.sqlite(), key, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a message read from a file (`shenbao ingest`).
    pub async fn insert_file_message(
        &self,
        raw: &[u8],
        internal_date: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Inserted> {
        let sha = self.write_blob(raw).await?;
        let mut tx = self.begin_write().await?;
        self.record_blob(tx.conn(), &sha, raw.len(), now).await?;
        let mid = raw_message_id(raw);
        if let Some(existing) = find_duplicate(tx.sqlite(), mid.as_deref(), &sha).await? {
            tx.commit().await?;
            return Ok(Inserted::Duplicate(existing));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (source, message_id, raw_sha256, size, internal_date, stored_at) VALUES ('file', $1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(mid)
        .bind(&sha)
        .bind(raw.len() as i64)
        .bind(internal_date.map(db_time))
        .bind(db_time(now))
        .fetch_one(tx.sqlite())
        .await?;
        tx.commit().await?;
        Ok(Inserted::New(id))
    }

    /// Messages stored but not yet processed (after a crash), oldest first.
    pub async fn pending(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM messages WHERE status = 'stored' ORDER BY id")
            .fetch_all(self.pool.sqlite())
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn message(&self, id: i64) -> Result<Option<StoredMessage>> {
        let row = sqlx::query(
            "SELECT id, raw_sha256, internal_date, stored_at, uid FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool.sqlite())
        .await?;
        Ok(row.map(|r| StoredMessage {
            id: r.get(0),
            raw_sha256: r.get(1),
            internal_date: r
                .get::<Option<String>, _>(2)
                .as_deref()
                .and_then(crate::store::parse_db_time),
            stored_at: crate::store::parse_db_time(&r.get::<String, _>(3)).unwrap_or_default(),
            uid: r
                .get::<Option<i64>, _>(4)
                .and_then(|u| u32::try_from(u).ok()),
        }))
    }

    /// Processed messages of a folder that are still in it (a crash came before the move).
    pub async fn unmoved(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
    ) -> Result<Vec<(i64, u32)>> {
        let rows = sqlx::query(
            "SELECT id, uid FROM messages WHERE account = $1 AND folder = $2 AND uidvalidity = $3 AND status = 'processed' AND moved = FALSE AND disposition != 'too_large' ORDER BY uid",
        )
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .fetch_all(self.pool.sqlite())
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), u32::try_from(r.get::<i64, _>(1)).ok()?)))
            .collect())
    }

    /// Which of `uids` (of one folder and UIDVALIDITY) wait for a person: questions, replies,
    /// unrecognised branches, failures and mail too large to read.
    pub async fn staff_uids(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<std::collections::HashSet<u32>> {
        let (Some(&lo), Some(&hi)) = (uids.iter().min(), uids.iter().max()) else {
            return Ok(std::collections::HashSet::new());
        };
        let rows = sqlx::query(concat!(
            "SELECT uid FROM messages WHERE account = $1 AND folder = $2 AND uidvalidity = $3 AND uid BETWEEN $4 AND $5 AND ",
            needs_staff!()
        ))
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(lo))
        .bind(i64::from(hi))
        .fetch_all(self.pool.sqlite())
        .await?;
        let out = rows
            .iter()
            .filter_map(|r| u32::try_from(r.get::<i64, _>(0)).ok())
            .filter(|uid| uids.contains(uid))
            .collect();
        Ok(out)
    }

    /// Mail waiting for a person that arrived in `(since, until]` (our clock), oldest first.
    pub async fn needs_staff(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<StaffRow>> {
        let rows = sqlx::query(concat!(
            "SELECT m.id, COALESCE(m.from_addr, ''), COALESCE(m.subject, ''), COALESCE(m.reason, ''),
                    COALESCE(m.internal_date, m.stored_at), m.branch, COALESCE(m.disposition, m.status),
                    (SELECT s.suggested_branch FROM submissions s WHERE s.message_id = m.id),
                    (SELECT o.subject FROM outbox o WHERE o.message_id = m.thread_of)
             FROM messages m WHERE m.stored_at > $1 AND m.stored_at <= $2 AND ",
            needs_staff!(),
            " ORDER BY m.id"
        ))
        .bind(since.map(db_time).unwrap_or_default())
        .bind(until.map_or_else(|| "9999".to_string(), db_time))
        .fetch_all(self.pool.sqlite())
        .await?;
        Ok(rows
            .iter()
            .map(|r| StaffRow {
                id: r.get(0),
                from: r.get(1),
                subject: r.get(2),
                reason: r.get(3),
                received_at: time_col(r, 4),
                branch: r.get(5),
                disposition: r.get(6),
                suggested_branch: r.get(7),
                thread_subject: r.get(8),
            })
            .collect())
    }

    /// Message `id` with what was decided about it, for the board's message page.
    pub async fn message_record(&self, id: i64) -> Result<Option<MessageRecord>> {
        let row = sqlx::query(concat!(
            "SELECT m.id, m.raw_sha256, m.size, COALESCE(m.from_addr, ''), COALESCE(m.subject, ''), m.status,
                    COALESCE(m.disposition, m.status), COALESCE(m.reason, ''), m.branch,
                    COALESCE(m.internal_date, m.stored_at), CASE WHEN ",
            needs_staff!(),
            " THEN TRUE ELSE FALSE END, m.resolved_at, m.resolved_note,
                    (SELECT s.suggested_branch FROM submissions s WHERE s.message_id = m.id),
                    (SELECT o.subject FROM outbox o WHERE o.message_id = m.thread_of),
                    m.no_answer
             FROM messages m WHERE m.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool.sqlite())
        .await?;
        Ok(row.map(|r| MessageRecord {
            id: r.get(0),
            raw_sha256: r.get(1),
            size: r.get(2),
            from: r.get(3),
            subject: r.get(4),
            status: r.get(5),
            disposition: r.get(6),
            reason: r.get(7),
            branch: r.get(8),
            received_at: time_col(&r, 9),
            waits_for_staff: r.get(10),
            resolved_at: r
                .get::<Option<String>, _>(11)
                .as_deref()
                .and_then(crate::store::parse_db_time),
            resolved_note: r.get(12),
            suggested_branch: r.get(13),
            thread_subject: r.get(14),
            no_answer: r.get(15),
        }))
    }

    /// The `limit` mails marked handled last, the latest first.
    pub async fn resolved_messages(&self, limit: i64) -> Result<Vec<ResolvedRow>> {
        let rows = sqlx::query(
            "SELECT id, COALESCE(from_addr, ''), COALESCE(subject, ''), COALESCE(disposition, status), COALESCE(reason, ''),
                    branch, COALESCE(internal_date, stored_at), resolved_at, resolved_note
             FROM messages WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool.sqlite())
        .await?;
        Ok(rows
            .iter()
            .map(|r| ResolvedRow {
                id: r.get(0),
                from: r.get(1),
                subject: r.get(2),
                disposition: r.get(3),
                reason: r.get(4),
                branch: r.get(5),
                received_at: time_col(r, 6),
                resolved_at: time_col(r, 7),
                note: r.get(8),
            })
            .collect())
    }

    /// Mail from people that got no answer, with the recorded reason, in `(since, until]`.
    pub async fn unanswered(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<UnansweredRow>> {
        let rows = sqlx::query(
            "SELECT id, COALESCE(from_addr, ''), COALESCE(subject, ''), branch, no_answer, COALESCE(internal_date, stored_at)
             FROM messages WHERE no_answer IS NOT NULL AND stored_at > $1 AND stored_at <= $2 ORDER BY id",
        )
        .bind(since.map(db_time).unwrap_or_default())
        .bind(until.map_or_else(|| "9999".to_string(), db_time))
        .fetch_all(self.pool.sqlite())
        .await?;
        Ok(rows
            .iter()
            .map(|r| UnansweredRow {
                id: r.get(0),
                from: r.get(1),
                subject: r.get(2),
                branch: r.get(3),
                why: r.get(4),
                received_at: time_col(r, 5),
            })
            .collect())
    }

    /// Records that these messages were moved to the processed folder (one transaction).
    pub async fn mark_moved_many(&self, ids: &[i64]) -> Result<()> {
        self.update_each("UPDATE messages SET moved = TRUE WHERE id = $1", ids, None)
            .await
    }

    /// Why `message` got no automatic answer, when it got none.
    pub async fn no_answer(&self, message: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT no_answer FROM messages WHERE id = $1")
                .bind(message)
                .fetch_optional(self.pool.sqlite())
                .await?
                .flatten(),
        )
    }

    /// Whether a message with this Message-ID reached our intake mailbox (our own copy).
    pub async fn has_message_id(&self, message_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE message_id = $1")
            .bind(message_id)
            .fetch_one(self.pool.sqlite())
            .await?;
        Ok(n > 0)
    }

    /// How many messages have each status and disposition (`-` when none), for `status`.
    pub async fn message_counts(&self) -> Result<Vec<(String, String, i64)>> {
        // Grouped by the raw columns, in the order of the `messages_counts` index (no sort);
        // no disposition reads as `-`, which sorts first as NULL does.
        Ok(sqlx::query(MESSAGE_COUNTS)
            .fetch_all(self.pool.sqlite())
            .await?
            .iter()
            .map(|r| {
                let disposition: Option<String> = r.get(1);
                (
                    r.get(0),
                    disposition.unwrap_or_else(|| "-".into()),
                    r.get(2),
                )
            })
            .collect())
    }
}

/// [`Store::message_counts`]' read.
pub(crate) const MESSAGE_COUNTS: &str = "SELECT status, disposition, COUNT(*) FROM messages GROUP BY status, disposition ORDER BY status, disposition";

/// The same message already stored: same sha256 and, when it has one, the same Message-ID.
async fn find_duplicate(
    conn: &mut SqliteConnection,
    message_id: Option<&str>,
    sha: &str,
) -> Result<Option<i64>> {
    // IS NOT DISTINCT FROM: equal, or both without a Message-ID (SQLite reads it as `IS`).
    let row = sqlx::query("SELECT id FROM messages WHERE raw_sha256 = $1 AND message_id IS NOT DISTINCT FROM $2 ORDER BY id LIMIT 1")
        .bind(sha)
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use chrono::{Duration, Utc};

    async fn store(name: &str) -> (Store, std::path::PathBuf) {
        let root =
            std::env::temp_dir().join(format!("shenbao-messages-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let url = format!("sqlite://{}", root.join("shenbao.db").display());
        (Store::open(&url, &root).await.expect("open"), root)
    }

    /// A message as processing leaves it: from, subject, disposition, whether it waits.
    async fn processed(store: &Store, subject: &str, disposition: &str, staff: bool) -> i64 {
        let raw = format!("Subject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\nx");
        let now = Utc::now();
        let id = store
            .insert_file_message(raw.as_bytes(), None, now)
            .await
            .expect("insert")
            .id();
        sqlx::query(
            "UPDATE messages SET status = 'processed', disposition = ?, needs_staff = ?, reason = '原因', from_addr = 'a@b.test', subject = ? WHERE id = ?",
        )
        .bind(disposition)
        .bind(staff)
        .bind(subject)
        .bind(id)
        .execute(store.pool.sqlite())
        .await
        .expect("update");
        id
    }

    #[tokio::test]
    async fn a_message_record_says_whether_it_waits_and_how_it_was_handled() {
        let (store, root) = store("record").await;
        let q = processed(&store, "请问", "question", true).await;
        let a = processed(&store, "申报", "application", false).await;
        assert!(store.message_record(9999).await.expect("read").is_none());
        let r = store.message_record(q).await.expect("read").expect("there");
        assert_eq!(
            (r.disposition.as_str(), r.waits_for_staff, r.from.as_str()),
            ("question", true, "a@b.test")
        );
        assert_eq!(r.subject, "请问");
        assert!(r.resolved_at.is_none() && r.size > 0);
        let r = store.message_record(a).await.expect("read").expect("there");
        assert!(!r.waits_for_staff);

        let now = Utc::now();
        assert!(
            store
                .resolve(q, Some("已电话答复"), now)
                .await
                .expect("resolve")
        );
        let r = store.message_record(q).await.expect("read").expect("there");
        assert!(!r.waits_for_staff);
        assert_eq!(r.resolved_note.as_deref(), Some("已电话答复"));
        assert!(r.resolved_at.is_some());
        let _ = std::fs::remove_dir_all(&root);
    }

    /// The same bytes are the same message: with the same Message-ID, or both without one
    /// (`IS NOT DISTINCT FROM`); other bytes are a new message.
    #[tokio::test]
    async fn the_same_mail_stored_twice_is_a_duplicate() {
        use super::super::Inserted;
        let (store, root) = store("duplicate").await;
        let now = Utc::now();
        let insert = async |raw: &[u8]| {
            store
                .insert_file_message(raw, None, now)
                .await
                .expect("insert")
        };
        let bare = insert(b"Subject: x\r\n\r\nno id").await;
        assert!(matches!(bare, Inserted::New(_)));
        assert_eq!(
            insert(b"Subject: x\r\n\r\nno id").await,
            Inserted::Duplicate(bare.id())
        );
        let with_id = insert(b"Message-ID: <d@t>\r\n\r\nbody").await;
        assert!(matches!(with_id, Inserted::New(_)));
        assert_eq!(
            insert(b"Message-ID: <d@t>\r\n\r\nbody").await,
            Inserted::Duplicate(with_id.id())
        );
        assert!(matches!(
            insert(b"Subject: y\r\n\r\nno id").await,
            Inserted::New(_)
        ));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn resolved_messages_latest_first_and_limited() {
        let (store, root) = store("resolved").await;
        let now = Utc::now();
        let mut ids = Vec::new();
        for (i, s) in ["一", "二", "三"].iter().enumerate() {
            let id = processed(&store, s, "question", true).await;
            assert!(
                store
                    .resolve(id, None, now + Duration::seconds(i as i64))
                    .await
                    .expect("resolve")
            );
            ids.push(id);
        }
        processed(&store, "四", "question", true).await;
        let got: Vec<i64> = store
            .resolved_messages(2)
            .await
            .expect("list")
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, [ids[2], ids[1]]);
        assert_eq!(store.resolved_messages(10).await.expect("list").len(), 3);
        assert_eq!(store.needs_staff(None, None).await.expect("list").len(), 1);
        let _ = std::fs::remove_dir_all(&root);
    }
}
