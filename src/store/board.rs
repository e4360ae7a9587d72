//! What the board (看板) reads that no command needed before: when each application version
//! arrived, for the arrivals-per-day chart, and each branch's latest application in the few
//! columns 总览 and 支部 show. Plain Rust types out; the grouping is pure, in `web::board`.
//!
//! Why a read of its own instead of `export::latest`: the export decodes every field, every
//! finding and every attachment of every latest version, which at 10,000 branches takes the
//! better part of a second; the board needs the version, the time, the flags, the problem
//! codes and the 板块, which SQLite hands over (`json_extract`) in a few milliseconds.
//!
//! Both reads are aggregates each backend writes its own way (SQLite's `group_concat` and
//! `json_group_array`, PostgreSQL's `string_agg` and `json_agg`), so each has a statement per
//! backend; they answer the same text, which one decoding reads.

use super::{Pool, Result, Store, parse_db_time};
use chrono::{DateTime, Utc};

/// A branch's latest application as 总览 and 支部 show it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardLatest {
    /// The roster name.
    pub branch: String,
    pub version: i64,
    pub received_at: DateTime<Utc>,
    pub late: bool,
    pub sender_changed: bool,
    /// The problem codes.
    pub problems: Vec<String>,
    /// 申报板块 as the form (or summary) gives it.
    pub section: Option<String>,
}

// Each read answers in ONE row (the values joined in SQL) and is split here: handing
// 27,000 rows one by one from SQLite's thread to ours cost 40–90 ms per re-read at 10,000
// branches, against 5–10 ms for the same values in one row.

/// [`Store::application_arrivals`]' read: the `submissions_arrivals` index alone, the
/// times joined by commas (RFC 3339 has none).
// SQLite only: PostgreSQL uses PG_ARRIVALS (string_agg).
const ARRIVALS: &str = "SELECT COALESCE(group_concat(received_at, ','), '')
    FROM submissions WHERE campaign = $1 AND kind = 'application'";

/// [`ARRIVALS`] in PostgreSQL.
const PG_ARRIVALS: &str = "SELECT COALESCE(string_agg(received_at, ','), '')
    FROM submissions WHERE campaign = $1 AND kind = 'application'";

/// [`Store::board_latest`]' read: walks the `submissions_board` index (the 板块 is the
/// index's expression, word for word); one JSON array of
/// `[branch, version, received_at, late, sender_changed, problems, 板块, id]`.
// SQLite only: PostgreSQL uses PG_LATEST (json_agg(json_build_array(…))).
const LATEST: &str = "SELECT json_group_array(json_array(branch, version, received_at, late,
        sender_changed, problems,
        CASE WHEN json_valid(fields) THEN json_extract(fields, '$.section') END, id))
    FROM submissions
    WHERE campaign = $1 AND kind = 'application' AND is_latest = TRUE AND branch IS NOT NULL";

/// [`LATEST`] in PostgreSQL: the same array, as text (`[]` when there is no row, as SQLite's
/// `json_group_array` gives). PostgreSQL 15 has no `json_valid`, and one `fields` that does
/// not parse would fail the whole read, so the 板块 is read only from a `fields` that looks
/// like a JSON object: the only writer (`pipeline::record`) stores `serde_json::to_string` of
/// the extracted fields (an object) or NULL, and anything else gives no 板块, as in SQLite.
/// A `\u0000` escape (a NUL read out of a broken document) is valid JSON but fails `->` in
/// PostgreSQL ("cannot be converted to text"): a `fields` holding one is read with each such
/// escape (not an escaped backslash followed by `u0000`) made a space first.
/// The flags come out as JSON `true`/`false` here (0/1 in SQLite); [`flag`] reads both.
const PG_LATEST: &str = r"SELECT COALESCE(json_agg(json_build_array(branch, version, received_at,
        late, sender_changed, problems,
        CASE WHEN fields NOT LIKE '{%}' THEN NULL
            WHEN strpos(fields, '\u0000') = 0 THEN fields::json -> 'section'
            ELSE regexp_replace(fields, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\u0020', 'g')::json -> 'section'
        END, id))::text, '[]')
    FROM submissions
    WHERE campaign = $1 AND kind = 'application' AND is_latest = TRUE AND branch IS NOT NULL";

/// One element of [`LATEST`]'s array.
type LatestTuple = (
    String,
    i64,
    String,
    serde_json::Value,
    serde_json::Value,
    String,
    serde_json::Value,
    i64,
);

/// A flag of [`LatestTuple`]: SQLite's 0/1 or PostgreSQL's `false`/`true`.
fn flag(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

impl Store {
    /// The arrival time of every application version (not only the latest), oldest first.
    pub async fn application_arrivals(&self) -> Result<Vec<DateTime<Utc>>> {
        let joined: String = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_scalar(ARRIVALS)
                    .bind(self.campaign())
                    .fetch_one(p)
                    .await?
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar(PG_ARRIVALS)
                    .bind(self.campaign())
                    .fetch_one(p)
                    .await?
            }
        };
        let mut times: Vec<DateTime<Utc>> = joined.split(',').filter_map(parse_db_time).collect();
        times.sort_unstable();
        Ok(times)
    }

    /// The latest application of every recognised branch, in order of arrival.
    pub async fn board_latest(&self) -> Result<Vec<BoardLatest>> {
        let json: String = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_scalar(LATEST)
                    .bind(self.campaign())
                    .fetch_one(p)
                    .await?
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar(PG_LATEST)
                    .bind(self.campaign())
                    .fetch_one(p)
                    .await?
            }
        };
        let mut rows: Vec<(DateTime<Utc>, i64, BoardLatest)> = serde_json::from_str::<
            Vec<LatestTuple>,
        >(&json)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?
        .into_iter()
        .map(
            |(branch, version, received_at, late, sender_changed, problems, section, id)| {
                let received_at = parse_db_time(&received_at).unwrap_or_default();
                (
                    received_at,
                    id,
                    BoardLatest {
                        branch,
                        version,
                        received_at,
                        late: flag(&late),
                        sender_changed: flag(&sender_changed),
                        problems: serde_json::from_str(&problems).unwrap_or_default(),
                        section: section.as_str().map(str::to_string),
                    },
                )
            },
        )
        .collect();
        rows.sort_unstable_by_key(|(at, id, _)| (*at, *id));
        Ok(rows.into_iter().map(|(_, _, l)| l).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::super::submissions::insert_version;
    use super::super::submissions::testing::{at, message, version};
    use super::BoardLatest;
    use chrono::{DateTime, Utc};

    /// Only the latest application of each recognised branch, with its flags, problems and
    /// 板块 (absent or unreadable fields give none), and every version's arrival: the same on
    /// both backends.
    #[tokio::test]
    async fn the_board_reads_each_branchs_latest_application() {
        let mut answers: Vec<(Vec<BoardLatest>, Vec<DateTime<Utc>>)> = Vec::new();
        for store in crate::store::test_stores("board").await {
            let store = store.for_campaign("2025-autumn");
            answers.push(read_board(&store).await);
        }
        let (latest, arrivals) = &answers[0];
        let a = "土木工程学院本科生第一党支部";
        let b = "土木工程学院本科生第二党支部";
        let c = "土木工程学院本科生第三党支部";
        let shape: Vec<(&str, i64, bool, bool, Option<&str>)> = latest
            .iter()
            .map(|l| {
                (
                    l.branch.as_str(),
                    l.version,
                    l.late,
                    l.sender_changed,
                    l.section.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (a, 2, true, true, Some("<b>党建</b>")),
                (b, 1, false, false, None),
                (c, 1, false, false, Some("团建")),
            ],
            "{latest:?}"
        );
        assert!(latest[0].problems.is_empty());
        assert_eq!(latest[1].problems, ["missing_form"]);
        assert_eq!(latest[0].received_at, at(2));
        // Every version, the unrecognised one too, oldest first.
        assert_eq!(*arrivals, [at(1), at(2), at(3), at(4), at(5)]);
        for other in &answers[1..] {
            assert_eq!(other, &answers[0], "PostgreSQL reads what SQLite reads");
        }
    }

    /// Writes the board's test data on `store` (checking both reads empty first) and reads.
    async fn read_board(store: &Store) -> (Vec<BoardLatest>, Vec<DateTime<Utc>>) {
        let mut ids = Vec::new();
        for n in 1..=5 {
            ids.push(message(store, n, "processed", Some("application")).await);
        }
        assert!(store.board_latest().await.expect("empty").is_empty());
        assert!(
            store
                .application_arrivals()
                .await
                .expect("empty")
                .is_empty()
        );
        let a = "土木工程学院本科生第一党支部";
        let b = "土木工程学院本科生第二党支部";
        let c = "土木工程学院本科生第三党支部";
        let mut tx = store.begin_write().await.expect("tx");
        insert_version(
            &mut tx,
            &version(a, 1, ids[0], 1, Some(r#"{"section":"旧板块"}"#)),
        )
        .await
        .expect("a1");
        let mut a2 = version(a, 2, ids[1], 2, Some(r#"{"section":"<b>党建</b>"}"#));
        a2.sender_changed = true;
        insert_version(&mut tx, &a2).await.expect("a2");
        insert_version(&mut tx, &version(b, 1, ids[2], 3, Some("not json")))
            .await
            .expect("b1");
        // A NUL read out of a document, escaped by serde_json, next to an escaped backslash
        // followed by the letters u0000: PostgreSQL's JSON reader must not stumble on them.
        let mut c1 = version(
            c,
            1,
            ids[3],
            4,
            Some(r#"{"project_name":"甲\u0000乙\\u0000","section":"团建"}"#),
        );
        c1.problems = "[]".into();
        insert_version(&mut tx, &c1).await.expect("c1");
        let mut unknown = version("?某支部", 1, ids[4], 5, None);
        unknown.branch = None;
        insert_version(&mut tx, &unknown).await.expect("unknown");
        tx.commit().await.expect("commit");
        (
            store.board_latest().await.expect("read"),
            store.application_arrivals().await.expect("arrivals"),
        )
    }

    /// The reads the board repeats after every change walk their indexes (migration 12) in
    /// the order asked for: no table scan, no sort.
    #[tokio::test]
    async fn the_boards_reads_walk_indexes_not_tables() {
        use sqlx::Row as _;
        let root = std::env::temp_dir().join(format!("shenbao-board-plans-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let url = format!("sqlite://{}", root.join("shenbao.db").display());
        let store = Store::open(&url, &root).await.expect("open");
        for (sql, index, covering) in [
            (super::ARRIVALS, "submissions_arrivals", true),
            (super::LATEST, "submissions_board", true),
            (
                super::super::messages::MESSAGE_COUNTS,
                "messages_by_campaign",
                true,
            ),
        ] {
            let plan: Vec<String> =
                sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(store.pool.sqlite())
                    .await
                    .expect("plan")
                    .iter()
                    .map(|r| r.get::<String, _>(3))
                    .collect();
            let text = plan.join("; ");
            assert!(text.contains(index), "{sql}: {text}");
            assert!(!text.contains("TEMP B-TREE"), "{sql}: {text}");
            if covering {
                assert!(text.contains("COVERING INDEX"), "{sql}: {text}");
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
