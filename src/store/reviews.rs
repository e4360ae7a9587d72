//! The `reviews` and `review_imports` tables: the review decisions imported from the
//! reviewers' sheet (`review import`), each import recorded with its file, and for each branch
//! one current decision that later imports supersede.

use super::Cols as _;
use super::{Result, Store, Tx};
use crate::attach::Role;
use crate::campaign::review::{CurrentReview, Decision};
use crate::store::db_time;
use chrono::{DateTime, Utc};

/// A reviewers' sheet being imported: its file (already in the blob directory) and who
/// imported it.
#[derive(Debug, Clone, Copy)]
pub struct ReviewImport<'a> {
    pub file_name: &'a str,
    pub sha256: &'a str,
    pub size: usize,
    pub imported_by: &'a str,
    /// The campaign whose decisions these are.
    pub campaign: &'a str,
}

impl Store {
    /// Every current review decision, in the order they were imported.
    pub async fn current_reviews(&self) -> Result<Vec<CurrentReview>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT branch, level, amount_yuan, funded FROM reviews WHERE campaign = $1 AND is_current = TRUE ORDER BY id",
        )
        .bind(self.campaign())
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| CurrentReview {
            branch: r.col(0),
            level: r.col(1),
            amount_yuan: r.col(2),
            funded: r.col(3),
        })
        .collect()
        }))
    }

    /// [`Store::current_reviews`], each with the roles of the files its branch sent for
    /// closure so far (none read for a branch that is not funded): the facts of
    /// [`crate::campaign::closure::reviewed`].
    pub async fn current_reviews_with_closure_roles(
        &self,
    ) -> Result<Vec<(CurrentReview, Vec<Role>)>> {
        // One read for every branch's closure files, not one per funded branch: the board
        // reads this again after every change in the closure phase.
        let rows: Vec<(String, String)> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT DISTINCT s.branch_key, a.role FROM attachments a JOIN submissions s ON s.message_id = a.message_id
             WHERE s.campaign = $1 AND s.kind = 'closure'",
        )
        .bind(self.campaign())
        .fetch_all(p)
        .await?
        });
        let mut sent: std::collections::HashMap<String, Vec<Role>> =
            std::collections::HashMap::new();
        for (branch, role) in rows {
            sent.entry(branch).or_default().push(Role::parse(&role));
        }
        Ok(self
            .current_reviews()
            .await?
            .into_iter()
            .map(|r| {
                let roles = if r.funded {
                    sent.remove(&r.branch).unwrap_or_default()
                } else {
                    Vec::new()
                };
                (r, roles)
            })
            .collect())
    }

    /// How many branches have a current review decision.
    pub async fn current_review_count(&self) -> Result<i64> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM reviews WHERE campaign = $1 AND is_current = TRUE"
        )
        .bind(self.campaign())
        .fetch_one(p)
        .await?))
    }

    /// Branches with a current decision from an earlier import.
    pub async fn decided_branches(&self) -> Result<Vec<String>> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT DISTINCT branch FROM reviews WHERE campaign = $1 AND is_current = TRUE"
        )
        .bind(self.campaign())
        .fetch_all(p)
        .await?))
    }

    /// Stores an import and its decisions in one transaction: each decision becomes its
    /// branch's current one in the import's campaign, the one it replaces stays as history
    /// (another campaign's decision for the same branch stays that campaign's).
    pub async fn import_reviews(
        &self,
        file: &ReviewImport<'_>,
        decisions: &[Decision],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        self.record_blob(tx.conn(), file.sha256, file.size, now)
            .await?;
        on_conn!(tx.conn(), |c| {
            let import_id: i64 = sqlx::query_scalar(
                "INSERT INTO review_imports (file_name, file_sha256, imported_by, imported_at, decisions, campaign) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(file.file_name)
            .bind(file.sha256)
            .bind(file.imported_by)
            .bind(db_time(now))
            .bind(decisions.len() as i64)
            .bind(file.campaign)
            .fetch_one(&mut *c)
            .await?;
            for d in decisions {
                sqlx::query(
                    "UPDATE reviews SET is_current = FALSE WHERE campaign = $2 AND branch = $1",
                )
                .bind(&d.branch)
                .bind(file.campaign)
                .execute(&mut *c)
                .await?;
                sqlx::query(
                    "INSERT INTO reviews (import_id, sheet_row, branch, level, amount_yuan, funded, is_current, created_at, campaign) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8)",
                )
                .bind(import_id)
                .bind(d.row as i64)
                .bind(&d.branch)
                .bind(&d.level)
                .bind(d.amount_yuan)
                .bind(d.funded)
                .bind(db_time(now))
                .bind(file.campaign)
                .execute(&mut *c)
                .await?;
            }
        });
        tx.commit().await?;
        Ok(())
    }
}

/// The level and whether it is funded of `branch`'s current decision in `campaign`, inside a
/// write transaction (the closure checklist of a mail being processed).
pub async fn current_level(
    tx: &mut Tx,
    campaign: &str,
    branch: &str,
) -> Result<Option<(String, bool)>> {
    Ok(on_conn!(tx.conn(), |c| {
        sqlx::query_as(
        "SELECT level, funded FROM reviews WHERE campaign = $2 AND branch = $1 AND is_current = TRUE"
    )
    .bind(branch)
    .bind(campaign)
    .fetch_optional(c)
    .await?
    }))
}

#[cfg(test)]
mod tests {
    use super::{ReviewImport, current_level};
    use crate::attach::Role;
    use crate::campaign::review::{CurrentReview, Decision};
    use crate::store::Store;
    use chrono::{DateTime, Utc};

    fn decision(row: usize, branch: &str, level: &str, amount: Option<f64>) -> Decision {
        Decision {
            row,
            branch: branch.to_string(),
            level: level.to_string(),
            amount_yuan: amount,
            funded: amount.is_some(),
        }
    }

    /// A closure mail of `branch` with files of `roles`, written directly (message, version
    /// and attachment rows): storing mail is the other files' to test.
    async fn closure_files(store: &Store, n: u32, branch: &str, roles: &[&str]) {
        let sha = format!("{n:064x}");
        on_pool!(store, |p| {
            sqlx::query(
                "INSERT INTO blobs (sha256, size, created_at) VALUES ($1, 1, '2025-09-01T00:00:00Z')",
            )
            .bind(&sha)
            .execute(p)
            .await
            .expect("blob");
            let message = sqlx::query_scalar::<_, i64>(
                "INSERT INTO messages (source, raw_sha256, size, stored_at) VALUES ('file', $1, 1, '2025-09-01T00:00:00Z') RETURNING id",
            )
            .bind(&sha)
            .fetch_one(p)
            .await
            .expect("message");
            sqlx::query(
                "INSERT INTO submissions (kind, branch_key, branch, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at, campaign)
                 VALUES ('closure', $1, $1, 'exact', 1.0, '', $2, TRUE, $3, 'a@example.test', '2025-09-01T00:00:00Z', FALSE, '[]', '2025-09-01T00:00:00Z', '2026-spring')",
            )
            .bind(branch)
            .bind(i64::from(n))
            .bind(message)
            .execute(p)
            .await
            .expect("version");
            for (i, role) in roles.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO attachments (message_id, ordinal, filename, safe_name, content_type, format, role, size, sha256)
                     VALUES ($1, $2, 'f.docx', 'f.docx', 'application/octet-stream', 'docx', $3, 1, $4)",
                )
                .bind(message)
                .bind(i as i64)
                .bind(*role)
                .bind(&sha)
                .execute(p)
                .await
                .expect("attachment");
            }
        })
    }

    /// Imported decisions read back as the current ones, a later import superseding a
    /// branch's decision (the earlier one kept as history, not current); funded branches
    /// come with the roles of their closure files. On both backends.
    #[tokio::test]
    async fn review_decisions_round_trip() {
        for store in crate::store::test_stores("reviews").await {
            let store = store.for_campaign("2026-spring");
            let backend = store.backend();
            let now = DateTime::parse_from_rfc3339("2025-10-10T10:00:00+08:00")
                .expect("time")
                .with_timezone(&Utc);
            assert!(store.current_reviews().await.expect("none").is_empty());
            assert_eq!(store.current_review_count().await.expect("count"), 0);
            let sheet = store.blobs.put(b"the reviewers' sheet").expect("blob");
            let file = ReviewImport {
                file_name: "评审结果.xlsx",
                sha256: &sheet,
                size: 20,
                imported_by: "staff@example.test",
                campaign: "2026-spring",
            };
            store
                .import_reviews(
                    &file,
                    &[
                        decision(2, "海洋支部", "重点", Some(5000.0)),
                        decision(3, "化学支部", "一般", Some(2000.5)),
                        decision(4, "物理支部", "不立项", None),
                    ],
                    now,
                )
                .await
                .expect("first import");
            store
                .import_reviews(
                    &file,
                    &[decision(2, "化学支部", "不立项", None)],
                    now + chrono::Duration::hours(1),
                )
                .await
                .expect("second import");

            let current = store.current_reviews().await.expect("current");
            assert_eq!(
                current,
                [
                    CurrentReview {
                        branch: "海洋支部".to_string(),
                        level: "重点".to_string(),
                        amount_yuan: Some(5000.0),
                        funded: true,
                    },
                    CurrentReview {
                        branch: "物理支部".to_string(),
                        level: "不立项".to_string(),
                        amount_yuan: None,
                        funded: false,
                    },
                    CurrentReview {
                        branch: "化学支部".to_string(),
                        level: "不立项".to_string(),
                        amount_yuan: None,
                        funded: false,
                    },
                ],
                "{backend}"
            );
            assert_eq!(store.current_review_count().await.expect("count"), 3);
            let mut decided = store.decided_branches().await.expect("decided");
            decided.sort();
            assert_eq!(decided, ["化学支部", "海洋支部", "物理支部"], "{backend}");
            let history: i64 = on_pool!(store, |p| sqlx::query_scalar(
                "SELECT COUNT(*) FROM reviews WHERE branch = '化学支部' AND is_current = FALSE"
            )
            .fetch_one(p)
            .await
            .expect("history"));
            assert_eq!(history, 1, "{backend}: the superseded decision stays");
            for table in ["review_imports", "reviews"] {
                let campaigns = crate::store::test_campaigns(&store, table, "TRUE").await;
                assert_eq!(campaigns.len(), if table == "reviews" { 4 } else { 2 });
                assert!(
                    campaigns.iter().all(|c| c == "2026-spring"),
                    "{backend}: {table} {campaigns:?}"
                );
            }

            let mut tx = store.begin_write().await.expect("tx");
            assert_eq!(
                current_level(&mut tx, "2026-spring", "海洋支部")
                    .await
                    .expect("level"),
                Some(("重点".to_string(), true)),
                "{backend}"
            );
            assert_eq!(
                current_level(&mut tx, "2026-spring", "化学支部")
                    .await
                    .expect("level"),
                Some(("不立项".to_string(), false)),
                "{backend}"
            );
            assert_eq!(
                current_level(&mut tx, "2026-spring", "没有的支部")
                    .await
                    .expect("level"),
                None
            );
            tx.rollback().await.expect("rollback");

            // Closure files: a funded branch's roles (each once), none for one not funded.
            closure_files(&store, 1, "海洋支部", &["closure_report", "reimbursement"]).await;
            closure_files(&store, 2, "海洋支部", &["closure_report"]).await;
            closure_files(&store, 3, "物理支部", &["closure_report"]).await;
            let with_roles = store
                .current_reviews_with_closure_roles()
                .await
                .expect("with roles");
            let mut roles: Vec<(String, Vec<Role>)> = with_roles
                .into_iter()
                .map(|(r, mut roles)| {
                    roles.sort_by_key(|r| r.as_str());
                    (r.branch, roles)
                })
                .collect();
            roles.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                roles,
                [
                    ("化学支部".to_string(), vec![]),
                    (
                        "海洋支部".to_string(),
                        vec![Role::ClosureReport, Role::Reimbursement]
                    ),
                    ("物理支部".to_string(), vec![]),
                ],
                "{backend}"
            );
        }
    }
}
