//! The store: SQLite through sqlx (WAL, versioned migrations from `migrations/`) plus the
//! content-addressed blob directory.
//!
//! The rule that keeps mail from being lost: bytes first, then the row that names them, then
//! the watermark, all before anything else looks at the message. Processing happens after, in
//! its own transaction, and is repeatable: a crash between the two leaves a `stored` message
//! that the next start processes.

pub mod attachments;
pub mod blobs;
pub mod corrections;

pub mod ops;
pub mod register;
pub mod submissions;
pub mod threads;

use crate::clock::db_time;

/// The SQL condition (on `messages`) of mail that waits for a person until staff resolve it:
/// questions, replies, unrecognised branches, failures and mail too large to read. A macro, so
/// queries can `concat!` it into their text.
#[macro_export]
macro_rules! needs_staff {
    () => {
        "((needs_staff = 1 OR status = 'failed' OR disposition = 'too_large') AND resolved_at IS NULL)"
    };
}
use blobs::BlobDir;
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("数据库错误：{0}")]
    Db(#[from] sqlx::Error),
    #[error("数据库迁移失败：{0}。请检查数据库文件是否被其他版本的 shenbao 修改过。")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("读写数据目录失败：{0}。请检查 [storage] data_dir 的权限与磁盘空间。")]
    Io(#[from] std::io::Error),
    #[error(
        "数据库 {0} 不存在：请检查配置中的 [storage] data_dir 或 [database] url 是否写对；全新安装请先运行 `shenbao run` 建立数据库。"
    )]
    Missing(PathBuf),
    #[error(
        "数据库 {path} 是旧版本的结构（第 {have} 版，本程序需要第 {want} 版）：请先运行一次 `shenbao run`（启动时自动升级数据库），再执行本命令。"
    )]
    Outdated { path: PathBuf, have: i64, want: i64 },
    #[error(
        "数据库 {path} 由更新版本的 shenbao 写过（第 {have} 版，本程序只认识到第 {want} 版）：请改用新版本的 shenbao。"
    )]
    Newer { path: PathBuf, have: i64, want: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The migrations, embedded so the binary carries its schema wherever it is installed.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "fields",
        include_str!("../../migrations/0002_fields.sql"),
    ),
    (
        3,
        "ledger",
        include_str!("../../migrations/0003_ledger.sql"),
    ),
    (
        4,
        "reviews",
        include_str!("../../migrations/0004_reviews.sql"),
    ),
    (
        5,
        "conversations",
        include_str!("../../migrations/0005_conversations.sql"),
    ),
    (
        7,
        "branch_ledger_and_summary_role",
        include_str!("../../migrations/0007_branch_ledger_and_summary_role.sql"),
    ),
    (10, "ops", include_str!("../../migrations/0010_ops.sql")),
];

#[cfg(test)]
mod tests {
    /// The database with its WAL and SHM, the blob directories and the blobs (written whole or
    /// in parts) are private to the service user, whatever the umask.
    #[cfg(unix)]
    #[tokio::test]
    async fn everything_the_store_creates_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions()
                .mode()
                & 0o777
        };
        let root = std::env::temp_dir().join(format!("shenbao-store-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("data");
        let db = root.join("db/shenbao.db");
        let store = super::Store::open(&format!("sqlite://{}", db.display()), &data)
            .await
            .expect("open");
        let sha = store.blobs.put(b"13800000000").expect("put");
        let mut w = store.blobs.writer().expect("writer");
        w.write(b"a whole mail").expect("write");
        let (sha2, _) = w.finish().expect("finish");
        for d in [&data, &root.join("db"), &data.join("blobs")] {
            assert_eq!(mode(d), 0o700, "directory {}", d.display());
        }
        for f in [
            db.clone(),
            root.join("db/shenbao.db-wal"),
            root.join("db/shenbao.db-shm"),
            store.blobs.path_of(&sha),
            store.blobs.path_of(&sha2),
        ] {
            assert_eq!(mode(&f), 0o600, "file {}", f.display());
        }
        assert_eq!(
            mode(store.blobs.path_of(&sha).parent().expect("dir")),
            0o700
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Version 7 on a database written by version 4: 活动总结 files stored as `case_study` become
    /// `activity_summary`, 工作案例 files stay, and old ledger rows keep their keys with no branch.
    #[tokio::test]
    async fn version_7_relabels_old_activity_summaries() {
        use std::str::FromStr;
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:")
            .expect("url")
            .foreign_keys(false);
        let pool = sqlx::SqlitePool::connect_with(opts).await.expect("db");
        for (version, _, sql) in super::MIGRATIONS.iter().filter(|(v, _, _)| *v < 7) {
            sqlx::raw_sql(*sql)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        for (i, name) in [
            "某支部活动总结.docx",
            "活動總結.doc",
            "工作案例.docx",
            "工作案例与活动总结.docx",
            "结题报告.docx",
        ]
        .iter()
        .enumerate()
        {
            let role = if i == 4 {
                "closure_report"
            } else {
                "case_study"
            };
            sqlx::query(
                "INSERT INTO attachments (message_id, ordinal, filename, safe_name, content_type, format, role, size, sha256) VALUES (1, ?, ?, ?, 'application/octet-stream', 'docx', ?, 1, 'x')",
            )
            .bind(i as i64)
            .bind(*name)
            .bind(*name)
            .bind(role)
            .execute(&pool)
            .await
            .expect("old row");
        }
        sqlx::query(
            "INSERT INTO ledger (key, kind, rule, recipient, created_at) VALUES ('remind:r:2025-09-27T15:59:59Z:604800:a@b.cn', 'reminder', 'r', 'a@b.cn', '2025-09-20T01:00:00Z')",
        )
        .execute(&pool)
        .await
        .expect("old ledger row");
        let (_, _, v7) = super::MIGRATIONS
            .iter()
            .find(|(v, _, _)| *v == 7)
            .expect("version 7");
        sqlx::raw_sql(*v7).execute(&pool).await.expect("version 7");
        let roles: Vec<(String, String)> =
            sqlx::query_as("SELECT filename, role FROM attachments ORDER BY ordinal")
                .fetch_all(&pool)
                .await
                .expect("roles");
        let roles: Vec<&str> = roles.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            roles,
            [
                "activity_summary",
                "activity_summary",
                "case_study",
                "case_study",
                "closure_report"
            ]
        );
        let branch: Option<String> = sqlx::query_scalar("SELECT branch FROM ledger")
            .fetch_one(&pool)
            .await
            .expect("ledger");
        assert_eq!(branch, None);
    }

    /// Every file in migrations/ is embedded, in order: a migration added to the directory but
    /// not to MIGRATIONS would silently never run.
    #[test]
    fn every_migration_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), super::MIGRATIONS.len(), "{files:?}");
        for (file, (version, _, _)) in files.iter().zip(super::MIGRATIONS) {
            assert!(
                file.starts_with(&format!("{version:04}_")),
                "{file} vs version {version}"
            );
        }
    }
}

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    (*d).into(),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect(),
    )
}

#[derive(Debug, Clone)]
pub struct Store {
    pub pool: SqlitePool,
    pub blobs: BlobDir,
}

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

fn time_col(r: &sqlx::sqlite::SqliteRow, i: usize) -> DateTime<Utc> {
    crate::clock::parse_db_time(&r.get::<String, _>(i)).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub message_id: String,
    pub to_addr: String,
    /// A copy recipient (also in the mail's `Cc` header).
    pub cc_addr: Option<String>,
    pub raw: Vec<u8>,
    pub attempts: i64,
    /// A send was in flight when the daemon died: it may or may not have reached the server.
    pub unconfirmed: bool,
}

/// The file of a `sqlite:` URL (`None` for an in-memory database).
fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The schema version this program writes and reads.
/// A write transaction, opened by [`Store::begin_write`]. Everything that must be written
/// together (a message's decision, a reminder and its ledger key) takes `&mut Tx`; nothing
/// outside `store/` sees which database is underneath, so a second backend can stand behind
/// the same type. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx(sqlx::Transaction<'static, sqlx::Sqlite>);

impl Tx {
    pub async fn commit(self) -> Result<()> {
        Ok(self.0.commit().await?)
    }

    pub async fn rollback(self) -> Result<()> {
        Ok(self.0.rollback().await?)
    }

    /// The connection, for the store's own statements.
    #[allow(dead_code)] // taken into use as the statements outside store/ move in
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
}

// Transitional, while the last statements outside `store/` move in: lets `&mut *tx` still
// reach the connection. Removed when `grep -rn sqlx src` finds nothing outside `store/`.
impl std::ops::Deref for Tx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
}

pub fn schema_version() -> i64 {
    MIGRATIONS.iter().map(|(v, _, _)| *v).max().unwrap_or(0)
}

impl Store {
    /// Opens an existing database for the commands that only read (`status`, `export`,
    /// `show`, the dry runs, `outbox list`): read-only, nothing created, nothing migrated. A
    /// wrong `data_dir` then says so instead of showing an empty campaign, and an old schema
    /// asks for `shenbao run` (which migrates) instead of being changed behind staff's back.
    pub async fn open_existing(database_url: &str, data_dir: &Path) -> Result<Store> {
        let file = sqlite_file(database_url);
        if let Some(f) = &file
            && !f.is_file()
        {
            return Err(StoreError::Missing(f.clone()));
        }
        let opts = SqliteConnectOptions::from_str(database_url)?
            .create_if_missing(false)
            .read_only(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let have: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success = 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        let want = schema_version();
        let path = file.unwrap_or_else(|| PathBuf::from(database_url));
        if have < want {
            return Err(StoreError::Outdated { path, have, want });
        }
        if have > want {
            return Err(StoreError::Newer { path, have, want });
        }
        Ok(Store {
            pool,
            blobs: BlobDir::new(data_dir.join("blobs")),
        })
    }

    /// Opens (creating when missing) the database and the data directory, and migrates.
    pub async fn open(database_url: &str, data_dir: &Path) -> Result<Store> {
        crate::fsmode::create_dir_all(data_dir)?;
        if let Some(path) = database_url
            .strip_prefix("sqlite://")
            .or_else(|| database_url.strip_prefix("sqlite:"))
            .map(|p| Path::new(p.split('?').next().unwrap_or(p)))
            .filter(|p| !p.as_os_str().is_empty() && *p != Path::new(":memory:"))
        {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::fsmode::create_dir_all(parent)?;
            }
            // Created here 0600, before SQLite sees it: SQLite gives its `-wal` and `-shm`
            // files the database file's mode, so they are private too.
            match crate::fsmode::create_new(path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e.into()),
                _ => {}
            }
        }
        let opts = SqliteConnectOptions::from_str(database_url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit survives power loss, not only a crashed process. The message has
            // already been moved on the server by the time we rely on the row.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // 16 MiB of page cache per connection instead of SQLite's 2 MiB: a campaign's
            // database reaches ~90 MB at 10,000 mails and its indexes should stay in memory.
            .pragma("cache_size", "-16384")
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        migrator().run(&pool).await?;
        Ok(Store {
            pool,
            blobs: BlobDir::new(data_dir.join("blobs")),
        })
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock up front: a deferred
    /// transaction that reads first and writes later cannot be upgraded while another
    /// connection writes (SQLITE_BUSY / BUSY_SNAPSHOT, which the busy timeout does not cover).
    pub async fn begin_write(&self) -> Result<Tx> {
        Ok(Tx(self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }

    /// Writes bytes durably to the blob directory (outside any transaction: the file must
    /// exist before a row names it, and fsync should not hold the write lock).
    pub async fn write_blob(&self, bytes: &[u8]) -> Result<String> {
        let blobs = self.blobs.clone();
        let owned = bytes.to_vec();
        let sha = tokio::task::spawn_blocking(move || blobs.put(&owned))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(sha)
    }

    /// Records a blob written by [`Store::write_blob`] (the row may already exist).
    pub async fn record_blob(
        &self,
        conn: &mut SqliteConnection,
        sha: &str,
        size: usize,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT OR IGNORE INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)")
            .bind(sha)
            .bind(size as i64)
            .bind(db_time(now))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The watermark of a folder: (UIDVALIDITY, last committed UID).
    pub async fn mailbox_state(&self, account: &str, folder: &str) -> Result<Option<(u32, u32)>> {
        let row = sqlx::query(
            "SELECT uidvalidity, last_uid FROM mailbox_state WHERE account = ? AND folder = ?",
        )
        .bind(account)
        .bind(folder)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            (
                u32::try_from(r.get::<i64, _>(0)).unwrap_or(0),
                u32::try_from(r.get::<i64, _>(1)).unwrap_or(0),
            )
        }))
    }

    pub async fn set_mailbox_state(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let key = ImapKey {
            account: account.to_string(),
            folder: folder.to_string(),
            uidvalidity,
            uid: last_uid,
        };
        set_watermark(&mut *self.pool.acquire().await?, &key, now).await
    }

    /// Lowers the watermark of a folder to `last_uid` (`--backfill-since` on a later start),
    /// which [`Store::set_mailbox_state`] never does: the folder is read again from there, and
    /// mail already stored is recognised as such.
    pub async fn rewind_mailbox_state(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE mailbox_state SET last_uid = ?, updated_at = ? WHERE account = ? AND folder = ? AND uidvalidity = ? AND last_uid > ?",
        )
        .bind(i64::from(last_uid))
        .bind(db_time(now))
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(last_uid))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

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
            .insert_imap_row(&mut tx, key, blob, internal_date, now)
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
                self.insert_imap_row(&mut tx, key, blob, *internal_date, now)
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
            "SELECT id FROM messages WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?",
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
            &mut *tx,
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
        let id = sqlx::query(
            "INSERT INTO messages (source, account, folder, uidvalidity, uid, message_id, raw_sha256, size, internal_date, stored_at)
             VALUES ('imap', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
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
        self.record_blob(&mut tx, &sha, placeholder.len(), now)
            .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO messages (source, account, folder, uidvalidity, uid, raw_sha256, size, internal_date, stored_at, status, disposition, reason, processed_at)
             VALUES ('imap', ?, ?, ?, ?, ?, ?, ?, ?, 'processed', 'too_large', ?, ?)",
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
        .bind(db_time(now))
        .execute(&mut *tx)
        .await?;
        set_watermark(&mut tx, key, now).await?;
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
        self.record_blob(&mut tx, &sha, raw.len(), now).await?;
        let mid = raw_message_id(raw);
        if let Some(existing) = find_duplicate(&mut tx, mid.as_deref(), &sha).await? {
            tx.commit().await?;
            return Ok(Inserted::Duplicate(existing));
        }
        let id = sqlx::query(
            "INSERT INTO messages (source, message_id, raw_sha256, size, internal_date, stored_at) VALUES ('file', ?, ?, ?, ?, ?)",
        )
        .bind(mid)
        .bind(&sha)
        .bind(raw.len() as i64)
        .bind(internal_date.map(db_time))
        .bind(db_time(now))
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        tx.commit().await?;
        Ok(Inserted::New(id))
    }

    /// Messages stored but not yet processed (after a crash), oldest first.
    pub async fn pending(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM messages WHERE status = 'stored' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn message(&self, id: i64) -> Result<Option<StoredMessage>> {
        let row = sqlx::query(
            "SELECT id, raw_sha256, internal_date, stored_at, uid FROM messages WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| StoredMessage {
            id: r.get(0),
            raw_sha256: r.get(1),
            internal_date: r
                .get::<Option<String>, _>(2)
                .as_deref()
                .and_then(crate::clock::parse_db_time),
            stored_at: crate::clock::parse_db_time(&r.get::<String, _>(3)).unwrap_or_default(),
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
            "SELECT id, uid FROM messages WHERE account = ? AND folder = ? AND uidvalidity = ? AND status = 'processed' AND moved = 0 AND disposition != 'too_large' ORDER BY uid",
        )
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .fetch_all(&self.pool)
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
            "SELECT uid FROM messages WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid BETWEEN ? AND ? AND ",
            needs_staff!()
        ))
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(lo))
        .bind(i64::from(hi))
        .fetch_all(&self.pool)
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
             FROM messages m WHERE m.stored_at > ? AND m.stored_at <= ? AND ",
            needs_staff!(),
            " ORDER BY m.id"
        ))
        .bind(since.map(db_time).unwrap_or_default())
        .bind(until.map_or_else(|| "9999".to_string(), db_time))
        .fetch_all(&self.pool)
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

    /// Mail from people that got no answer, with the recorded reason, in `(since, until]`.
    pub async fn unanswered(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<UnansweredRow>> {
        let rows = sqlx::query(
            "SELECT id, COALESCE(from_addr, ''), COALESCE(subject, ''), branch, no_answer, COALESCE(internal_date, stored_at)
             FROM messages WHERE no_answer IS NOT NULL AND stored_at > ? AND stored_at <= ? ORDER BY id",
        )
        .bind(since.map(db_time).unwrap_or_default())
        .bind(until.map_or_else(|| "9999".to_string(), db_time))
        .fetch_all(&self.pool)
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

    /// Records that these messages were moved to the processed folder (one transaction).
    pub async fn mark_moved_many(&self, ids: &[i64]) -> Result<()> {
        self.update_each("UPDATE messages SET moved = 1 WHERE id = ?", ids, None)
            .await
    }

    /// Queued mails whose time has come, oldest first.
    pub async fn due_outbox(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxRow>> {
        self.due_outbox_among(now, limit, None).await
    }

    /// [`Store::due_outbox`], only among the ids in `only` when given (what a command queued
    /// and now sends at once, leaving the rest to the daemon).
    pub async fn due_outbox_among(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        only: Option<&[i64]>,
    ) -> Result<Vec<OutboxRow>> {
        let only = only.map(|ids| serde_json::Value::from(ids.to_vec()).to_string());
        let rows = sqlx::query(
            "SELECT id, kind, message_id, to_addr, raw, attempts, status, cc_addr FROM outbox WHERE status IN ('queued', 'unconfirmed') AND next_attempt_at <= ? AND (?3 IS NULL OR id IN (SELECT value FROM json_each(?3))) ORDER BY id LIMIT ?2",
        )
        .bind(db_time(now))
        .bind(limit)
        .bind(only)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| OutboxRow {
                id: r.get(0),
                kind: r.get(1),
                message_id: r.get(2),
                to_addr: r.get(3),
                raw: r.get(4),
                attempts: r.get(5),
                unconfirmed: r.get::<String, _>(6) == "unconfirmed",
                cc_addr: r.get(7),
            })
            .collect())
    }

    /// What was sent after `since`: (when, recipients besides the intake copy), for the
    /// account's sending caps ([`crate::send::limit`]).
    pub async fn sent_since(&self, since: DateTime<Utc>) -> Result<Vec<(DateTime<Utc>, u32)>> {
        let rows = sqlx::query(
            "SELECT sent_at, cc_addr IS NOT NULL FROM outbox WHERE status = 'sent' AND sent_at > ?",
        )
        .bind(db_time(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (time_col(r, 0), 1 + u32::from(r.get::<bool, _>(1))))
            .collect())
    }

    /// Mails waiting to be sent, in the order they will go: (outbox id, kind, recipients
    /// besides the intake copy, the deadline of a reminder).
    pub async fn waiting_outbox(&self) -> Result<Vec<(i64, String, u32, Option<DateTime<Utc>>)>> {
        let rows = sqlx::query(
            "SELECT o.id, o.kind, o.cc_addr IS NOT NULL, l.deadline FROM outbox o
             LEFT JOIN ledger l ON l.outbox_id = o.id
             WHERE o.status IN ('queued', 'unconfirmed') ORDER BY o.next_attempt_at, o.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let deadline: Option<String> = r.get(3);
                (
                    r.get(0),
                    r.get(1),
                    1 + u32::from(r.get::<bool, _>(2)),
                    deadline.as_deref().and_then(crate::clock::parse_db_time),
                )
            })
            .collect())
    }

    /// Moves every queued mail due before `at` to `at` (the sending caps are reached); not an
    /// attempt.
    pub async fn outbox_postpone_due(&self, at: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE outbox SET next_attempt_at = ? WHERE status = 'queued' AND next_attempt_at < ?",
        )
        .bind(db_time(at))
        .bind(db_time(at))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Why `message` got no automatic answer, when it got none.
    pub async fn no_answer(&self, message: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT no_answer FROM messages WHERE id = ?")
                .bind(message)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// Answers to `message` waiting in the outbox (not yet handed to SMTP).
    pub async fn queued_answers(&self, message: i64) -> Result<usize> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE related_message = ? AND status = 'queued'",
        )
        .bind(message)
        .fetch_one(&self.pool)
        .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The earliest time a queued mail is due, to sleep until then.
    pub async fn next_outbox_due(&self) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE status IN ('queued', 'unconfirmed')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row
            .get::<Option<String>, _>(0)
            .as_deref()
            .and_then(crate::clock::parse_db_time))
    }

    /// Marks mails as being handed to SMTP (one transaction), so a crash during the hand-over
    /// is known. Each counts as an attempt.
    pub async fn outbox_sending_many(&self, ids: &[i64]) -> Result<()> {
        self.update_each(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ?",
            ids,
            None,
        )
        .await
    }

    /// Mails marked in flight but not tried after all (the server went away before their
    /// turn): queued again, the attempt not counted.
    pub async fn outbox_not_tried(&self, ids: &[i64]) -> Result<()> {
        self.update_each(
            "UPDATE outbox SET status = 'queued', attempts = MAX(attempts - 1, 0) WHERE id = ? AND status = 'sending'",
            ids,
            None,
        )
        .await
    }

    /// Mails the server accepted (one transaction).
    pub async fn outbox_sent_many(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        self.update_each(
            "UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
            ids,
            Some(db_time(now)),
        )
        .await
    }

    /// Runs `sql` (`… WHERE id = ?`, after an optional first parameter) for each id, in one
    /// transaction.
    async fn update_each(
        &self,
        sql: &'static str,
        ids: &[i64],
        first: Option<String>,
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for &id in ids {
            let q = sqlx::query(sql);
            let q = match &first {
                Some(v) => q.bind(v.clone()),
                None => q,
            };
            q.bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// After a crash: sends that were in flight become `unconfirmed`, due after `grace` (time
    /// for the copy we sent ourselves to arrive, if the send went through).
    pub async fn outbox_recover(&self, now: DateTime<Utc>, grace: Duration) -> Result<u64> {
        let due = now + chrono::Duration::from_std(grace).unwrap_or_default();
        Ok(sqlx::query("UPDATE outbox SET status = 'unconfirmed', next_attempt_at = ? WHERE status = 'sending'")
            .bind(db_time(due))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// An unconfirmed send whose copy could not be looked for now: look again at `at`.
    pub async fn outbox_postpone(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = ? WHERE id = ? AND status = 'unconfirmed'",
        )
        .bind(db_time(at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether a message with this Message-ID reached our intake mailbox (our own copy).
    pub async fn has_message_id(&self, message_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE message_id = ?")
            .bind(message_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// A failed attempt: retry at `retry_at`, or give up (`None`: dead letter).
    pub async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        match retry_at {
            Some(t) => sqlx::query("UPDATE outbox SET status = 'queued', last_error = ?, next_attempt_at = ? WHERE id = ?")
                .bind(error)
                .bind(db_time(t))
                .bind(id),
            None => sqlx::query("UPDATE outbox SET last_error = ?, status = 'dead' WHERE id = ?")
                .bind(error)
                .bind(id),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The outbox for `shenbao outbox list`, oldest first.
    pub async fn outbox_list(&self, filter: OutboxFilter) -> Result<Vec<OutboxEntry>> {
        let sql = match filter {
            OutboxFilter::Dead => outbox_entry_sql!("WHERE status = 'dead' ORDER BY id"),
            OutboxFilter::Queued => outbox_entry_sql!(
                "WHERE status IN ('queued', 'sending', 'unconfirmed') ORDER BY id"
            ),
            OutboxFilter::Sent => outbox_entry_sql!("WHERE status = 'sent' ORDER BY id"),
            OutboxFilter::All => outbox_entry_sql!("ORDER BY id"),
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(outbox_entry).collect())
    }

    /// One outbox row, for messages about it.
    pub async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>> {
        let row = sqlx::query(outbox_entry_sql!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(outbox_entry))
    }

    /// Puts a dead letter (or a mail waiting for its next retry) back in the queue: due now,
    /// attempts back to 0 so the backoff and `smtp.max_attempts` start over. A mail already
    /// sent, being sent, or whose interrupted send is still being confirmed is left alone:
    /// sending it again could deliver it twice.
    pub async fn outbox_retry(&self, id: i64, now: DateTime<Utc>) -> Result<Retry> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(outbox_entry_sql!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(before) = row.as_ref().map(outbox_entry) else {
            tx.commit().await?;
            return Ok(Retry::Unknown);
        };
        let verdict = match before.status.as_str() {
            "dead" | "queued" => {
                if before.status == "queued" && before.attempts == 0 {
                    // Never tried yet: it is due already (or scheduled on purpose); nothing to reset.
                    Retry::AlreadyQueued(before)
                } else {
                    sqlx::query(
                        "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = ? WHERE id = ? AND status IN ('dead', 'queued')",
                    )
                    .bind(db_time(now))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    Retry::Requeued(before)
                }
            }
            "sent" => Retry::AlreadySent(before),
            _ => Retry::InFlight(before),
        };
        tx.commit().await?;
        Ok(verdict)
    }

    /// [`Store::outbox_retry`] for every dead letter at once; returns them as they were.
    pub async fn outbox_retry_dead(&self, now: DateTime<Utc>) -> Result<Vec<OutboxEntry>> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(outbox_entry_sql!("WHERE status = 'dead' ORDER BY id"))
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = ? WHERE status = 'dead'",
        )
        .bind(db_time(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(outbox_entry).collect())
    }
}

/// Which outbox rows `shenbao outbox list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFilter {
    /// Given up on (`dead`): what `shenbao outbox retry` is for.
    Dead,
    /// Not sent yet: queued (new or waiting for a retry), being sent, or being confirmed.
    Queued,
    Sent,
    All,
}

/// An outbox row as staff see it (without the rendered bytes).
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    pub kind: String,
    pub to_addr: String,
    pub subject: String,
    /// queued | sending | unconfirmed | sent | dead
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What [`Store::outbox_retry`] did; each carries the row as it was before.
#[derive(Debug, Clone)]
pub enum Retry {
    /// Back in the queue, due now, attempts reset.
    Requeued(OutboxEntry),
    /// Queued and never tried: nothing to do.
    AlreadyQueued(OutboxEntry),
    /// Sent already: not sent twice.
    AlreadySent(OutboxEntry),
    /// Being handed to SMTP, or an interrupted send waiting for its copy: not touched.
    InFlight(OutboxEntry),
    /// No such id.
    Unknown,
}

/// The query behind [`OutboxEntry`], completed by a `WHERE …`/`ORDER BY …` literal.
macro_rules! outbox_entry_sql {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, to_addr, subject, status, attempts, next_attempt_at, last_error, created_at, sent_at FROM outbox ",
            $tail
        )
    };
}
use outbox_entry_sql;

fn outbox_entry(r: &sqlx::sqlite::SqliteRow) -> OutboxEntry {
    let time = |i: usize| {
        r.get::<Option<String>, _>(i)
            .as_deref()
            .and_then(crate::clock::parse_db_time)
    };
    OutboxEntry {
        id: r.get(0),
        kind: r.get(1),
        to_addr: r.get(2),
        subject: r.get(3),
        status: r.get(4),
        attempts: r.get(5),
        next_attempt_at: time(6),
        last_error: r.get(7),
        created_at: time(8),
        sent_at: time(9),
    }
}

/// Moves the watermark of `key`'s folder to `key.uid` (never backwards within one UIDVALIDITY).
async fn set_watermark(
    conn: &mut SqliteConnection,
    key: &ImapKey,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mailbox_state (account, folder, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (account, folder) DO UPDATE SET
           last_uid = CASE WHEN mailbox_state.uidvalidity = excluded.uidvalidity AND mailbox_state.last_uid > excluded.last_uid
                           THEN mailbox_state.last_uid ELSE excluded.last_uid END,
           uidvalidity = excluded.uidvalidity,
           updated_at = excluded.updated_at",
    )
    .bind(&key.account)
    .bind(&key.folder)
    .bind(i64::from(key.uidvalidity))
    .bind(i64::from(key.uid))
    .bind(db_time(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The same message already stored: same sha256 and, when it has one, the same Message-ID.
async fn find_duplicate(
    conn: &mut SqliteConnection,
    message_id: Option<&str>,
    sha: &str,
) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT id FROM messages WHERE raw_sha256 = ? AND (message_id IS ? OR message_id = ?) ORDER BY id LIMIT 1")
        .bind(sha)
        .bind(message_id)
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Puts a rendered mail into the durable outbox inside the caller's transaction (the one that
/// records the decision to send it), with its copy recipient, the message it answers and the
/// branch it is about. The one way anything enters the outbox; a second enqueue of the same
/// Message-ID is ignored. Returns the row id (`last_insert_rowid`).
pub async fn enqueue(
    conn: &mut SqliteConnection,
    mail: &crate::notify::compose::Outgoing,
    related_message: Option<i64>,
    branch: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT OR IGNORE INTO outbox (kind, message_id, related_message, to_addr, subject, raw, next_attempt_at, created_at, cc_addr, branch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&mail.kind)
    .bind(&mail.message_id)
    .bind(related_message)
    .bind(&mail.to)
    .bind(&mail.subject)
    .bind(&mail.raw)
    .bind(db_time(now))
    .bind(db_time(now))
    .bind(&mail.cc)
    .bind(branch)
    .execute(&mut *conn)
    .await?
    .last_insert_rowid())
}

/// The data directory's default layout, for `init` and messages.
pub fn default_database_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}",
        PathBuf::from(data_dir).join("shenbao.db").display()
    )
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
