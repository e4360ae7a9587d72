//! The `messages` table: every mail as it arrived (from IMAP or a file), stored before
//! anything looks at it, with what processing decided about it and whether it waits for a
//! person. Storing a fetched message also moves its folder's watermark ([`super::mailbox`]) in
//! the same transaction.

use super::mailbox::set_watermark;
use super::{Conn, Result, Store, blobs, time_col};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

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

/// A message as one UID FETCH gave it.
#[derive(Debug, Clone)]
pub struct Fetched<'a> {
    /// Where it is.
    pub key: ImapKey,
    /// Its bytes: the whole mail, or only its header for [`Fetched::own_copy`].
    pub raw: &'a [u8],
    pub internal_date: Option<DateTime<Utc>>,
    /// The copy of a mail we sent, told by its header (`message::is_own_copy`): the header is
    /// stored and the row recorded as processed (`own_copy`) at once — its body is the
    /// outbox's raw mail, so it is neither fetched nor stored twice, nor processed.
    pub own_copy: bool,
}

/// Why an own copy has only its header stored (the `reason` of its row).
pub const OWN_COPY_HEADER_ONLY: &str =
    "本系统所发邮件的存档副本：只取回邮件头（正文即发件箱中的原件）";

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
            .insert_imap_row(tx.conn(), key, blob, internal_date, false, now)
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
        let owned: Vec<Vec<u8>> = messages.iter().map(|m| m.raw.to_vec()).collect();
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
        let one_folder = messages.windows(2).all(|w| {
            (&w[0].key.account, &w[0].key.folder, w[0].key.uidvalidity)
                == (&w[1].key.account, &w[1].key.folder, w[1].key.uidvalidity)
        });
        let out = if one_folder && messages.len() > 1 {
            self.insert_imap_rows(&mut tx, messages, &written, now)
                .await?
        } else {
            let mut out = Vec::with_capacity(messages.len());
            for (m, blob) in messages.iter().zip(&written) {
                out.push(
                    self.insert_imap_row(tx.conn(), &m.key, blob, m.internal_date, m.own_copy, now)
                        .await?,
                );
            }
            out
        };
        tx.commit().await?;
        Ok(out)
    }

    /// [`Store::insert_imap_row`] for every message of one folder's fetch, with the same
    /// outcome, in five statements instead of five per message: each statement is a round
    /// trip to the database's thread or server, and at one per message that was the largest
    /// cost of storing a backlog (issue 16's profile). Messages are numbered in the order
    /// given (UID order), as one by one.
    async fn insert_imap_rows(
        &self,
        tx: &mut super::Tx,
        messages: &[Fetched<'_>],
        written: &[StoredBlob],
        now: DateTime<Utc>,
    ) -> Result<Vec<Inserted>> {
        use std::collections::HashMap;
        let Some(first) = messages.first() else {
            return Ok(Vec::new());
        };
        let (account, folder) = (&first.key.account, &first.key.folder);
        let uidvalidity = i64::from(first.key.uidvalidity);
        let (lo, hi) = messages.iter().fold((u32::MAX, 0), |(lo, hi), m| {
            (lo.min(m.key.uid), hi.max(m.key.uid))
        });
        // Already stored under the same key (fetched again after a crash).
        let stored: HashMap<i64, i64> = on_conn!(tx.conn(), |c| {
            sqlx::query_as(
                "SELECT uid, id FROM messages WHERE account = $1 AND folder = $2 AND uidvalidity = $3 AND uid BETWEEN $4 AND $5",
            )
            .bind(account)
            .bind(folder)
            .bind(uidvalidity)
            .bind(i64::from(lo))
            .bind(i64::from(hi))
            .fetch_all(c)
            .await?
            .into_iter()
            .collect()
        });
        let fresh: Vec<usize> = (0..messages.len())
            .filter(|&i| !stored.contains_key(&i64::from(messages[i].key.uid)))
            .collect();
        let mut out: Vec<Option<Inserted>> = messages
            .iter()
            .map(|m| {
                stored
                    .get(&i64::from(m.key.uid))
                    .map(|&id| Inserted::Duplicate(id))
            })
            .collect();
        if fresh.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        // Their blobs, each once.
        let mut shas: Vec<(&str, u64)> = fresh
            .iter()
            .map(|&i| (written[i].sha256.as_str(), written[i].size))
            .collect();
        shas.sort_unstable();
        shas.dedup_by(|a, b| a.0 == b.0);
        Store::record_blobs(tx.conn(), &shas, now).await?;
        // The same bytes with the same Message-ID stored before: the oldest such row.
        // Built at run time: one `$n` per blob; run on both backends by the tests.
        let sql = format!(
            "SELECT raw_sha256, message_id, MIN(id) FROM messages WHERE raw_sha256 IN ({}) GROUP BY raw_sha256, message_id",
            super::params(1..=shas.len())
        );
        let known: Vec<(String, Option<String>, i64)> = on_conn!(tx.conn(), |c| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for (sha, _) in &shas {
                q = q.bind(*sha);
            }
            q.fetch_all(c).await?
        });
        let mut earlier: HashMap<(&str, Option<&str>), Earlier> = known
            .iter()
            .map(|(sha, mid, id)| ((sha.as_str(), mid.as_deref()), Earlier::Row(*id)))
            .collect();
        // Which are new rows, and which repeat a row (stored, or new in this batch).
        let mut new_rows = Vec::new();
        let mut repeats = Vec::new();
        for &i in &fresh {
            let b = &written[i];
            match earlier.get(&(b.sha256.as_str(), b.message_id.as_deref())) {
                Some(&Earlier::Row(id)) => out[i] = Some(Inserted::Duplicate(id)),
                Some(&Earlier::InBatch(j)) => repeats.push((i, j)),
                None => {
                    earlier.insert(
                        (b.sha256.as_str(), b.message_id.as_deref()),
                        Earlier::InBatch(i),
                    );
                    new_rows.push(i);
                }
            }
        }
        if !new_rows.is_empty() {
            // Built at run time: one row of six parameters per message after the six every
            // row shares; run on both backends by the tests.
            let sql = format!(
                "INSERT INTO messages (source, account, folder, uidvalidity, uid, message_id, raw_sha256, size, internal_date, stored_at, campaign,
                                       status, disposition, reason, processed_at)
                 VALUES {} RETURNING uid, id",
                super::values_rows(6, new_rows.len(), 6, |p| format!(
                    "('imap', $1, $2, $3, ${}, ${}, ${}, ${}, ${}, $4, $5, CASE WHEN ${} THEN 'processed' ELSE 'stored' END, CASE WHEN ${} THEN 'own_copy' END, CASE WHEN ${} THEN $6 END, CASE WHEN ${} THEN $4 END)",
                    p[0], p[1], p[2], p[3], p[4], p[5], p[5], p[5], p[5]
                ))
            );
            let ids: Vec<(i64, i64)> = on_conn!(tx.conn(), |c| {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(account)
                    .bind(folder)
                    .bind(uidvalidity)
                    .bind(db_time(now))
                    .bind(self.campaign())
                    .bind(OWN_COPY_HEADER_ONLY);
                for &i in &new_rows {
                    let (m, b) = (&messages[i], &written[i]);
                    q = q
                        .bind(i64::from(m.key.uid))
                        .bind(b.message_id.as_deref())
                        .bind(&b.sha256)
                        .bind(i64::try_from(b.size).unwrap_or(i64::MAX))
                        .bind(m.internal_date.map(db_time))
                        .bind(m.own_copy);
                }
                q.fetch_all(c).await?
            });
            let ids: HashMap<i64, i64> = ids.into_iter().collect();
            for &i in &new_rows {
                let id = ids
                    .get(&i64::from(messages[i].key.uid))
                    .copied()
                    .ok_or_else(|| {
                        super::StoreError::Db(sqlx::Error::Protocol(format!(
                            "数据库没有返回新存邮件（UID {}）的编号",
                            messages[i].key.uid
                        )))
                    })?;
                out[i] = Some(Inserted::New(id));
            }
        }
        for (i, j) in repeats {
            out[i] = out[j].map(|o| Inserted::Duplicate(o.id()));
        }
        // The watermark after the last message not stored before (it only moves forward).
        if let Some(&last) = fresh.iter().max_by_key(|&&i| messages[i].key.uid) {
            set_watermark(tx.conn(), &messages[last].key, now).await?;
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The row of one fetched message and the watermark after it, inside the caller's
    /// transaction.
    async fn insert_imap_row(
        &self,
        mut conn: Conn<'_>,
        key: &ImapKey,
        blob: &StoredBlob,
        internal_date: Option<DateTime<Utc>>,
        own_copy: bool,
        now: DateTime<Utc>,
    ) -> Result<Inserted> {
        let sha = &blob.sha256;
        let size = i64::try_from(blob.size).unwrap_or(i64::MAX);
        let stored: Option<i64> = on_conn!(conn.re(), |c| {
            sqlx::query_scalar(
            "SELECT id FROM messages WHERE account = $1 AND folder = $2 AND uidvalidity = $3 AND uid = $4",
        )
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .fetch_optional(c)
        .await?
        });
        if let Some(id) = stored {
            return Ok(Inserted::Duplicate(id));
        }
        self.record_blob(
            conn.re(),
            sha,
            usize::try_from(blob.size).unwrap_or(usize::MAX),
            now,
        )
        .await?;
        let mid = blob.message_id.as_deref();
        if let Some(existing) = find_duplicate(conn.re(), mid, sha).await? {
            set_watermark(conn, key, now).await?;
            return Ok(Inserted::Duplicate(existing));
        }
        let id: i64 = on_conn!(conn.re(), |c| {
            sqlx::query_scalar(
            "INSERT INTO messages (source, account, folder, uidvalidity, uid, message_id, raw_sha256, size, internal_date, stored_at, campaign,
                                   status, disposition, reason, processed_at)
             VALUES ('imap', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                     CASE WHEN $11 THEN 'processed' ELSE 'stored' END, CASE WHEN $11 THEN 'own_copy' END,
                     CASE WHEN $11 THEN $12 END, CASE WHEN $11 THEN $9 END) RETURNING id",
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
        .bind(self.campaign())
        .bind(own_copy)
        .bind(OWN_COPY_HEADER_ONLY)
        .fetch_one(c)
        .await?
        });
        set_watermark(conn, key, now).await?;
        Ok(Inserted::New(id))
    }

    /// Records a message too large to fetch: nothing is lost silently, staff see it in status.
    /// Its subject is not read, so it is filed under `campaign`, the one current when it arrived.
    pub async fn insert_too_large(
        &self,
        key: &ImapKey,
        size: u64,
        internal_date: Option<DateTime<Utc>>,
        campaign: &str,
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
        on_conn!(tx.conn(), |c| {
            sqlx::query(
            "INSERT INTO messages (source, account, folder, uidvalidity, uid, raw_sha256, size, internal_date, stored_at, status, disposition, reason, processed_at, campaign)
             VALUES ('imap', $1, $2, $3, $4, $5, $6, $7, $8, 'processed', 'too_large', $9, $8, $10)
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
        .bind(campaign)
        .execute(c)
        .await?
        .rows_affected()
        });
        set_watermark(tx.conn(), key, now).await?;
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
        if let Some(existing) = find_duplicate(tx.conn(), mid.as_deref(), &sha).await? {
            tx.commit().await?;
            return Ok(Inserted::Duplicate(existing));
        }
        let id: i64 = on_conn!(tx.conn(), |c| {
            sqlx::query_scalar(
            "INSERT INTO messages (source, message_id, raw_sha256, size, internal_date, stored_at, campaign) VALUES ('file', $1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(mid.as_deref())
        .bind(&sha)
        .bind(i64::try_from(raw.len()).unwrap_or(i64::MAX))
        .bind(internal_date.map(db_time))
        .bind(db_time(now))
        .bind(self.campaign())
        .fetch_one(c)
        .await?
        });
        tx.commit().await?;
        Ok(Inserted::New(id))
    }

    /// Messages stored but not yet processed (after a crash), oldest first.
    pub async fn pending(&self) -> Result<Vec<i64>> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT id FROM messages WHERE status = 'stored' ORDER BY id"
        )
        .fetch_all(p)
        .await?))
    }

    pub async fn message(&self, id: i64) -> Result<Option<StoredMessage>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT id, raw_sha256, internal_date, stored_at, uid FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(p)
        .await?
        .map(|r| stored_message(&r))))
    }

    /// [`Store::message`] for many ids in one statement per few hundred (the pipeline reads a
    /// fetch's messages at once); an unknown id is absent.
    pub async fn messages(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, StoredMessage>> {
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            // Built at run time: one `$n` per id; run on both backends by the tests.
            let sql = format!(
                "SELECT id, raw_sha256, internal_date, stored_at, uid FROM messages WHERE id IN ({})",
                super::params(1..=chunk.len())
            );
            on_pool!(self, |p| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for &id in chunk {
                    q = q.bind(id);
                }
                for r in q.fetch_all(p).await? {
                    let m = stored_message(&r);
                    out.insert(m.id, m);
                }
            });
        }
        Ok(out)
    }

    /// Processed messages of a folder that are still in it (a crash came before the move).
    pub async fn unmoved(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
    ) -> Result<Vec<(i64, u32)>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT id, uid FROM messages WHERE account = $1 AND folder = $2 AND uidvalidity = $3 AND status = 'processed' AND moved = FALSE AND disposition != 'too_large' ORDER BY uid",
        )
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .fetch_all(p)
        .await?
        .iter()
        .filter_map(|r| Some((r.get(0), u32::try_from(r.get::<i64, _>(1)).ok()?)))
        .collect()
        }))
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
        let found: Vec<i64> = on_pool!(self, |p| {
            sqlx::query_scalar(concat!(
            "SELECT uid FROM messages WHERE account = $1 AND folder = $2 AND uidvalidity = $3 AND uid BETWEEN $4 AND $5 AND ",
            needs_staff!()
        ))
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(lo))
        .bind(i64::from(hi))
        .fetch_all(p)
        .await?
        });
        Ok(found
            .into_iter()
            .filter_map(|uid| u32::try_from(uid).ok())
            .filter(|uid| uids.contains(uid))
            .collect())
    }

    /// Mail waiting for a person that arrived in `(since, until]` (our clock), oldest first.
    pub async fn needs_staff(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<StaffRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(concat!(
            "SELECT m.id, COALESCE(m.from_addr, ''), COALESCE(m.subject, ''), COALESCE(m.reason, ''),
                    COALESCE(m.internal_date, m.stored_at), m.branch, COALESCE(m.disposition, m.status),
                    (SELECT s.suggested_branch FROM submissions s WHERE s.message_id = m.id),
                    (SELECT o.subject FROM outbox o WHERE o.message_id = m.thread_of)
             FROM messages m WHERE m.campaign = $3 AND m.stored_at > $1 AND m.stored_at <= $2 AND ",
            needs_staff!(),
            " ORDER BY m.id"
        ))
        .bind(since.map(db_time).unwrap_or_default())
        .bind(until.map_or_else(|| "9999".to_string(), db_time))
        .bind(self.campaign())
        .fetch_all(p)
        .await?
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
        .collect()
        }))
    }

    /// Message `id` with what was decided about it, for the board's message page.
    pub async fn message_record(&self, id: i64) -> Result<Option<MessageRecord>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(concat!(
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
        .fetch_optional(p)
        .await?
        .map(|r| MessageRecord {
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
        })
        }))
    }

    /// The `limit` mails marked handled last, the latest first.
    pub async fn resolved_messages(&self, limit: i64) -> Result<Vec<ResolvedRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT id, COALESCE(from_addr, ''), COALESCE(subject, ''), COALESCE(disposition, status), COALESCE(reason, ''),
                    branch, COALESCE(internal_date, stored_at), resolved_at, resolved_note
             FROM messages WHERE campaign = $2 AND resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .bind(self.campaign())
        .fetch_all(p)
        .await?
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
        .collect()
        }))
    }

    /// Mail from people that got no answer, with the recorded reason, in `(since, until]`.
    pub async fn unanswered(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<UnansweredRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT id, COALESCE(from_addr, ''), COALESCE(subject, ''), branch, no_answer, COALESCE(internal_date, stored_at)
             FROM messages WHERE campaign = $3 AND no_answer IS NOT NULL AND stored_at > $1 AND stored_at <= $2 ORDER BY id",
        )
        .bind(since.map(db_time).unwrap_or_default())
        .bind(until.map_or_else(|| "9999".to_string(), db_time))
        .bind(self.campaign())
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| UnansweredRow {
            id: r.get(0),
            from: r.get(1),
            subject: r.get(2),
            branch: r.get(3),
            why: r.get(4),
            received_at: time_col(r, 5),
        })
        .collect()
        }))
    }

    /// Records that these messages were moved to the processed folder (one transaction).
    pub async fn mark_moved_many(&self, ids: &[i64]) -> Result<()> {
        self.update_each("UPDATE messages SET moved = TRUE WHERE id = $1", ids, None)
            .await
    }

    /// Why `message` got no automatic answer, when it got none.
    pub async fn no_answer(&self, message: i64) -> Result<Option<String>> {
        let why: Option<Option<String>> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT no_answer FROM messages WHERE id = $1"
        )
        .bind(message)
        .fetch_optional(p)
        .await?);
        Ok(why.flatten())
    }

    /// Whether a message with this Message-ID reached our intake mailbox (our own copy).
    pub async fn has_message_id(&self, message_id: &str) -> Result<bool> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE message_id = $1"
        )
        .bind(message_id)
        .fetch_one(p)
        .await?);
        Ok(n > 0)
    }

    /// How many messages have each status and disposition (`-` when none), for `status`.
    pub async fn message_counts(&self) -> Result<Vec<(String, String, i64)>> {
        // The campaign's messages (a mail not yet read is filed under the campaign current when
        // it was stored, until processing files it under its own), grouped by the raw columns
        // in the order of the `messages_by_campaign` index (no sort);
        // no disposition reads as `-`, which sorts first as NULL does.
        Ok(on_pool!(self, |p| sqlx::query(MESSAGE_COUNTS)
            .bind(self.campaign())
            .fetch_all(p)
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
            .collect()))
    }
}

/// [`Store::message_counts`]' read.
pub(crate) const MESSAGE_COUNTS: &str = "SELECT status, disposition, COUNT(*) FROM messages WHERE campaign = $1 GROUP BY status, disposition ORDER BY status, disposition";

fn stored_message(r: &impl super::Cols) -> StoredMessage {
    StoredMessage {
        id: r.col(0),
        raw_sha256: r.col(1),
        internal_date: r
            .col::<Option<String>>(2)
            .as_deref()
            .and_then(crate::store::parse_db_time),
        stored_at: time_col(r, 3),
        uid: r.col::<Option<i64>>(4).and_then(|u| u32::try_from(u).ok()),
    }
}

/// In a batch, the message a later one repeats: a stored row, or one new in the batch.
#[derive(Debug, Clone, Copy)]
enum Earlier {
    Row(i64),
    InBatch(usize),
}

/// The same message already stored: same sha256 and, when it has one, the same Message-ID.
async fn find_duplicate(
    conn: Conn<'_>,
    message_id: Option<&str>,
    sha: &str,
) -> Result<Option<i64>> {
    // IS NOT DISTINCT FROM: equal, or both without a Message-ID (SQLite reads it as `IS`).
    Ok(on_conn!(conn, |c| {
        sqlx::query_scalar(
        "SELECT id FROM messages WHERE raw_sha256 = $1 AND message_id IS NOT DISTINCT FROM $2 ORDER BY id LIMIT 1"
    )
    .bind(sha)
    .bind(message_id)
    .fetch_optional(c)
    .await?
    }))
}

#[cfg(test)]
mod tests {
    use super::super::{ImapKey, Inserted, Store, blobs::sha256_hex, test_stores};
    use chrono::{DateTime, Duration, TimeZone as _, Utc};

    fn key(uidvalidity: u32, uid: u32) -> ImapKey {
        ImapKey {
            account: "intake".into(),
            folder: "INBOX".into(),
            uidvalidity,
            uid,
        }
    }

    /// Runs one test statement on either backend (`$n` parameters, all text or integers).
    async fn exec(store: &Store, sql: &'static str, text: &[&str], id: i64) {
        on_pool!(store, |p| {
            let mut q = sqlx::query(sql);
            for t in text {
                q = q.bind(*t);
            }
            q.bind(id).execute(p).await.expect(sql).rows_affected()
        });
    }

    /// A message as processing leaves it: from, subject, disposition, whether it waits.
    async fn processed(
        store: &Store,
        subject: &str,
        disposition: &str,
        staff: bool,
        now: DateTime<Utc>,
    ) -> i64 {
        let raw = format!("Subject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\nx");
        let id = store
            .insert_file_message(raw.as_bytes(), None, now)
            .await
            .expect("insert")
            .id();
        on_pool!(store, |p| {
            sqlx::query(
            "UPDATE messages SET status = 'processed', disposition = $1, needs_staff = $2, reason = '原因', from_addr = 'a@b.test', subject = $3 WHERE id = $4",
        )
        .bind(disposition)
        .bind(staff)
        .bind(subject)
        .bind(id)
        .execute(p)
        .await
        .expect("update")
        .rows_affected()
        });
        id
    }

    /// Marks `id` handled as `Store::resolve` does (that statement lives in corrections.rs).
    async fn mark_resolved(store: &Store, id: i64, note: Option<&str>, at: DateTime<Utc>) {
        on_pool!(store, |p| sqlx::query(
            "UPDATE messages SET resolved_at = $1, resolved_note = $2 WHERE id = $3"
        )
        .bind(super::db_time(at))
        .bind(note)
        .bind(id)
        .execute(p)
        .await
        .expect("resolve")
        .rows_affected());
    }

    /// A fetched message is stored once: the same UID again, or the same bytes under a new
    /// UIDVALIDITY, give the first row back; every insert (single, batch, blob written in
    /// parts) moves the watermark; the row reads back as it was stored. On both backends.
    #[tokio::test]
    async fn an_imap_message_is_stored_once_and_moves_the_watermark() {
        for store in test_stores("msg_imap").await {
            let backend = store.backend();
            let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            let arrived = Utc.with_ymd_and_hms(2025, 9, 19, 23, 30, 0).unwrap();
            let one: &[u8] = b"Message-ID: <one@t>\r\nSubject: a\r\n\r\nbody one";
            let two: &[u8] = b"Message-ID: <two@t>\r\nSubject: b\r\n\r\nbody two";
            let first = store
                .insert_imap_message(&key(7, 5), one, Some(arrived), now)
                .await
                .expect("insert");
            let Inserted::New(id1) = first else {
                panic!("{backend}: {first:?}")
            };
            let m = store.message(id1).await.expect("read").expect("there");
            assert_eq!(m.raw_sha256, sha256_hex(one), "{backend}");
            assert_eq!(
                (m.internal_date, m.stored_at, m.uid),
                (Some(arrived), now, Some(5)),
                "{backend}"
            );
            assert!(store.message(id1 + 1000).await.expect("read").is_none());
            // Read with others at once: the same row; an unknown id absent.
            let many = store.messages(&[id1 + 1000, id1]).await.expect("many");
            assert_eq!(many.len(), 1, "{backend}");
            let again = &many[&id1];
            assert_eq!(
                (
                    &again.raw_sha256,
                    again.internal_date,
                    again.stored_at,
                    again.uid
                ),
                (&m.raw_sha256, m.internal_date, m.stored_at, m.uid),
                "{backend}"
            );
            assert_eq!(
                store.mailbox_state("intake", "INBOX").await.expect("state"),
                Some((7, 5)),
                "{backend}"
            );
            assert_eq!(
                store
                    .insert_imap_message(&key(7, 5), one, Some(arrived), now)
                    .await
                    .expect("again"),
                Inserted::Duplicate(id1),
                "{backend}: the same UID"
            );
            assert_eq!(
                store
                    .insert_imap_message(&key(8, 2), one, Some(arrived), now)
                    .await
                    .expect("new uidvalidity"),
                Inserted::Duplicate(id1),
                "{backend}: the same bytes and Message-ID after UIDVALIDITY changed"
            );
            assert_eq!(
                store.mailbox_state("intake", "INBOX").await.expect("state"),
                Some((8, 2)),
                "{backend}: a duplicate still moves the watermark"
            );
            let fetched = |k: ImapKey, raw, internal_date, own_copy| super::Fetched {
                key: k,
                raw,
                internal_date,
                own_copy,
            };
            let copy_header: &[u8] = b"From: intake@x\r\nMessage-ID: <ack-1@shenbao.x>\r\n\r\n";
            let batch = store
                .insert_imap_batch(
                    &[
                        fetched(key(8, 3), two, None, false),
                        fetched(key(8, 4), one, Some(arrived), false),
                        fetched(key(8, 5), copy_header, None, true),
                    ],
                    now,
                )
                .await
                .expect("batch");
            let Inserted::New(id2) = batch[0] else {
                panic!("{backend}: {batch:?}")
            };
            assert_eq!(batch[1], Inserted::Duplicate(id1), "{backend}");
            assert_eq!(
                store.mailbox_state("intake", "INBOX").await.expect("state"),
                Some((8, 5)),
                "{backend}"
            );
            // Our own copy, told by its header: its header stored, recorded as processed, so
            // the pipeline never takes it up; the sender's copy check finds its Message-ID.
            let Inserted::New(copy) = batch[2] else {
                panic!("{backend}: {batch:?}")
            };
            assert!(!store.pending().await.expect("pending").contains(&copy));
            assert!(store.pending().await.expect("pending").contains(&id2));
            let r = store
                .message_record(copy)
                .await
                .expect("read")
                .expect("there");
            assert_eq!(
                (r.status.as_str(), r.disposition.as_str()),
                ("processed", "own_copy"),
                "{backend}"
            );
            assert_eq!(r.reason, super::OWN_COPY_HEADER_ONLY, "{backend}");
            assert!(store.has_message_id("ack-1@shenbao.x").await.expect("copy"));
            let m = store.message(copy).await.expect("read").expect("there");
            assert_eq!(m.raw_sha256, sha256_hex(copy_header), "{backend}");
            let mut w = store.blobs.writer().expect("writer");
            w.write(b"Message-ID: <big@t>\r\n\r\n").expect("write");
            w.write(b"a large body").expect("write");
            let (sha, size) = w.finish().expect("finish");
            let blob = super::StoredBlob {
                sha256: sha.clone(),
                size,
                message_id: Some("big@t".into()),
            };
            let Inserted::New(id3) = store
                .insert_imap_blob(&key(8, 9), &blob, None, now)
                .await
                .expect("blob")
            else {
                panic!("{backend}: not new")
            };
            assert_eq!(
                store
                    .message(id3)
                    .await
                    .expect("read")
                    .expect("there")
                    .raw_sha256,
                sha
            );
            assert_eq!(
                store.mailbox_state("intake", "INBOX").await.expect("state"),
                Some((8, 9)),
                "{backend}"
            );
            assert_eq!(
                store.pending().await.expect("pending"),
                [id1, id2, id3],
                "{backend}"
            );
            assert!(
                store.has_message_id("two@t").await.expect("has"),
                "{backend}"
            );
            assert!(!store.has_message_id("three@t").await.expect("has"));
            assert_eq!(
                store.message_counts().await.expect("counts"),
                [
                    ("processed".to_string(), "own_copy".to_string(), 1),
                    ("stored".to_string(), "-".to_string(), 3)
                ],
                "{backend}"
            );
        }
    }

    /// Mail too large to fetch leaves a placeholder row that waits for staff, is never moved,
    /// moves the watermark, and is recorded once. On both backends.
    #[tokio::test]
    async fn a_message_too_large_leaves_a_placeholder_for_staff() {
        for store in test_stores("msg_large").await {
            let store = store.for_campaign("2025-autumn");
            let backend = store.backend();
            let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            for _ in 0..2 {
                store
                    .insert_too_large(&key(7, 12), 99_000_000, None, "2025-autumn", now)
                    .await
                    .expect("too large");
            }
            assert_eq!(
                store.mailbox_state("intake", "INBOX").await.expect("state"),
                Some((7, 12)),
                "{backend}"
            );
            let staff = store.needs_staff(None, None).await.expect("staff");
            assert_eq!(staff.len(), 1, "{backend}: recorded once");
            assert_eq!(staff[0].disposition, "too_large", "{backend}");
            assert!(staff[0].reason.contains("99000000"), "{}", staff[0].reason);
            assert_eq!(staff[0].received_at, now, "{backend}");
            assert_eq!(
                crate::store::test_campaigns(&store, "messages", "TRUE").await,
                ["2025-autumn"],
                "{backend}"
            );
            let m = store
                .message(staff[0].id)
                .await
                .expect("read")
                .expect("row");
            let placeholder = store.blobs.get(&m.raw_sha256).expect("blob");
            assert!(placeholder.starts_with(b"X-Shenbao-Placeholder: message 12 in INBOX"));
            assert_eq!(
                store
                    .staff_uids("intake", "INBOX", 7, &[11, 12, 13])
                    .await
                    .expect("uids"),
                [12].into_iter().collect(),
                "{backend}"
            );
            assert!(
                store
                    .staff_uids("intake", "INBOX", 8, &[12])
                    .await
                    .expect("uids")
                    .is_empty()
            );
            assert!(
                store
                    .staff_uids("intake", "INBOX", 7, &[])
                    .await
                    .expect("uids")
                    .is_empty()
            );
            assert!(
                store
                    .unmoved("intake", "INBOX", 7)
                    .await
                    .expect("unmoved")
                    .is_empty()
            );
            assert!(
                store.pending().await.expect("pending").is_empty(),
                "{backend}"
            );
            assert_eq!(
                store.message_counts().await.expect("counts"),
                [("processed".to_string(), "too_large".to_string(), 1)],
                "{backend}"
            );
        }
    }

    /// Processed messages still in their folder are listed until marked moved.
    #[tokio::test]
    async fn processed_messages_wait_to_be_moved() {
        for store in test_stores("msg_unmoved").await {
            let backend = store.backend();
            let now = Utc::now();
            let mut ids = Vec::new();
            for uid in [3, 1, 2] {
                let raw = format!("Message-ID: <{uid}@t>\r\n\r\nx");
                ids.push(
                    store
                        .insert_imap_message(&key(7, uid), raw.as_bytes(), None, now)
                        .await
                        .expect("insert")
                        .id(),
                );
            }
            assert!(
                store
                    .unmoved("intake", "INBOX", 7)
                    .await
                    .expect("unmoved")
                    .is_empty()
            );
            for &id in &ids {
                exec(
                    &store,
                    "UPDATE messages SET status = 'processed', disposition = $1 WHERE id = $2",
                    &["application"],
                    id,
                )
                .await;
            }
            assert_eq!(
                store.unmoved("intake", "INBOX", 7).await.expect("unmoved"),
                [(ids[1], 1), (ids[2], 2), (ids[0], 3)],
                "{backend}: in UID order"
            );
            assert!(
                store
                    .unmoved("intake", "INBOX", 8)
                    .await
                    .expect("unmoved")
                    .is_empty()
            );
            exec(
                &store,
                "UPDATE messages SET moved = TRUE WHERE id = $1",
                &[],
                ids[1],
            )
            .await;
            assert_eq!(
                store.unmoved("intake", "INBOX", 7).await.expect("unmoved"),
                [(ids[2], 2), (ids[0], 3)],
                "{backend}"
            );
        }
    }

    #[tokio::test]
    async fn a_message_record_says_whether_it_waits_and_how_it_was_handled() {
        for store in test_stores("msg_record").await {
            let backend = store.backend();
            let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            let q = processed(&store, "请问", "question", true, now).await;
            let a = processed(&store, "申报", "application", false, now).await;
            assert!(store.message_record(9999).await.expect("read").is_none());
            let r = store.message_record(q).await.expect("read").expect("there");
            assert_eq!(
                (r.disposition.as_str(), r.waits_for_staff, r.from.as_str()),
                ("question", true, "a@b.test"),
                "{backend}"
            );
            assert_eq!(
                (r.subject.as_str(), r.status.as_str()),
                ("请问", "processed")
            );
            assert_eq!(
                (r.reason.as_str(), r.received_at),
                ("原因", now),
                "{backend}"
            );
            assert!(r.resolved_at.is_none() && r.size > 0, "{backend}");
            assert!(r.thread_subject.is_none() && r.suggested_branch.is_none());
            let r = store.message_record(a).await.expect("read").expect("there");
            assert!(!r.waits_for_staff, "{backend}");

            let later = now + Duration::minutes(5);
            mark_resolved(&store, q, Some("已电话答复"), later).await;
            let r = store.message_record(q).await.expect("read").expect("there");
            assert!(!r.waits_for_staff, "{backend}");
            assert_eq!(r.resolved_note.as_deref(), Some("已电话答复"));
            assert_eq!(r.resolved_at, Some(later), "{backend}");
        }
    }

    /// One fetch stored in one go gives what storing its messages one by one gives: new rows
    /// numbered in UID order, a UID already stored (fetched again after a crash) its row, the
    /// same bytes and Message-ID stored before or earlier in the same fetch the older row, a
    /// message without Message-ID repeated likewise, own copies processed at once, and the
    /// watermark after the last message not stored before. On both backends, against a store
    /// filled one by one with the same mails.
    #[tokio::test]
    async fn a_fetch_stored_at_once_is_stored_as_one_by_one() {
        let mails: [&[u8]; 5] = [
            b"Message-ID: <a@t>\r\n\r\none",
            b"Message-ID: <b@t>\r\n\r\ntwo",
            b"Subject: no id\r\n\r\nthree",
            b"From: intake@x\r\nMessage-ID: <ack@shenbao.x>\r\n\r\n",
            b"Message-ID: <c@t>\r\n\r\nfour",
        ];
        // (uid, mail, own copy): uid 3 and 4 stored before the fetch (3 under the same UID,
        // 4's bytes under an older UIDVALIDITY); 6 repeats 2 and 8 repeats 5 within the fetch;
        // 7 has the bytes of 1 but another Message-ID.
        let fetch: [(u32, usize, bool); 8] = [
            (2, 0, false),
            (3, 1, false),
            (4, 4, false),
            (5, 2, false),
            (6, 0, false),
            (7, 3, true),
            (8, 2, false),
            (9, 1, false),
        ];
        let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
        let mut results = Vec::new();
        for at_once in [false, true] {
            for store in test_stores(if at_once { "msg_batch" } else { "msg_single" }).await {
                let backend = store.backend();
                let before3 = store
                    .insert_imap_message(&key(7, 3), mails[1], None, now)
                    .await
                    .expect("before");
                let before4 = store
                    .insert_imap_message(&key(6, 40), mails[4], None, now)
                    .await
                    .expect("before");
                // Rewound below the fetch, as a backfill does.
                store
                    .set_mailbox_state("intake", "INBOX", 7, 1, now)
                    .await
                    .expect("rewind");
                let fetched: Vec<super::Fetched> = fetch
                    .iter()
                    .map(|&(uid, mail, own_copy)| super::Fetched {
                        key: key(7, uid),
                        raw: mails[mail],
                        internal_date: None,
                        own_copy,
                    })
                    .collect();
                for f in &fetched {
                    store
                        .blobs
                        .put(f.raw)
                        .expect("blob for the one-by-one store");
                }
                let got: Vec<Inserted> = if at_once {
                    store.insert_imap_batch(&fetched, now).await.expect("batch")
                } else {
                    let mut got = Vec::new();
                    for f in &fetched {
                        let blob = super::StoredBlob {
                            sha256: sha256_hex(f.raw),
                            size: f.raw.len() as u64,
                            message_id: super::raw_message_id(f.raw),
                        };
                        let mut tx = store.begin_write().await.expect("begin");
                        got.push(
                            store
                                .insert_imap_row(
                                    tx.conn(),
                                    &f.key,
                                    &blob,
                                    f.internal_date,
                                    f.own_copy,
                                    now,
                                )
                                .await
                                .expect("row"),
                        );
                        tx.commit().await.expect("commit");
                    }
                    got
                };
                // Ids relative to the first row, so both stores compare.
                let base = before3.id();
                let shape: Vec<(bool, i64)> = got
                    .iter()
                    .map(|i| (matches!(i, Inserted::New(_)), i.id() - base))
                    .collect();
                assert_eq!(got[1], Inserted::Duplicate(before3.id()), "{backend}");
                assert_eq!(got[2], Inserted::Duplicate(before4.id()), "{backend}");
                assert_eq!(got[4], Inserted::Duplicate(got[0].id()), "{backend}");
                assert_eq!(got[6], Inserted::Duplicate(got[3].id()), "{backend}");
                assert!(matches!(got[5], Inserted::New(_)), "{backend}");
                let new_ids: Vec<i64> = got
                    .iter()
                    .filter_map(|i| match i {
                        Inserted::New(id) => Some(*id),
                        Inserted::Duplicate(_) => None,
                    })
                    .collect();
                assert!(new_ids.is_sorted(), "{backend}: {new_ids:?}");
                let pending = store.pending().await.expect("pending");
                assert!(pending.contains(&got[0].id()) && !pending.contains(&got[5].id()));
                let watermark = store.mailbox_state("intake", "INBOX").await.expect("state");
                let blobs: i64 =
                    on_pool!(store, |p| sqlx::query_scalar("SELECT COUNT(*) FROM blobs")
                        .fetch_one(p)
                        .await
                        .expect("count"));
                results.push((at_once, backend, shape, watermark, blobs));
            }
        }
        let (single, batch): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| !r.0);
        assert!(!batch.is_empty());
        for (s, b) in single.iter().zip(&batch) {
            assert_eq!((s.1, &s.2, s.3, s.4), (b.1, &b.2, b.3, b.4));
            assert_eq!(b.3, Some((7, 9)));
        }
    }

    /// The same bytes are the same message: with the same Message-ID, or both without one
    /// (`IS NOT DISTINCT FROM`); other bytes are a new message.
    #[tokio::test]
    async fn the_same_mail_stored_twice_is_a_duplicate() {
        for store in test_stores("msg_duplicate").await {
            let backend = store.backend();
            let now = Utc::now();
            let insert = async |raw: &[u8]| {
                store
                    .insert_file_message(raw, None, now)
                    .await
                    .expect("insert")
            };
            let bare = insert(b"Subject: x\r\n\r\nno id").await;
            assert!(matches!(bare, Inserted::New(_)), "{backend}");
            assert_eq!(
                insert(b"Subject: x\r\n\r\nno id").await,
                Inserted::Duplicate(bare.id()),
                "{backend}"
            );
            let with_id = insert(b"Message-ID: <d@t>\r\n\r\nbody").await;
            assert!(matches!(with_id, Inserted::New(_)), "{backend}");
            assert_eq!(
                insert(b"Message-ID: <d@t>\r\n\r\nbody").await,
                Inserted::Duplicate(with_id.id()),
                "{backend}"
            );
            assert!(matches!(
                insert(b"Subject: y\r\n\r\nno id").await,
                Inserted::New(_)
            ));
            let m = store
                .message(with_id.id())
                .await
                .expect("read")
                .expect("row");
            assert_eq!(m.uid, None, "{backend}: a file has no UID");
            assert!(store.has_message_id("d@t").await.expect("has"));
            assert_eq!(store.pending().await.expect("pending").len(), 3);
        }
    }

    #[tokio::test]
    async fn resolved_messages_latest_first_and_limited() {
        for store in test_stores("msg_resolved").await {
            let backend = store.backend();
            let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            let mut ids = Vec::new();
            for (i, s) in ["一", "二", "三"].iter().enumerate() {
                let id = processed(&store, s, "question", true, now).await;
                mark_resolved(&store, id, Some(s), now + Duration::seconds(i as i64)).await;
                ids.push(id);
            }
            let open = processed(&store, "四", "question", true, now).await;
            let got = store.resolved_messages(2).await.expect("list");
            assert_eq!(
                got.iter().map(|r| r.id).collect::<Vec<_>>(),
                [ids[2], ids[1]],
                "{backend}"
            );
            assert_eq!(got[0].note.as_deref(), Some("三"), "{backend}");
            assert_eq!(got[0].resolved_at, now + Duration::seconds(2));
            assert_eq!(
                (got[0].disposition.as_str(), got[0].subject.as_str()),
                ("question", "三")
            );
            assert_eq!(store.resolved_messages(10).await.expect("list").len(), 3);
            let staff = store.needs_staff(None, None).await.expect("list");
            assert_eq!(
                staff.iter().map(|r| r.id).collect::<Vec<_>>(),
                [open],
                "{backend}"
            );
            assert_eq!(
                (staff[0].from.as_str(), staff[0].subject.as_str()),
                ("a@b.test", "四")
            );
        }
    }

    /// `needs_staff` and `unanswered` read the window `(since, until]` of our clock, and
    /// `no_answer` the reason recorded on one message.
    #[tokio::test]
    async fn staff_and_unanswered_mail_are_read_by_window() {
        for store in test_stores("msg_window").await {
            let backend = store.backend();
            let t0 = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            let early = processed(&store, "早", "question", true, t0).await;
            let late = processed(&store, "晚", "reply", true, t0 + Duration::hours(2)).await;
            let quiet = processed(&store, "静", "application", false, t0).await;
            exec(
                &store,
                "UPDATE messages SET no_answer = $1, branch = $2 WHERE id = $3",
                &["发件人不在名单", "支部甲"],
                quiet,
            )
            .await;
            let ids = |rows: Vec<super::StaffRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
            assert_eq!(
                ids(store.needs_staff(None, None).await.expect("all")),
                [early, late],
                "{backend}"
            );
            assert_eq!(
                ids(store.needs_staff(Some(t0), None).await.expect("since")),
                [late],
                "{backend}: since is exclusive"
            );
            assert_eq!(
                ids(store.needs_staff(None, Some(t0)).await.expect("until")),
                [early],
                "{backend}: until is inclusive"
            );
            let un = store.unanswered(None, None).await.expect("unanswered");
            assert_eq!(un.len(), 1, "{backend}");
            assert_eq!(
                (un[0].id, un[0].why.as_str(), un[0].branch.as_deref()),
                (quiet, "发件人不在名单", Some("支部甲")),
                "{backend}"
            );
            assert_eq!(un[0].received_at, t0);
            assert!(
                store
                    .unanswered(Some(t0), None)
                    .await
                    .expect("unanswered")
                    .is_empty()
            );
            assert_eq!(
                store.no_answer(quiet).await.expect("why").as_deref(),
                Some("发件人不在名单"),
                "{backend}"
            );
            assert_eq!(store.no_answer(early).await.expect("why"), None);
            assert_eq!(store.no_answer(9999).await.expect("why"), None);
            let mut counts = store.message_counts().await.expect("counts");
            counts.sort();
            assert_eq!(
                counts,
                [
                    ("processed".to_string(), "application".to_string(), 1),
                    ("processed".to_string(), "question".to_string(), 1),
                    ("processed".to_string(), "reply".to_string(), 1),
                ],
                "{backend}"
            );
        }
    }
}
