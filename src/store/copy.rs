//! `shenbao db copy --to URL`: a campaign's database copied whole into another one (an
//! office moving from the embedded SQLite to a PostgreSQL several daemons share), and the copy
//! proved by reading both back.
//!
//! Why by table and column instead of by the store's own reads: the copy must carry every row
//! as it is (ids, times, flags, the rendered mails of the outbox), also rows no command reads,
//! and a column added tomorrow must be copied without anyone listing it. So the columns are
//! asked of each database's catalogue, each value is read by its column's type and written as
//! the target's column wants it (SQLite's 0/1 flags become PostgreSQL BOOLEANs), and
//! [`TABLES`] is checked against the schema by a test, so a new table cannot be forgotten.
//!
//! The proof: per table, the number of rows and a SHA-256 over every row's canonical form
//! (flags as 0/1, numbers in decimal, text and bytes as they are) on both sides. The row
//! hashes are sorted before they are combined, because the two databases order text keys by
//! different collations. The blob directory is not copied: it stays in `data_dir`, which the
//! target's daemons must share.

use super::{Conn, Pool, Result, Store, StoreError};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

/// Every table, parents before the tables that refer to them, with the key its rows are
/// paged and ordered by, and whether its `id` is an identity the target must continue after.
pub const TABLES: &[(&str, &str, bool)] = &[
    ("blobs", "sha256", false),
    ("mailbox_state", "account, folder", false),
    ("messages", "id", true),
    ("attachments", "id", true),
    ("submissions", "id", true),
    ("outbox", "id", true),
    ("ledger", "key", false),
    ("review_imports", "id", true),
    ("reviews", "id", true),
    ("daemon_state", "component", false),
    ("template_errors", "id", true),
    ("leases", "name", false),
];

/// Rows read and written per statement: bounded memory whatever the outbox holds.
const PAGE: i64 = 500;

/// One table's figures, as read back from a database after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    pub table: &'static str,
    pub rows: u64,
    /// Hex SHA-256 over the sorted SHA-256s of the rows' canonical forms.
    pub sha256: String,
}

/// What a column holds, as the copy reads and writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Real,
    Text,
    Bytes,
}

impl Kind {
    /// From a declared SQLite type or a PostgreSQL `information_schema` data type.
    fn of(declared: &str) -> Kind {
        let t = declared.to_ascii_lowercase();
        if t == "boolean" {
            Kind::Bool
        } else if t.contains("int") {
            Kind::Int
        } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
            Kind::Real
        } else if t.contains("blob") || t == "bytea" {
            Kind::Bytes
        } else {
            Kind::Text
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i64),
    Bool(bool),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Val {
    /// The value's part of its row's canonical form: the same on both databases for the
    /// same value (a flag is 0/1 whether it was stored as INTEGER or BOOLEAN).
    fn canonical(&self, out: &mut Vec<u8>) {
        match self {
            Val::Null => out.extend_from_slice(b"N"),
            Val::Int(i) => out.extend_from_slice(format!("I{i}").as_bytes()),
            Val::Bool(b) => out.extend_from_slice(format!("I{}", i64::from(*b)).as_bytes()),
            Val::Real(f) => out.extend_from_slice(format!("R{f:?}").as_bytes()),
            Val::Text(s) => {
                out.extend_from_slice(format!("T{}:", s.len()).as_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Val::Bytes(b) => {
                out.extend_from_slice(format!("B{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
        }
        out.push(0x1f);
    }
}

/// Reads column `i` of a row as `kind`.
macro_rules! read_val {
    ($row:expr, $i:expr, $kind:expr) => {
        match $kind {
            Kind::Int => $row
                .try_get::<Option<i64>, _>($i)?
                .map_or(Val::Null, Val::Int),
            Kind::Bool => $row
                .try_get::<Option<bool>, _>($i)?
                .map_or(Val::Null, Val::Bool),
            Kind::Real => $row
                .try_get::<Option<f64>, _>($i)?
                .map_or(Val::Null, Val::Real),
            Kind::Text => $row
                .try_get::<Option<String>, _>($i)?
                .map_or(Val::Null, Val::Text),
            Kind::Bytes => $row
                .try_get::<Option<Vec<u8>>, _>($i)?
                .map_or(Val::Null, Val::Bytes),
        }
    };
}

/// Binds `val` to `$q` as the target column's `kind` wants it.
macro_rules! bind_val {
    ($q:expr, $val:expr, $kind:expr) => {
        match ($kind, $val) {
            (Kind::Int, Val::Int(i)) => $q.bind(Some(i)),
            (Kind::Int, Val::Bool(b)) => $q.bind(Some(i64::from(b))),
            (Kind::Int, _) => $q.bind(None::<i64>),
            (Kind::Bool, Val::Bool(b)) => $q.bind(Some(b)),
            (Kind::Bool, Val::Int(i)) => $q.bind(Some(i != 0)),
            (Kind::Bool, _) => $q.bind(None::<bool>),
            (Kind::Real, Val::Real(f)) => $q.bind(Some(f)),
            (Kind::Real, Val::Int(i)) => $q.bind(Some(i as f64)),
            (Kind::Real, _) => $q.bind(None::<f64>),
            (Kind::Text, Val::Text(s)) => $q.bind(Some(s)),
            (Kind::Text, _) => $q.bind(None::<String>),
            (Kind::Bytes, Val::Bytes(b)) => $q.bind(Some(b)),
            (Kind::Bytes, _) => $q.bind(None::<Vec<u8>>),
        }
    };
}

impl Store {
    /// The columns of `table`, in order, with their kinds.
    async fn columns(&self, table: &str) -> Result<Vec<(String, Kind)>> {
        let cols: Vec<(String, String)> = match &self.pool {
            // SQLite only: PostgreSQL reads information_schema (the arm below).
            Pool::Sqlite(p) => {
                sqlx::query_as("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                    .bind(table)
                    .fetch_all(p)
                    .await?
            }
            Pool::Postgres(p) => sqlx::query_as(
                "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(p)
            .await?,
        };
        Ok(cols
            .into_iter()
            .map(|(name, ty)| {
                let kind = Kind::of(&ty);
                (name, kind)
            })
            .collect())
    }

    /// One page of `table`'s rows, `columns` read as their kinds.
    async fn page(
        &self,
        table: &str,
        order: &str,
        columns: &[(String, Kind)],
        offset: i64,
    ) -> Result<Vec<Vec<Val>>> {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        // Built at run time: the table's columns; run on both backends by the tests below.
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY {order} LIMIT $1 OFFSET $2",
            names.join(", ")
        );
        on_pool!(self, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(PAGE)
                .bind(offset)
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut vals = Vec::with_capacity(columns.len());
                for (i, (_, kind)) in columns.iter().enumerate() {
                    vals.push(read_val!(row, i, *kind));
                }
                out.push(vals);
            }
            Ok::<_, StoreError>(out)
        })
    }

    /// Rows and digest of every table in [`TABLES`], read from this database.
    pub async fn table_sums(&self) -> Result<Vec<TableSum>> {
        let mut sums = Vec::with_capacity(TABLES.len());
        for (table, order, _) in TABLES {
            let columns = self.columns(table).await?;
            let mut hashes: Vec<[u8; 32]> = Vec::new();
            let mut offset = 0;
            loop {
                let page = self.page(table, order, &columns, offset).await?;
                for row in &page {
                    let mut canon = Vec::new();
                    for v in row {
                        v.canonical(&mut canon);
                    }
                    hashes.push(Sha256::digest(&canon).into());
                }
                if (page.len() as i64) < PAGE {
                    break;
                }
                offset += PAGE;
            }
            hashes.sort_unstable();
            let mut all = Sha256::new();
            for h in &hashes {
                all.update(h);
            }
            sums.push(TableSum {
                table,
                rows: hashes.len() as u64,
                sha256: hex::encode(all.finalize()),
            });
        }
        Ok(sums)
    }

    /// Whether every table of this database is empty (a copy's target must be).
    pub async fn is_empty(&self) -> Result<bool> {
        for (table, _, _) in TABLES {
            // Built at run time: one count per table of TABLES.
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = on_pool!(self, |p| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(p)
                .await?);
            if n > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Copies every row of every table into `target` (migrated, empty) in one transaction,
    /// then continues `target`'s identities after the copied ids. `progress` hears each
    /// table's name and row count as it is done. The caller proves the copy with
    /// [`Store::table_sums`] on both.
    pub async fn copy_into(
        &self,
        target: &Store,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<()> {
        let mut tx = target.begin_write().await?;
        for (table, order, identity) in TABLES {
            let from = self.columns(table).await?;
            let to = target.columns(table).await?;
            // Only the columns both have, as the target wants them.
            let cols: Vec<(String, Kind, Kind)> = from
                .iter()
                .filter_map(|(name, kind)| {
                    to.iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, want)| (name.clone(), *kind, *want))
                })
                .collect();
            let read: Vec<(String, Kind)> = cols.iter().map(|(n, k, _)| (n.clone(), *k)).collect();
            let names: Vec<&str> = cols.iter().map(|(n, _, _)| n.as_str()).collect();
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
            // Built at run time: the columns both databases have.
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                marks.join(", ")
            );
            let mut offset = 0;
            let mut copied = 0u64;
            loop {
                let page = self.page(table, order, &read, offset).await?;
                for row in &page {
                    insert_row(tx.conn(), &insert, row, &cols).await?;
                }
                copied += page.len() as u64;
                if (page.len() as i64) < PAGE {
                    break;
                }
                offset += PAGE;
            }
            if *identity && let Conn::Postgres(c) = tx.conn() {
                // Built at run time: PostgreSQL only, one per table with an identity.
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(c).await?;
            }
            progress(table, copied);
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_row(
    conn: Conn<'_>,
    sql: &str,
    row: &[Val],
    cols: &[(String, Kind, Kind)],
) -> Result<()> {
    on_conn!(conn, |c| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for (val, (_, _, want)) in row.iter().zip(cols) {
            q = bind_val!(q, val.clone(), *want);
        }
        q.execute(c).await?.rows_affected()
    });
    Ok(())
}

impl Store {
    /// The names of the database's tables (for the test that [`TABLES`] is complete).
    pub async fn table_names(&self) -> Result<Vec<String>> {
        Ok(match &self.pool {
            // SQLite only: PostgreSQL reads information_schema (the arm below).
            Pool::Sqlite(p) => {
                sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                )
                .fetch_all(p)
                .await?
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar(
                    "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema()",
                )
                .fetch_all(p)
                .await?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, TABLES};

    #[test]
    fn column_types_are_read_as_their_kinds() {
        for (declared, kind) in [
            ("INTEGER", Kind::Int),
            ("bigint", Kind::Int),
            ("integer", Kind::Int),
            ("boolean", Kind::Bool),
            ("REAL", Kind::Real),
            ("double precision", Kind::Real),
            ("BLOB", Kind::Bytes),
            ("bytea", Kind::Bytes),
            ("TEXT", Kind::Text),
            ("text", Kind::Text),
        ] {
            assert_eq!(Kind::of(declared), kind, "{declared}");
        }
    }

    /// A campaign copied from SQLite into a fresh database (PostgreSQL when the test server is
    /// there, another SQLite otherwise) reads back with the same rows and digests, flags and
    /// bytes included; the target's ids continue after the copied ones; a second copy into the
    /// now full target is refused by `is_empty`.
    #[tokio::test]
    async fn a_copy_reads_back_the_same() {
        use crate::store::ImapKey;
        use chrono::{TimeZone as _, Utc};
        let source = crate::store::test_stores("copy_source")
            .await
            .swap_remove(0);
        let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
        let key = |uid| ImapKey {
            account: "intake@example.test".into(),
            folder: "INBOX".into(),
            uidvalidity: 7,
            uid,
        };
        for uid in 1..=3 {
            let raw = format!("Message-ID: <m{uid}@x>\r\nSubject: 申报 {uid}\r\n\r\nbody");
            source
                .insert_imap_message(&key(uid), raw.as_bytes(), Some(now), now)
                .await
                .expect("insert");
        }
        source
            .insert_too_large(&key(4), 99_000_000, None, "default", now)
            .await
            .expect("too large");
        let mut tx = source.begin_write().await.expect("begin");
        crate::store::ledger::record(
            &mut tx,
            &crate::store::ledger::LedgerEntry {
                key: "remind:r:1",
                kind: "reminder",
                rule: "r",
                recipient: "a@example.test",
                branch: Some("支部"),
                period_end: None,
                deadline: Some(now),
                offset_secs: Some(3600),
                skipped: None,
                campaign: "2025-autumn",
            },
            now,
        )
        .await
        .expect("ledger");
        tx.commit().await.expect("commit");
        sqlx::query(
            "INSERT INTO outbox (kind, message_id, related_message, to_addr, subject, raw, next_attempt_at, created_at, status) VALUES ('ack', 'a@x', 1, 'b@example.test', '回执', $1, $2, $2, 'sent')",
        )
        .bind(vec![0u8, 159, 146, 150, 13, 10])
        .bind(crate::store::db_time(now))
        .execute(source.pool.sqlite())
        .await
        .expect("outbox");
        sqlx::query("UPDATE messages SET needs_staff = TRUE, reason = '问询' WHERE id = 2")
            .execute(source.pool.sqlite())
            .await
            .expect("flag");
        let targets = crate::store::test_stores("copy_target").await;
        let target = targets.last().expect("a target");
        assert!(target.is_empty().await.expect("empty"));
        let mut heard = Vec::new();
        source
            .copy_into(target, |t, n| heard.push((t.to_string(), n)))
            .await
            .expect("copy");
        assert_eq!(heard.len(), TABLES.len());
        assert!(heard.contains(&("messages".to_string(), 4)), "{heard:?}");
        let (a, b) = (
            source.table_sums().await.expect("sums"),
            target.table_sums().await.expect("sums"),
        );
        assert_eq!(a, b, "{}", target.backend());
        assert_eq!(
            b.iter().find(|s| s.table == "outbox").map(|s| s.rows),
            Some(1)
        );
        // The copy is complete: the mail waiting for staff is there, as such.
        let waiting: i64 = on_pool!(target, |p| sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM messages WHERE ",
            crate::needs_staff!()
        ))
        .fetch_one(p)
        .await
        .expect("staff"));
        assert_eq!(waiting, 2, "{}", target.backend());
        // New rows continue after the copied ids.
        let next = target
            .insert_file_message(b"Message-ID: <new@x>\r\n\r\nx", None, now)
            .await
            .expect("insert after copy");
        assert_eq!(next.id(), 5, "{}", target.backend());
        assert!(!target.is_empty().await.expect("full"));
    }

    /// [`TABLES`] names every table of the schema (a new one would not be copied).
    #[tokio::test]
    async fn every_table_is_copied() {
        for store in crate::store::test_stores("copy_tables").await {
            let listed: std::collections::BTreeSet<&str> =
                TABLES.iter().map(|(t, _, _)| *t).collect();
            let mut found = std::collections::BTreeSet::new();
            for (t, _, _) in TABLES {
                assert!(
                    !store.columns(t).await.expect("columns").is_empty(),
                    "{t} on {}",
                    store.backend()
                );
                found.insert(*t);
            }
            let all = store.table_names().await.expect("tables");
            let all: std::collections::BTreeSet<&str> = all
                .iter()
                .map(String::as_str)
                .filter(|t| !t.starts_with("_sqlx"))
                .collect();
            assert_eq!(all, listed, "{}", store.backend());
            assert_eq!(found, listed);
        }
    }
}
