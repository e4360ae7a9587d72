//! The store: SQLite through sqlx (WAL, versioned migrations from `migrations/`) plus the
//! content-addressed blob directory.
//!
//! The rule that keeps mail from being lost: bytes first, then the row that names them, then
//! the watermark, all before anything else looks at the message. Processing happens after, in
//! its own transaction, and is repeatable: a crash between the two leaves a `stored` message
//! that the next start processes.
//!
//! This module is the only place that speaks SQL. It holds the [`Store`], opening and
//! migrating the database, the write transaction [`Tx`] and [`StoreError`]; each table family
//! has its file: [`messages`], [`mailbox`] (IMAP watermarks), [`outbox`], [`submissions`],
//! [`attachments`], [`reviews`], [`ledger`], [`threads`] (conversations), [`corrections`],
//! [`ops`] (heartbeats, template errors) and [`blobs`] (the blob directory and its table).
//! What they return is plain Rust, so another database can stand behind the same functions.
//!
//! PostgreSQL is to be that database (issue 15), so every statement here is written in what
//! SQLite and PostgreSQL both accept: `$1`-numbered parameters (sqlx-sqlite reads them too),
//! `ON CONFLICT` instead of `INSERT OR …`, `RETURNING id` instead of `last_insert_rowid()`,
//! flags compared and set as `TRUE`/`FALSE` (SQLite stores 1/0, PostgreSQL a BOOLEAN) and
//! decoded as `bool`. The few that cannot be common carry a `// SQLite only:` comment saying
//! what PostgreSQL will use. `tests/postgres_statements.rs` finds every statement in these
//! sources and prepares it on a real PostgreSQL against `migrations/postgres/`.

/// The SQL condition (on `messages`) of mail that waits for a person until staff resolve it:
/// questions, replies, unrecognised branches, failures and mail too large to read. A macro, so
/// queries can `concat!` it into their text.
#[macro_export]
macro_rules! needs_staff {
    () => {
        "((needs_staff = TRUE OR status = 'failed' OR disposition = 'too_large') AND resolved_at IS NULL)"
    };
}

pub mod attachments;
pub mod blobs;
pub mod board;
pub mod corrections;
pub mod ledger;
pub mod mailbox;
pub mod messages;
pub mod ops;
pub mod outbox;
pub mod register;
pub mod reviews;
pub mod submissions;
pub mod threads;

pub use messages::{
    Fetched, ImapKey, Inserted, StaffRow, StoredBlob, StoredMessage, UnansweredRow, raw_message_id,
};
pub use outbox::{OutboxEntry, OutboxFilter, OutboxRow, Retry, enqueue};
pub use submissions::SenderChange;

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
    (
        11,
        "board_indexes",
        include_str!("../../migrations/0011_board_indexes.sql"),
    ),
    (
        12,
        "board_read_indexes",
        include_str!("../../migrations/0012_board_read_indexes.sql"),
    ),
];

#[cfg(test)]
mod tests {
    /// `data_version` stays while nothing is committed and moves with every commit, by this
    /// store's own connections and by another process's (here: another `Store`).
    #[tokio::test]
    async fn the_data_version_moves_with_every_commit() {
        let root =
            std::env::temp_dir().join(format!("shenbao-data-version-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let url = format!("sqlite://{}", root.join("shenbao.db").display());
        let store = super::Store::open(&url, &root).await.expect("open");
        let other = super::Store::open(&url, &root).await.expect("open again");
        let v0 = store.data_version().await.expect("version");
        assert_eq!(store.data_version().await.expect("version"), v0);
        let now = chrono::Utc::now();
        store
            .insert_file_message(b"Subject: a\r\n\r\nx", None, now)
            .await
            .expect("insert");
        let v1 = store.data_version().await.expect("version");
        assert_ne!(v1, v0, "a commit through the store's own pool");
        assert_eq!(store.data_version().await.expect("version"), v1);
        other
            .insert_file_message(b"Subject: b\r\n\r\ny", None, now)
            .await
            .expect("insert");
        assert_ne!(
            store.data_version().await.expect("version"),
            v1,
            "a commit by another store on the same file"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

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
    /// The connection [`Store::data_version`] asks; opened on first use, never writes.
    probe: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::SqliteConnection>>>,
    probe_options: SqliteConnectOptions,
}

fn time_col(r: &sqlx::sqlite::SqliteRow, i: usize) -> DateTime<Utc> {
    crate::store::parse_db_time(&r.get::<String, _>(i)).unwrap_or_default()
}

/// The file of a `sqlite:` URL (`None` for an in-memory database).
fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Formats an instant the way the database stores it (also the time part of ledger keys): RFC 3339 UTC with a `Z`, which sorts
/// lexically in time order.
pub fn db_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses what [`db_time`] wrote.
pub fn parse_db_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

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
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
}

/// The schema version this program writes and reads.
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
            .connect_with(opts.clone())
            .await?;
        let have: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success = TRUE",
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
            probe: Default::default(),
            probe_options: opts,
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
            .connect_with(opts.clone())
            .await?;
        migrator().run(&pool).await?;
        Ok(Store {
            pool,
            blobs: BlobDir::new(data_dir.join("blobs")),
            probe: Default::default(),
            probe_options: opts.read_only(true),
        })
    }

    /// A number that changes whenever anyone — this process or another one (the daemon
    /// under `shenbao web`, a command run beside the daemon) — has committed a change since
    /// the last call; equal numbers mean nothing changed. The board recomputes its pages'
    /// figures only then.
    ///
    /// SQLite's `PRAGMA data_version` on a connection of its own that never writes: the
    /// pragma changes when a connection other than the one asking commits. (A server
    /// backend would keep a counter that every write transaction bumps.)
    pub async fn data_version(&self) -> Result<i64> {
        use sqlx::Connection as _;
        let mut probe = self.probe.lock().await;
        let conn = match &mut *probe {
            Some(c) => c,
            empty => empty.insert(sqlx::SqliteConnection::connect_with(&self.probe_options).await?),
        };
        // SQLite only: PostgreSQL will keep a counter row that every write transaction bumps.
        Ok(sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut *conn)
            .await?)
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock up front: a deferred
    /// transaction that reads first and writes later cannot be upgraded while another
    /// connection writes (SQLITE_BUSY / BUSY_SNAPSHOT, which the busy timeout does not cover).
    pub async fn begin_write(&self) -> Result<Tx> {
        // SQLite only: PostgreSQL will use a plain BEGIN (its writers lock rows, not the file).
        Ok(Tx(self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }
}

/// The data directory's default layout, for `init` and messages.
pub fn default_database_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}",
        PathBuf::from(data_dir).join("shenbao.db").display()
    )
}
