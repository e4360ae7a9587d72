//! The `submissions` table: each version of an application or closure mail a branch sent,
//! with its matched branch, problems and fields, and the views of it that `export`, `status`,
//! the digest, the closure phase and the review import read.
//!
//! The SQL of versions (the `submissions` table) as processing writes them: the next version
//! number of a branch, and a new version that replaces the latest.
//!
//! Not pure: SQL.

use super::{Cols, Result, Store, Tx, time_col};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

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

impl Store {
    /// Versions from unfamiliar addresses recorded in `(since, until]`, oldest first.
    pub async fn sender_changes(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<SenderChange>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
                "SELECT message_id, kind, branch, version, sender, received_at FROM submissions
                 WHERE sender_changed = TRUE AND branch IS NOT NULL AND created_at > $1 AND created_at <= $2 AND campaign = $3 ORDER BY id",
            )
            .bind(since.map(db_time).unwrap_or_default())
            .bind(until.map_or_else(|| "9999".to_string(), db_time))
            .bind(self.campaign())
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| SenderChange {
                message: r.get(0),
                kind: r.get(1),
                branch: r.get(2),
                version: r.get(3),
                sender: r.get(4),
                received_at: time_col(r, 5),
        })
        .collect()
        }))
    }
}

/// The submission columns [`SubmissionRow`] reads, in its order, for a `WHERE` clause. A
/// macro so the query stays one `&'static str` (sqlx takes no runtime-built SQL).
macro_rules! submissions_where {
    ($where:literal) => {
        concat!(
            "SELECT s.kind, s.branch, s.college, s.branch_text, s.match_kind, s.match_score, s.match_reason, s.version,
                    (SELECT COUNT(*) FROM submissions o WHERE o.campaign = s.campaign AND o.kind = s.kind AND o.branch_key = s.branch_key),
                    s.received_at, s.late, s.sender, m.subject, m.message_id, s.problems, s.message_id,
                    s.fields, s.fields_source, s.problem_details, s.sender_changed, s.suggested_branch
             FROM submissions s JOIN messages m ON m.id = s.message_id WHERE ",
            $where
        )
    };
}

/// A version of a submission as `export` and `show` read it, with its mail's subject and
/// Message-ID; the JSON columns decoded.
#[derive(Debug, Clone)]
pub struct SubmissionRow {
    pub kind: String,
    pub branch: Option<String>,
    pub college: Option<String>,
    /// The branch as the subject wrote it.
    pub branch_text: Option<String>,
    pub match_kind: String,
    pub match_score: f64,
    pub match_reason: String,
    pub version: i64,
    /// How many versions of this kind the branch has sent.
    pub versions: i64,
    pub received_at: DateTime<Utc>,
    pub late: bool,
    pub sender: String,
    pub subject: Option<String>,
    /// The mail's Message-ID header.
    pub message_id: Option<String>,
    pub problems: Vec<String>,
    /// The `messages` row of the mail.
    pub message: i64,
    pub fields: Option<serde_json::Value>,
    pub fields_source: Option<String>,
    pub problem_details: Vec<serde_json::Value>,
    pub sender_changed: bool,
    pub suggested_branch: Option<String>,
}

fn submission_row(r: &impl Cols) -> SubmissionRow {
    SubmissionRow {
        kind: r.col(0),
        branch: r.col(1),
        college: r.col(2),
        branch_text: r.col(3),
        match_kind: r.col(4),
        match_score: r.col(5),
        match_reason: r.col(6),
        version: r.col(7),
        versions: r.col(8),
        received_at: time_col(r, 9),
        late: r.col(10),
        sender: r.col(11),
        subject: r.col(12),
        message_id: r.col(13),
        problems: serde_json::from_str(&r.col::<String>(14)).unwrap_or_default(),
        message: r.col(15),
        fields: r
            .col::<Option<String>>(16)
            .and_then(|j| serde_json::from_str(&j).ok()),
        fields_source: r.col(17),
        problem_details: r
            .col::<Option<String>>(18)
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        sender_changed: r.col(19),
        suggested_branch: r.col(20),
    }
}

/// A closure mail of a branch, as the materials bundle reads it.
#[derive(Debug, Clone)]
pub struct ClosureSubmission {
    pub branch_key: String,
    pub branch: Option<String>,
    pub college: Option<String>,
    /// The branch as the subject wrote it.
    pub branch_text: Option<String>,
    /// The `messages` row of the mail.
    pub message: i64,
    pub received_at: Option<DateTime<Utc>>,
}

/// How many branches' latest applications are in, and how they stand, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplicationCounts {
    /// Of recognised branches.
    pub applied: i64,
    /// Of recognised branches, without problems.
    pub clean: i64,
    /// Of mail whose branch was not recognised.
    pub unknown_branch: i64,
}

impl Store {
    /// Every branch's latest submission of each kind, in order of arrival.
    pub async fn latest_submissions(&self) -> Result<Vec<SubmissionRow>> {
        Ok(on_pool!(self, |p| sqlx::query(submissions_where!(
            "s.campaign = $1 AND s.is_latest = TRUE ORDER BY s.received_at, s.id"
        ))
        .bind(self.campaign())
        .fetch_all(p)
        .await?
        .iter()
        .map(submission_row)
        .collect()))
    }

    /// Every version of one branch's submissions (matched by roster name or as written),
    /// oldest first.
    pub async fn submission_history(&self, branch: &str) -> Result<Vec<SubmissionRow>> {
        let key = crate::textnorm::normalize(branch);
        Ok(on_pool!(self, |p| {
            sqlx::query(submissions_where!(
            "s.campaign = $3 AND (s.branch = $1 OR s.branch_key = $1 OR s.branch_key = $2) ORDER BY s.kind, s.version"
        ))
        .bind(branch)
        .bind(format!("?{key}"))
        .bind(self.campaign())
        .fetch_all(p)
        .await?
        .iter()
        .map(submission_row)
        .collect()
        }))
    }

    /// Every closure mail, newest first.
    pub async fn closure_submissions(&self) -> Result<Vec<ClosureSubmission>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
                "SELECT branch_key, branch, college, branch_text, message_id, received_at FROM submissions
             WHERE campaign = $1 AND kind = 'closure' ORDER BY received_at DESC, id DESC",
            )
            .bind(self.campaign())
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| ClosureSubmission {
                branch_key: r.get(0),
                branch: r.get(1),
                college: r.get(2),
                branch_text: r.get(3),
                message: r.get(4),
                received_at: crate::store::parse_db_time(&r.get::<String, _>(5)),
        })
        .collect()
        }))
    }

    /// The latest applications counted for `status`.
    pub async fn application_counts(&self) -> Result<ApplicationCounts> {
        Ok(on_pool!(self, |p| {
            let row = sqlx::query(
                "SELECT COUNT(*) FILTER (WHERE branch IS NOT NULL), COUNT(*) FILTER (WHERE branch IS NOT NULL AND problems = '[]'), COUNT(*) FILTER (WHERE branch IS NULL)
             FROM submissions WHERE campaign = $1 AND kind = 'application' AND is_latest = TRUE",
            )
            .bind(self.campaign())
            .fetch_one(p)
            .await?;
            ApplicationCounts {
                applied: row.get(0),
                clean: row.get(1),
                unknown_branch: row.get(2),
            }
        }))
    }

    /// Branches (roster names) whose latest application is in, in order of arrival.
    pub async fn applicants(&self) -> Result<Vec<String>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT branch FROM submissions WHERE campaign = $1 AND kind = 'application' AND is_latest = TRUE AND branch IS NOT NULL
             ORDER BY received_at, id",
            )
            .bind(self.campaign())
            .fetch_all(p)
            .await?
        }))
    }
}

/// The next version number of `branch_key`'s submissions of `kind` in `campaign` (1 for the
/// first: each campaign counts its own).
pub async fn next_version(
    tx: &mut Tx,
    campaign: &str,
    kind: &str,
    branch_key: &str,
) -> Result<i64> {
    Ok(on_conn!(tx.conn(), |c| {
        sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM submissions WHERE campaign = $3 AND kind = $1 AND branch_key = $2",
    )
    .bind(kind)
    .bind(branch_key)
    .bind(campaign)
    .fetch_one(c)
    .await?
    }))
}

/// A version as it is written; JSON columns already serialised.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// `application` or `closure`.
    pub kind: &'static str,
    pub branch_key: String,
    pub branch: Option<String>,
    pub college: Option<String>,
    pub branch_text: Option<String>,
    /// `exact`, `fuzzy` or `unknown`.
    pub match_kind: &'static str,
    pub match_score: f64,
    pub match_reason: String,
    pub version: i64,
    /// The message it came in.
    pub message_id: i64,
    pub sender: String,
    pub received_at: DateTime<Utc>,
    pub late: bool,
    /// The problem codes, as a JSON list.
    pub problems: String,
    pub created_at: DateTime<Utc>,
    pub fields: Option<String>,
    pub fields_source: Option<&'static str>,
    pub form_fields: Option<String>,
    pub summary_fields: Option<String>,
    /// The findings, as JSON.
    pub problem_details: String,
    pub sender_changed: bool,
    pub suggested_branch: Option<String>,
    pub content_key: String,
    /// The campaign of the mail it came in.
    pub campaign: String,
}

/// Writes `v` as the latest version of its branch in its campaign (the previous latest of that
/// campaign no longer is; another campaign's stays its own latest).
pub async fn insert_version(tx: &mut Tx, v: &NewVersion) -> Result<()> {
    // Version 1 is the first row of its key (numbers come from `next_version` in the same
    // transaction): no earlier row to mark, and one round trip saved for most branches.
    let earlier = v.version > 1;
    on_conn!(tx.conn(), |c| {
        if earlier {
            sqlx::query("UPDATE submissions SET is_latest = FALSE WHERE campaign = $3 AND kind = $1 AND branch_key = $2")
                .bind(v.kind)
                .bind(&v.branch_key)
                .bind(&v.campaign)
                .execute(&mut *c)
                .await?;
        }
        sqlx::query(
            "INSERT INTO submissions (kind, branch_key, branch, college, branch_text, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at,
                                      fields, fields_source, form_fields, summary_fields, problem_details, sender_changed, suggested_branch, content_key, campaign)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, TRUE, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)",
        )
        .bind(v.kind)
        .bind(&v.branch_key)
        .bind(&v.branch)
        .bind(&v.college)
        .bind(&v.branch_text)
        .bind(v.match_kind)
        .bind(v.match_score)
        .bind(&v.match_reason)
        .bind(v.version)
        .bind(v.message_id)
        .bind(&v.sender)
        .bind(db_time(v.received_at))
        .bind(v.late)
        .bind(&v.problems)
        .bind(db_time(v.created_at))
        .bind(&v.fields)
        .bind(v.fields_source)
        .bind(&v.form_fields)
        .bind(&v.summary_fields)
        .bind(&v.problem_details)
        .bind(v.sender_changed)
        .bind(&v.suggested_branch)
        .bind(&v.content_key)
        .bind(&v.campaign)
        .execute(&mut *c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// What the store's tests of submissions, corrections, attachments and the board write:
/// messages (written by SQL here, so these tests need no other file of the store) and
/// versions.
#[cfg(test)]
pub(crate) mod testing {
    use super::NewVersion;
    use crate::store::{Store, db_time};
    use chrono::{DateTime, TimeZone as _, Utc};

    /// 2025-09-20 01:00 UTC plus `minutes`.
    pub(crate) fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    /// A `messages` row numbered `n` (its Message-ID `<mN@x>`, subject `第N封`), arrived at
    /// [`at`]`(n)`, with `status` and `disposition`; its id.
    pub(crate) async fn message(
        store: &Store,
        n: i64,
        status: &str,
        disposition: Option<&str>,
    ) -> i64 {
        let sha = crate::store::blobs::sha256_hex(format!("mail {n}").as_bytes());
        on_pool!(store, |p| {
            sqlx::query(
                "INSERT INTO blobs (sha256, size, created_at) VALUES ($1, 1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&sha)
            .bind(db_time(at(0)))
            .execute(p)
            .await
            .expect("blob");
            sqlx::query_scalar(
                "INSERT INTO messages (source, message_id, raw_sha256, size, internal_date, stored_at, subject, status, disposition, needs_staff)
                 VALUES ('file', $1, $2, 1, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(format!("<m{n}@x>"))
            .bind(&sha)
            .bind(db_time(at(n)))
            .bind(db_time(at(1000)))
            .bind(format!("第{n}封"))
            .bind(status)
            .bind(disposition)
            .bind(disposition == Some("question"))
            .fetch_one(p)
            .await
            .expect("message")
        })
    }

    /// Version `n` of `branch`'s application in message `message`, received at
    /// [`at`]`(minutes)`; version 1 lacks its form, version 2 is late.
    pub(crate) fn version(
        branch: &str,
        n: i64,
        message: i64,
        minutes: i64,
        fields: Option<&str>,
    ) -> NewVersion {
        NewVersion {
            kind: "application",
            branch_key: branch.to_string(),
            branch: Some(branch.to_string()),
            college: Some("土木工程学院".into()),
            branch_text: Some(branch.to_string()),
            match_kind: "exact",
            match_score: 1.0,
            match_reason: String::new(),
            version: n,
            message_id: message,
            sender: "a@example.test".into(),
            received_at: at(minutes),
            late: n == 2,
            problems: if n == 1 { r#"["missing_form"]"# } else { "[]" }.into(),
            created_at: at(minutes + 1),
            fields: fields.map(str::to_string),
            fields_source: Some("form"),
            form_fields: None,
            summary_fields: None,
            problem_details: "[]".into(),
            sender_changed: false,
            suggested_branch: None,
            content_key: format!("k{message}"),
            campaign: "2025-autumn".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{at, message, version};
    use super::{ApplicationCounts, insert_version, next_version};

    /// Versions written by processing read back on both backends: the latest of each branch
    /// and kind, a branch's history, the closure mails, the counts for `status`, the
    /// applicants and the versions from an unfamiliar sender.
    #[tokio::test]
    async fn versions_are_written_and_read_back() {
        for store in crate::store::test_stores("submissions").await {
            let store = store.for_campaign("2025-autumn");
            let backend = store.backend();
            let a = "土木工程学院本科生第一党支部";
            let m: Vec<i64> = processed_messages(&store, 5).await;
            let unknown_key = format!("?{}", crate::textnorm::normalize("某支部"));
            let mut tx = store.begin_write().await.expect("tx");
            assert_eq!(
                next_version(&mut tx, "2025-autumn", "application", a)
                    .await
                    .expect("n"),
                1
            );
            insert_version(
                &mut tx,
                &version(
                    a,
                    1,
                    m[0],
                    1,
                    Some(r#"{"section":"党建","budget_yuan":3000}"#),
                ),
            )
            .await
            .expect("v1");
            assert_eq!(
                next_version(&mut tx, "2025-autumn", "application", a)
                    .await
                    .expect("n"),
                2
            );
            let mut v2 = version(a, 2, m[1], 2, None);
            v2.sender = "new@example.test".into();
            v2.sender_changed = true;
            v2.problem_details = r#"[{"code":"late"}]"#.into();
            insert_version(&mut tx, &v2).await.expect("v2");
            let mut closure = version(a, 1, m[2], 3, None);
            closure.kind = "closure";
            insert_version(&mut tx, &closure).await.expect("closure");
            let mut unknown = version(&unknown_key, 1, m[3], 4, None);
            unknown.branch = None;
            unknown.college = None;
            unknown.branch_text = Some("某支部".into());
            unknown.match_kind = "unknown";
            unknown.match_score = 0.25;
            unknown.suggested_branch = Some(a.into());
            insert_version(&mut tx, &unknown).await.expect("unknown");
            assert_eq!(
                next_version(&mut tx, "2025-autumn", "closure", a)
                    .await
                    .expect("n"),
                2
            );
            tx.commit().await.expect("commit");
            assert_eq!(
                crate::store::test_campaigns(&store, "submissions", "TRUE").await,
                ["2025-autumn"; 4],
                "{backend}: each version carries its campaign"
            );

            let latest = store.latest_submissions().await.expect("latest");
            let shape: Vec<(&str, Option<&str>, i64, i64, i64)> = latest
                .iter()
                .map(|r| {
                    (
                        r.kind.as_str(),
                        r.branch.as_deref(),
                        r.version,
                        r.versions,
                        r.message,
                    )
                })
                .collect();
            assert_eq!(
                shape,
                [
                    ("application", Some(a), 2, 2, m[1]),
                    ("closure", Some(a), 1, 1, m[2]),
                    ("application", None, 1, 1, m[3]),
                ],
                "{backend}"
            );
            let v2 = &latest[0];
            assert!(v2.late && v2.sender_changed, "{backend}");
            assert_eq!(v2.sender, "new@example.test", "{backend}");
            assert_eq!(v2.received_at, at(2), "{backend}");
            assert_eq!(v2.subject.as_deref(), Some("第2封"), "{backend}");
            assert_eq!(v2.message_id.as_deref(), Some("<m2@x>"), "{backend}");
            assert!(v2.problems.is_empty(), "{backend}");
            assert_eq!(
                v2.problem_details,
                [serde_json::json!({"code": "late"})],
                "{backend}"
            );
            assert_eq!(v2.fields, None, "{backend}");
            assert_eq!(v2.college.as_deref(), Some("土木工程学院"), "{backend}");
            let u = &latest[2];
            assert_eq!(u.match_kind, "unknown", "{backend}");
            assert_eq!(u.match_score, 0.25, "{backend}");
            assert_eq!(u.suggested_branch.as_deref(), Some(a), "{backend}");

            let history = store.submission_history(a).await.expect("history");
            let shape: Vec<(&str, i64)> = history
                .iter()
                .map(|r| (r.kind.as_str(), r.version))
                .collect();
            assert_eq!(
                shape,
                [("application", 1), ("application", 2), ("closure", 1)],
                "{backend}"
            );
            let v1 = &history[0];
            assert_eq!(v1.problems, ["missing_form"], "{backend}");
            assert!(!v1.late && !v1.sender_changed, "{backend}");
            assert_eq!(
                v1.fields,
                Some(serde_json::json!({"section": "党建", "budget_yuan": 3000})),
                "{backend}"
            );
            assert_eq!(v1.fields_source.as_deref(), Some("form"), "{backend}");
            let by_text = store.submission_history("某支部").await.expect("history");
            assert_eq!(by_text.len(), 1, "{backend}");
            assert_eq!(by_text[0].message, m[3], "{backend}");

            let closures = store.closure_submissions().await.expect("closures");
            assert_eq!(closures.len(), 1, "{backend}");
            assert_eq!(closures[0].branch_key, a, "{backend}");
            assert_eq!(closures[0].message, m[2], "{backend}");
            assert_eq!(closures[0].received_at, Some(at(3)), "{backend}");

            assert_eq!(
                store.application_counts().await.expect("counts"),
                ApplicationCounts {
                    applied: 1,
                    clean: 1,
                    unknown_branch: 1
                },
                "{backend}"
            );
            assert_eq!(store.applicants().await.expect("applicants"), [a]);

            let changes = store.sender_changes(None, None).await.expect("changes");
            assert_eq!(changes.len(), 1, "{backend}");
            let c = &changes[0];
            assert_eq!(
                (c.message, c.kind.as_str(), c.branch.as_str(), c.version),
                (m[1], "application", a, 2),
                "{backend}"
            );
            assert_eq!(c.sender, "new@example.test", "{backend}");
            assert_eq!(c.received_at, at(2), "{backend}");
            // Recorded at at(3): inside (at(2), at(3)], outside (at(3), …].
            assert_eq!(
                store
                    .sender_changes(Some(at(2)), Some(at(3)))
                    .await
                    .expect("window")
                    .len(),
                1,
                "{backend}"
            );
            assert!(
                store
                    .sender_changes(Some(at(3)), None)
                    .await
                    .expect("after")
                    .is_empty(),
                "{backend}"
            );
        }
    }

    /// `n` processed messages, numbered 1…n.
    async fn processed_messages(store: &crate::store::Store, n: i64) -> Vec<i64> {
        let mut ids = Vec::new();
        for i in 1..=n {
            ids.push(message(store, i, "processed", Some("application")).await);
        }
        ids
    }
}
