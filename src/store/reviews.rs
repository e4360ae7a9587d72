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
}

impl Store {
    /// Every current review decision, in the order they were imported.
    pub async fn current_reviews(&self) -> Result<Vec<CurrentReview>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT branch, level, amount_yuan, funded FROM reviews WHERE is_current = TRUE ORDER BY id",
        )
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
             WHERE s.kind = 'closure'",
        )
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
            "SELECT COUNT(*) FROM reviews WHERE is_current = TRUE"
        )
        .fetch_one(p)
        .await?))
    }

    /// Branches with a current decision from an earlier import.
    pub async fn decided_branches(&self) -> Result<Vec<String>> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT DISTINCT branch FROM reviews WHERE is_current = TRUE"
        )
        .fetch_all(p)
        .await?))
    }

    /// Stores an import and its decisions in one transaction: each decision becomes its
    /// branch's current one, the one it replaces stays as history.
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
                "INSERT INTO review_imports (file_name, file_sha256, imported_by, imported_at, decisions) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(file.file_name)
            .bind(file.sha256)
            .bind(file.imported_by)
            .bind(db_time(now))
            .bind(decisions.len() as i64)
            .fetch_one(&mut *c)
            .await?;
            for d in decisions {
                sqlx::query("UPDATE reviews SET is_current = FALSE WHERE branch = $1")
                    .bind(&d.branch)
                    .execute(&mut *c)
                    .await?;
                sqlx::query(
                    "INSERT INTO reviews (import_id, sheet_row, branch, level, amount_yuan, funded, is_current, created_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7)",
                )
                .bind(import_id)
                .bind(d.row as i64)
                .bind(&d.branch)
                .bind(&d.level)
                .bind(d.amount_yuan)
                .bind(d.funded)
                .bind(db_time(now))
                .execute(&mut *c)
                .await?;
            }
        });
        tx.commit().await?;
        Ok(())
    }
}

/// The level and whether it is funded of `branch`'s current decision, inside a write
/// transaction (the closure checklist of a mail being processed).
pub async fn current_level(tx: &mut Tx, branch: &str) -> Result<Option<(String, bool)>> {
    Ok(on_conn!(tx.conn(), |c| sqlx::query_as(
        "SELECT level, funded FROM reviews WHERE branch = $1 AND is_current = TRUE"
    )
    .bind(branch)
    .fetch_optional(c)
    .await?))
}
