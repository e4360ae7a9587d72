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

/// `on_pool!(store, |p| …)` runs the body with `p` bound to the store's pool: written once,
/// compiled for each backend (so the body's value must have one type on both: decode rows
/// inside it, and end a statement whose result is not needed with `.rows_affected()`).
#[macro_export]
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}

/// `on_conn!(conn, |c| …)` runs the body with `c` bound to the connection of a [`Conn`] (`&mut`
/// the driver's connection), as [`on_pool!`] does with the pool.
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::Conn::Sqlite($c) => $body,
            $crate::store::Conn::Postgres($c) => $body,
        }
    };
}

pub mod attachments;
pub mod blobs;
pub mod board;
pub mod campaigns;
pub mod copy;
pub mod corrections;
pub mod leases;
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

/// The migrations of both backends, embedded so the binary carries its schema wherever it is
/// installed: `migrations/` for SQLite, `migrations/postgres/` for PostgreSQL, the same
/// versions and names (a test holds them in step).
macro_rules! migrations {
    ($dir:literal) => {
        &[
            (
                1,
                "init",
                include_str!(concat!("../../migrations/", $dir, "0001_init.sql")),
            ),
            (
                2,
                "fields",
                include_str!(concat!("../../migrations/", $dir, "0002_fields.sql")),
            ),
            (
                3,
                "ledger",
                include_str!(concat!("../../migrations/", $dir, "0003_ledger.sql")),
            ),
            (
                4,
                "reviews",
                include_str!(concat!("../../migrations/", $dir, "0004_reviews.sql")),
            ),
            (
                5,
                "conversations",
                include_str!(concat!("../../migrations/", $dir, "0005_conversations.sql")),
            ),
            (
                7,
                "branch_ledger_and_summary_role",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "0007_branch_ledger_and_summary_role.sql"
                )),
            ),
            (
                10,
                "ops",
                include_str!(concat!("../../migrations/", $dir, "0010_ops.sql")),
            ),
            (
                11,
                "board_indexes",
                include_str!(concat!("../../migrations/", $dir, "0011_board_indexes.sql")),
            ),
            (
                12,
                "board_read_indexes",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "0012_board_read_indexes.sql"
                )),
            ),
            (
                13,
                "leases",
                include_str!(concat!("../../migrations/", $dir, "0013_leases.sql")),
            ),
            (
                14,
                "campaigns",
                include_str!(concat!("../../migrations/", $dir, "0014_campaigns.sql")),
            ),
            (
                15,
                "campaign_scoped_keys",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "0015_campaign_scoped_keys.sql"
                )),
            ),
            (
                16,
                "outbox_due_covering",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "0016_outbox_due_covering.sql"
                )),
            ),
        ]
    };
}

const MIGRATIONS: &[(i64, &str, &str)] = migrations!("");
const PG_MIGRATIONS: &[(i64, &str, &str)] = migrations!("postgres/");

/// Stores for a unit test, one per backend: SQLite in a fresh directory always, and
/// PostgreSQL in a fresh database when `SHENBAO_TEST_POSTGRES` names a server whose role may
/// create databases (`scripts/pgstack.sh`; `scripts/test.sh` sets it). A test that loops over
/// them proves its statements on both; without the variable it runs on SQLite alone.
#[cfg(test)]
pub(crate) async fn test_stores(name: &str) -> Vec<Store> {
    let (root, url, postgres) = test_databases(name).await;
    let mut stores = vec![Store::open(&url, &root).await.expect("open SQLite")];
    if let Some(url) = postgres {
        stores.push(
            Store::open(&url, &root.join("pg"))
                .await
                .expect("open PostgreSQL"),
        );
    }
    stores
}

/// The campaign of each row of `table` that meets `condition` (SQL on both backends), sorted:
/// what a test reads to check the campaign its writes recorded.
#[cfg(test)]
pub(crate) async fn test_campaigns(store: &Store, table: &str, condition: &str) -> Vec<String> {
    let sql = format!("SELECT campaign FROM {table} WHERE {condition} ORDER BY campaign");
    on_pool!(store, |p| sqlx::query_scalar(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .fetch_all(p)
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// What [`test_stores`] opens, not yet opened (nor migrated): a fresh directory, the URL of a
/// SQLite file in it, and the URL of a fresh, empty PostgreSQL database when
/// `SHENBAO_TEST_POSTGRES` is set. For tests that write a database the way an older version
/// did before opening it.
#[cfg(test)]
pub(crate) async fn test_databases(name: &str) -> (PathBuf, String, Option<String>) {
    use sqlx::Connection as _;
    let tag = format!(
        "{name}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
    .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    .to_lowercase();
    let root = std::env::temp_dir().join(format!("shenbao-store-test-{tag}"));
    let _ = std::fs::remove_dir_all(&root);
    let url = format!("sqlite://{}", root.join("shenbao.db").display());
    let mut postgres = None;
    if let Some(admin) = std::env::var("SHENBAO_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("SHENBAO_TEST_POSTGRES: connect");
        let db = format!("t_{tag}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let mut url = url::Url::parse(&admin).expect("SHENBAO_TEST_POSTGRES: a URL");
        url.set_path(&db);
        postgres = Some(url.to_string());
    }
    (root, url, postgres)
}

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
        for d in [
            &data,
            &root.join("db"),
            &data.join("blobs"),
            &data.join("blobs/packs"),
        ] {
            assert_eq!(mode(d), 0o700, "directory {}", d.display());
        }
        for f in [
            db.clone(),
            root.join("db/shenbao.db-wal"),
            root.join("db/shenbao.db-shm"),
            store.blobs.packed_at(&sha).expect("packed").0,
            store.blobs.path_of(&sha2),
        ] {
            assert_eq!(mode(&f), 0o600, "file {}", f.display());
        }
        assert_eq!(
            mode(store.blobs.path_of(&sha2).parent().expect("dir")),
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

    /// What a database of version 13 (one campaign, never named) holds in the six tables
    /// that carry a campaign from version 14 on; the same text for both backends.
    const VERSION_13_ROWS: &str = "
        INSERT INTO blobs (sha256, size, created_at) VALUES ('s1', 1, '2025-09-20T01:00:00Z');
        INSERT INTO messages (source, raw_sha256, size, stored_at, status, disposition)
            VALUES ('file', 's1', 1, '2025-09-20T01:00:00Z', 'processed', 'application');
        INSERT INTO submissions (kind, branch_key, branch, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at)
            SELECT 'application', '支部甲', '支部甲', 'exact', 1.0, '', 1, TRUE, id, 'a@b.cn', '2025-09-20T01:00:00Z', FALSE, '[]', '2025-09-20T01:00:00Z' FROM messages;
        INSERT INTO outbox (kind, message_id, related_message, to_addr, subject, raw, next_attempt_at, created_at)
            SELECT 'ack', 'o1@x', id, 'a@b.cn', '回执', '', '2025-09-20T01:00:00Z', '2025-09-20T01:00:00Z' FROM messages;
        INSERT INTO ledger (key, kind, rule, recipient, outbox_id, created_at)
            SELECT 'remind:r:x', 'reminder', 'r', 'a@b.cn', id, '2025-09-20T01:00:00Z' FROM outbox;
        INSERT INTO review_imports (file_name, file_sha256, imported_by, imported_at, decisions)
            VALUES ('评审.xlsx', 's1', 'staff', '2025-10-20T01:00:00Z', 1);
        INSERT INTO reviews (import_id, sheet_row, branch, level, funded, is_current, created_at)
            SELECT id, 2, '支部甲', '重点', TRUE, TRUE, '2025-10-20T01:00:00Z' FROM review_imports;
    ";

    /// Each table's campaigns, one row per row (`table`, `campaign`), in table order.
    async fn campaigns_by_table(store: &super::Store) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for table in CAMPAIGN_TABLES {
            let rows = super::test_campaigns(store, table, "TRUE").await;
            out.extend(rows.into_iter().map(|c| (table.to_string(), c)));
        }
        out
    }

    /// The tables whose rows carry a campaign.
    const CAMPAIGN_TABLES: [&str; 6] = [
        "messages",
        "submissions",
        "outbox",
        "ledger",
        "review_imports",
        "reviews",
    ];

    /// Versions 14 and 15 on a database written by version 13: every row of messages,
    /// submissions, outbox, ledger, review_imports and reviews is filed under the campaign
    /// `default`, versions and ledger keys count per campaign, and the indexes the campaign's
    /// reads use exist. Migrated as `shenbao run` does it
    /// (`Store::open` on the old database), on both backends.
    #[tokio::test]
    async fn version_14_files_old_rows_under_the_default_campaign() {
        use std::str::FromStr as _;
        let old: Vec<(i64, &str, &str)> = super::MIGRATIONS
            .iter()
            .copied()
            .filter(|(v, _, _)| *v <= 13)
            .collect();
        let old_pg: Vec<(i64, &str, &str)> = super::PG_MIGRATIONS
            .iter()
            .copied()
            .filter(|(v, _, _)| *v <= 13)
            .collect();
        let (root, sqlite, postgres) = super::test_databases("campaign_migration").await;
        std::fs::create_dir_all(&root).expect("mkdir");
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&sqlite)
            .expect("url")
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.expect("db");
        super::migrator(&old).run(&pool).await.expect("version 13");
        sqlx::raw_sql(VERSION_13_ROWS)
            .execute(&pool)
            .await
            .expect("old rows");
        pool.close().await;
        let mut urls = vec![sqlite];
        if let Some(url) = postgres {
            let pool = sqlx::PgPool::connect(&url).await.expect("db");
            super::migrator(&old_pg)
                .run(&pool)
                .await
                .expect("version 13");
            sqlx::raw_sql(VERSION_13_ROWS)
                .execute(&pool)
                .await
                .expect("old rows");
            pool.close().await;
            urls.push(url);
        }
        for url in urls {
            let store = super::Store::open(&url, &root.join("data"))
                .await
                .expect("migrate");
            let backend = store.backend();
            let found = campaigns_by_table(&store).await;
            let want: Vec<(String, String)> = CAMPAIGN_TABLES
                .iter()
                .map(|t| (t.to_string(), "default".to_string()))
                .collect();
            assert_eq!(found, want, "{backend}");
            let version: i64 = on_pool!(store, |p| sqlx::query_scalar(super::RECORDED_VERSION)
                .fetch_one(p)
                .await
                .expect("version"));
            assert_eq!(version, super::schema_version(), "{backend}");
            // A row written without naming a campaign (as version 13's code did) gets the
            // default too.
            on_pool!(store, |p| {
                sqlx::query(
                "INSERT INTO blobs (sha256, size, created_at) VALUES ('s2', 1, '2026-03-01T01:00:00Z')"
            )
            .execute(p)
            .await
            .expect("blob")
            .rows_affected()
            });
            let campaign: String = on_pool!(store, |p| {
                sqlx::query_scalar(
                "INSERT INTO messages (source, raw_sha256, size, stored_at) VALUES ('file', 's2', 1, '2026-03-01T01:00:00Z') RETURNING campaign"
            )
            .fetch_one(p)
            .await
            .expect("new row")
            });
            assert_eq!(campaign, "default", "{backend}");
            // Version 15: versions and ledger keys count per campaign. The old rows kept (above);
            // next semester's version 1 and ledger key of the same branch are new rows, the
            // same ones in the same campaign are refused.
            for (campaign, ok) in [("2026-spring", true), ("default", false)] {
                let written = on_pool!(store, |p| {
                    sqlx::query(
                    "INSERT INTO submissions (kind, branch_key, branch, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at, campaign)
                     SELECT 'application', '支部甲', '支部甲', 'exact', 1.0, '', 1, TRUE, id, 'a@b.cn', '2026-03-02T01:00:00Z', FALSE, '[]', '2026-03-02T01:00:00Z', $1
                     FROM messages WHERE raw_sha256 = 's2'",
                )
                .bind(campaign)
                .execute(p)
                .await
                .is_ok()
                });
                assert_eq!(written, ok, "{backend}: version 1 in {campaign}");
                let written = on_pool!(store, |p| {
                    sqlx::query(
                        "INSERT INTO ledger (key, kind, rule, recipient, created_at, campaign)
                     VALUES ('remind:r:x', 'reminder', 'r', 'a@b.cn', '2026-03-02T01:00:00Z', $1)",
                    )
                    .bind(campaign)
                    .execute(p)
                    .await
                    .is_ok()
                });
                assert_eq!(written, ok, "{backend}: ledger key in {campaign}");
            }
            for index in [
                "submissions_latest",
                "messages_by_campaign",
                "outbox_by_campaign",
                "ledger_by_rule",
                "reviews_by_campaign",
            ] {
                // SQLite only: PostgreSQL lists its indexes in pg_indexes (the other arm).
                let n: i64 = match &store.pool {
                    super::Pool::Sqlite(p) => sqlx::query_scalar(
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = $1",
                    )
                    .bind(index)
                    .fetch_one(p)
                    .await
                    .expect("index"),
                    super::Pool::Postgres(p) => {
                        sqlx::query_scalar("SELECT COUNT(*) FROM pg_indexes WHERE indexname = $1")
                            .bind(index)
                            .fetch_one(p)
                            .await
                            .expect("index")
                    }
                };
                assert_eq!(n, 1, "{backend}: {index}");
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn values_rows_number_each_rows_parameters_after_the_shared_ones() {
        let row = |p: &[usize]| format!("(${}, $1, ${})", p[0], p[1]);
        assert_eq!(super::values_rows(1, 1, 2, row), "($2, $1, $3)");
        assert_eq!(
            super::values_rows(1, 3, 2, row),
            "($2, $1, $3), ($4, $1, $5), ($6, $1, $7)"
        );
        assert_eq!(super::values_rows(0, 0, 2, row), "");
        let single = |p: &[usize]| format!("${}", p[0]);
        assert_eq!(super::values_rows(0, 4, 1, single), "$1, $2, $3, $4");
        assert_eq!(super::values_rows(6, 2, 1, single), "$7, $8");
        assert_eq!(super::params(3..=5), "$3, $4, $5");
        assert_eq!(super::params([]), "");
    }

    /// Every file in migrations/ is embedded, in order: a migration added to the directory but
    /// not to MIGRATIONS would silently never run.
    #[test]
    fn every_migration_file_is_embedded() {
        for (dir, list) in [
            ("migrations", super::MIGRATIONS),
            ("migrations/postgres", super::PG_MIGRATIONS),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            let mut files: Vec<String> = std::fs::read_dir(dir)
                .expect("migrations dir")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            files.sort();
            assert_eq!(files.len(), list.len(), "{files:?}");
            for (file, (version, _, _)) in files.iter().zip(list) {
                assert!(
                    file.starts_with(&format!("{version:04}_")),
                    "{file} vs version {version}"
                );
            }
        }
    }
}

fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
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

/// The database behind a [`Store`]: SQLite (the embedded default) or PostgreSQL (several
/// daemons on one database). The store's functions hold each statement once and run it on
/// either through [`on_pool!`] / [`on_conn!`], which expand the same code for both pools:
/// each arm is compiled against its own driver, so rows are decoded natively (no `Any`
/// driver, whose value conversion cannot read SQLite's 0/1 flags as `bool`).
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    /// The SQLite pool, for tests of SQLite's own behaviour (query plans).
    #[cfg(test)]
    pub(crate) fn sqlite(&self) -> &SqlitePool {
        match self {
            Pool::Sqlite(p) => p,
            Pool::Postgres(_) => panic!("a SQLite-only test on PostgreSQL"),
        }
    }
}

/// A connection of either backend, borrowed from a pool or from an open [`Tx`].
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

impl Conn<'_> {
    /// The same connection, borrowed again (to pass it on and use it after).
    pub(crate) fn re(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// A value both backends decode (`i64`, `String`, `bool`, `f64`, `Vec<u8>`, their `Option`).
pub(crate) trait Value:
    for<'r> sqlx::Decode<'r, sqlx::Sqlite>
    + sqlx::Type<sqlx::Sqlite>
    + for<'r> sqlx::Decode<'r, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
{
}

impl<T> Value for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
{
}

/// A row of either backend, for the row readers shared by several statements
/// (`attachment_row`, `outbox_entry` …); inside [`on_pool!`] rows are the driver's own.
pub(crate) trait Cols {
    /// Column `i`, decoded as `T`; a type that does not match the schema is a bug, and panics
    /// as sqlx's `Row::get` does.
    fn col<T: Value>(&self, i: usize) -> T;
}

impl Cols for sqlx::sqlite::SqliteRow {
    fn col<T: Value>(&self, i: usize) -> T {
        self.get(i)
    }
}

impl Cols for sqlx::postgres::PgRow {
    fn col<T: Value>(&self, i: usize) -> T {
        self.get(i)
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    pub blobs: BlobDir,
    /// How [`Store::data_version`] asks (SQLite: a connection of its own that never writes).
    probe: Probe,
    /// The campaign whose records the reads return ([`Store::for_campaign`]); writes name
    /// their campaign themselves.
    campaign: std::sync::Arc<str>,
}

#[derive(Debug, Clone)]
enum Probe {
    Sqlite {
        conn: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::SqliteConnection>>>,
        options: Box<SqliteConnectOptions>,
    },
    Postgres,
}

fn time_col(r: &impl Cols, i: usize) -> DateTime<Utc> {
    crate::store::parse_db_time(&r.col::<String>(i)).unwrap_or_default()
}

/// The file of a `sqlite:` URL (`None` for an in-memory database).
fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The rows of a multi-row `VALUES` (or an `IN` list): `rows` times what `row` writes from
/// the numbers of that row's `per_row` parameters, numbered after the `shared` ones every row
/// uses (`$1`…`$shared`). One statement for many rows is one round trip instead of many.
pub(crate) fn values_rows(
    shared: usize,
    rows: usize,
    per_row: usize,
    row: impl Fn(&[usize]) -> String,
) -> String {
    let mut out = String::new();
    let mut params = Vec::with_capacity(per_row);
    for r in 0..rows {
        params.clear();
        params.extend((1..=per_row).map(|k| shared + r * per_row + k));
        if r > 0 {
            out.push_str(", ");
        }
        out.push_str(&row(&params));
    }
    out
}

/// `$a, $b, …`: the placeholders numbered `numbers` (an `IN` list, or one row of
/// [`values_rows`]).
pub(crate) fn params(numbers: impl IntoIterator<Item = usize>) -> String {
    let marks: Vec<String> = numbers.into_iter().map(|k| format!("${k}")).collect();
    marks.join(", ")
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
/// outside `store/` sees which database is underneath. Dropped without [`Tx::commit`], it
/// rolls back.
pub struct Tx(TxInner);

enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self.0 {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self.0 {
            TxInner::Sqlite(t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// The connection, for the store's own statements.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.0 {
            TxInner::Sqlite(t) => Conn::Sqlite(t),
            TxInner::Postgres(t) => Conn::Postgres(t),
        }
    }
}

/// The schema version this program writes and reads.
pub fn schema_version() -> i64 {
    MIGRATIONS.iter().map(|(v, _, _)| *v).max().unwrap_or(0)
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The key of the advisory lock every PostgreSQL write transaction takes (`SHENBAO\0`).
const WRITE_LOCK: i64 = 0x5348_454E_4241_4F00;

/// The schema version recorded in a database's `_sqlx_migrations` (0 when none is).
const RECORDED_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success = TRUE";

/// The campaign of a database's rows before campaigns had ids, and of a single `[campaign]`
/// table that names none.
pub const DEFAULT_CAMPAIGN: &str = crate::config::DEFAULT_CAMPAIGN_ID;

impl Store {
    /// The same database with its reads scoped to the campaign `id`: versions, the latest
    /// applications, review decisions, the ledger, the mails waiting for staff and the board's
    /// figures are that campaign's. A cheap copy (the pools are shared).
    pub fn for_campaign(&self, id: &str) -> Store {
        Store {
            campaign: id.into(),
            ..self.clone()
        }
    }

    /// The campaign the reads are scoped to.
    pub fn campaign(&self) -> &str {
        &self.campaign
    }

    /// Opens an existing database for the commands that only read (`status`, `export`,
    /// `show`, the dry runs, `outbox list`): read-only, nothing created, nothing migrated. A
    /// wrong `data_dir` then says so instead of showing an empty campaign, and an old schema
    /// asks for `shenbao run` (which migrates) instead of being changed behind staff's back.
    pub async fn open_existing(database_url: &str, data_dir: &Path) -> Result<Store> {
        let want = schema_version();
        if is_postgres_url(database_url) {
            // Every transaction of these connections is read-only: the server refuses a write.
            let opts = sqlx::postgres::PgConnectOptions::from_str(database_url)?
                .options([("default_transaction_read_only", "on")]);
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await?;
            let have: i64 = sqlx::query_scalar(RECORDED_VERSION)
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
            let path = PathBuf::from(redacted_url(database_url));
            if have < want {
                return Err(StoreError::Outdated { path, have, want });
            }
            if have > want {
                return Err(StoreError::Newer { path, have, want });
            }
            return Ok(Store {
                pool: Pool::Postgres(pool),
                blobs: BlobDir::new(data_dir.join("blobs")),
                probe: Probe::Postgres,
                campaign: DEFAULT_CAMPAIGN.into(),
            });
        }
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
        let have: i64 = sqlx::query_scalar(RECORDED_VERSION)
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        let path = file.unwrap_or_else(|| PathBuf::from(database_url));
        if have < want {
            return Err(StoreError::Outdated { path, have, want });
        }
        if have > want {
            return Err(StoreError::Newer { path, have, want });
        }
        Ok(Store {
            pool: Pool::Sqlite(pool),
            blobs: BlobDir::new(data_dir.join("blobs")),
            probe: Probe::Sqlite {
                conn: Default::default(),
                options: Box::new(opts),
            },
            campaign: DEFAULT_CAMPAIGN.into(),
        })
    }

    /// Opens (creating when missing) the database and the data directory, and migrates.
    pub async fn open(database_url: &str, data_dir: &Path) -> Result<Store> {
        crate::fsmode::create_dir_all(data_dir)?;
        if is_postgres_url(database_url) {
            let opts = sqlx::postgres::PgConnectOptions::from_str(database_url)?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await?;
            // sqlx's migrator holds an advisory lock while it runs: two daemons starting
            // together migrate once.
            migrator(PG_MIGRATIONS).run(&pool).await?;
            return Ok(Store {
                pool: Pool::Postgres(pool),
                blobs: BlobDir::new(data_dir.join("blobs")),
                probe: Probe::Postgres,
                campaign: DEFAULT_CAMPAIGN.into(),
            });
        }
        if let Some(path) = sqlite_file(database_url) {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::fsmode::create_dir_all(parent)?;
            }
            // Created here 0600, before SQLite sees it: SQLite gives its `-wal` and `-shm`
            // files the database file's mode, so they are private too.
            match crate::fsmode::create_new(&path) {
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
            // 2 MiB of page cache per connection (SQLite's default size, written out): the
            // four connections' caches grew with the database and were half the daemon's
            // memory at 10,000 mails (16 MiB each: peak RSS 114 MB; 2 MiB: 56 MB, and no
            // slower, since the pages stay in the kernel's page cache: README, benchmark).
            .pragma("cache_size", "-2048")
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await?;
        migrator(MIGRATIONS).run(&pool).await?;
        Ok(Store {
            pool: Pool::Sqlite(pool),
            blobs: BlobDir::new(data_dir.join("blobs")),
            probe: Probe::Sqlite {
                conn: Default::default(),
                options: Box::new(opts.read_only(true)),
            },
            campaign: DEFAULT_CAMPAIGN.into(),
        })
    }

    /// Which backend this store runs on, for messages: `SQLite` or `PostgreSQL`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "SQLite",
            Pool::Postgres(_) => "PostgreSQL",
        }
    }

    /// A number that changes whenever anyone — this process or another one (the daemon
    /// under `shenbao web`, a command run beside the daemon, another daemon) — has committed
    /// a change since the last call; equal numbers mean nothing changed. The board recomputes
    /// its pages' figures only then.
    ///
    /// SQLite: `PRAGMA data_version` on a connection of its own that never writes (the pragma
    /// changes when a connection other than the one asking commits). PostgreSQL: the
    /// server's current snapshot (`xmin:xmax:running`), which moves when any transaction that
    /// wrote starts or ends. It is cluster-wide, so unrelated writes also move it: the board
    /// then recomputes for nothing, but never misses a commit, and no write pays for a
    /// counter row every writer would queue on.
    pub async fn data_version(&self) -> Result<i64> {
        match (&self.probe, &self.pool) {
            (Probe::Sqlite { conn, options }, _) => {
                use sqlx::Connection as _;
                let mut probe = conn.lock().await;
                let conn = match &mut *probe {
                    Some(c) => c,
                    empty => empty.insert(sqlx::SqliteConnection::connect_with(options).await?),
                };
                // SQLite only: PostgreSQL asks for its snapshot (the arm below).
                Ok(sqlx::query_scalar("PRAGMA data_version")
                    .fetch_one(&mut *conn)
                    .await?)
            }
            (Probe::Postgres, Pool::Postgres(pool)) => {
                use std::hash::{Hash as _, Hasher as _};
                let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
                    .fetch_one(pool)
                    .await?;
                let mut h = std::collections::hash_map::DefaultHasher::new();
                snapshot.hash(&mut h);
                Ok(h.finish() as i64)
            }
            (Probe::Postgres, Pool::Sqlite(_)) => unreachable!("a PostgreSQL probe on SQLite"),
        }
    }

    /// A write transaction. SQLite: `BEGIN IMMEDIATE` takes the write lock up front (a
    /// deferred transaction that reads first and writes later cannot be upgraded while
    /// another connection writes: SQLITE_BUSY, which the busy timeout does not cover).
    /// PostgreSQL: a transaction that first takes one advisory lock, held to its end. The
    /// store's write transactions read and then write on what they read (the next version
    /// of a branch, a ledger key, a thread), so they run one at a time, as on SQLite, also
    /// across daemons; the lock is the same for all, so two of them never wait on each other
    /// in a cycle.
    pub async fn begin_write(&self) -> Result<Tx> {
        match &self.pool {
            // SQLite only: PostgreSQL takes the advisory lock (the arm below).
            Pool::Sqlite(pool) => Ok(Tx(TxInner::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE").await?,
            ))),
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT CAST(1 AS BIGINT) FROM pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(Tx(TxInner::Postgres(tx)))
            }
        }
    }
}

/// What `check-config --probe` learns of the configured database without changing it: the
/// server (PostgreSQL's version, or the SQLite file) and the schema version recorded there
/// (`None`: no database or no tables yet, which the first `shenbao run` creates).
pub async fn probe(database_url: &str) -> Result<(String, Option<i64>)> {
    use sqlx::Connection as _;
    if is_postgres_url(database_url) {
        let mut conn = sqlx::PgConnection::connect(database_url).await?;
        let version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&mut conn)
            .await?;
        let schema: Option<i64> = sqlx::query_scalar(RECORDED_VERSION)
            .fetch_one(&mut conn)
            .await
            .ok()
            .filter(|v| *v > 0);
        let _ = conn.close().await;
        let server = version.split(" on ").next().unwrap_or(&version).to_string();
        return Ok((server, schema));
    }
    let Some(file) = sqlite_file(database_url).filter(|f| f.is_file()) else {
        return Ok(("SQLite".into(), None));
    };
    let opts = SqliteConnectOptions::from_str(database_url)?.read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await?;
    let schema: Option<i64> = sqlx::query_scalar(RECORDED_VERSION)
        .fetch_one(&mut conn)
        .await
        .ok()
        .filter(|v| *v > 0);
    let _ = conn.close().await;
    Ok((format!("SQLite（{}）", file.display()), schema))
}

/// A database URL with its password replaced by `***`, for messages and logs.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The data directory's default layout, for `init` and messages.
pub fn default_database_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}",
        PathBuf::from(data_dir).join("shenbao.db").display()
    )
}
