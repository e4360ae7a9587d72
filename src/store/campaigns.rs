//! Which campaigns a database holds, and renaming one: a database written before campaigns
//! had ids files everything under `default`; an office that then writes `[[campaign]]` blocks
//! names that semester (`id = "2025-autumn"`) and renames its rows to match with
//! `shenbao db rename-campaign default 2025-autumn`.
//!
//! Not pure: SQL.

use super::{Result, Store};

/// What [`Store::rename_campaign`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renamed {
    /// The rows moved, per table (messages, submissions, outbox, ledger, review_imports,
    /// reviews).
    Moved(Vec<(&'static str, u64)>),
    /// The database holds nothing under the old id.
    Nothing,
    /// The new id already has versions or ledger keys: merging two campaigns could number a
    /// branch's versions twice, so nothing was changed.
    TargetInUse,
}

impl Store {
    /// Every campaign the messages are filed under, with how many messages each has, by id.
    pub async fn campaign_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT campaign, COUNT(*) FROM messages GROUP BY campaign ORDER BY campaign"
        )
        .fetch_all(p)
        .await?))
    }

    /// Files every row of campaign `old` under `new`, in one transaction; see [`Renamed`].
    pub async fn rename_campaign(&self, old: &str, new: &str) -> Result<Renamed> {
        let mut tx = self.begin_write().await?;
        let (in_use, present): (i64, i64) = on_conn!(tx.conn(), |c| {
            sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM submissions WHERE campaign = $2) + (SELECT COUNT(*) FROM ledger WHERE campaign = $2),
                    (SELECT COUNT(*) FROM messages WHERE campaign = $1) + (SELECT COUNT(*) FROM outbox WHERE campaign = $1)
                      + (SELECT COUNT(*) FROM review_imports WHERE campaign = $1)"
        )
        .bind(old)
        .bind(new)
        .fetch_one(c)
        .await?
        });
        if in_use > 0 {
            return Ok(Renamed::TargetInUse);
        }
        if present == 0 {
            return Ok(Renamed::Nothing);
        }
        let moved = on_conn!(tx.conn(), |c| {
            let mut moved = Vec::new();
            for (table, sql) in [
                (
                    "messages",
                    "UPDATE messages SET campaign = $2 WHERE campaign = $1",
                ),
                (
                    "submissions",
                    "UPDATE submissions SET campaign = $2 WHERE campaign = $1",
                ),
                (
                    "outbox",
                    "UPDATE outbox SET campaign = $2 WHERE campaign = $1",
                ),
                (
                    "ledger",
                    "UPDATE ledger SET campaign = $2 WHERE campaign = $1",
                ),
                (
                    "review_imports",
                    "UPDATE review_imports SET campaign = $2 WHERE campaign = $1",
                ),
                (
                    "reviews",
                    "UPDATE reviews SET campaign = $2 WHERE campaign = $1",
                ),
            ] {
                let n = sqlx::query(sql)
                    .bind(old)
                    .bind(new)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                moved.push((table, n));
            }
            moved
        });
        tx.commit().await?;
        Ok(Renamed::Moved(moved))
    }
}

#[cfg(test)]
mod tests {
    use super::Renamed;
    use crate::store::submissions::insert_version;
    use crate::store::submissions::testing::{message, version};

    /// A database of `default` rows renamed to the id the config now gives it: every row
    /// moves and reads back under the new id; renaming onto a campaign with versions, or a
    /// campaign that has nothing, changes nothing. On both backends.
    #[tokio::test]
    async fn a_campaign_is_renamed_whole_or_not_at_all() {
        for store in crate::store::test_stores("campaign_rename").await {
            let backend = store.backend();
            let a = "土木工程学院本科生第一党支部";
            let m1 = message(&store, 1, "processed", Some("application")).await;
            let m2 = message(&store, 2, "processed", Some("application")).await;
            let mut tx = store.begin_write().await.expect("tx");
            let mut v = version(a, 1, m1, 1, None);
            v.campaign = "default".into();
            insert_version(&mut tx, &v).await.expect("v1");
            let mut spring = version(a, 1, m2, 2, None);
            spring.campaign = "2026-spring".into();
            insert_version(&mut tx, &spring).await.expect("spring v1");
            tx.commit().await.expect("commit");
            on_pool!(store, |p| {
                sqlx::query(
                "UPDATE messages SET campaign = CASE WHEN id = $1 THEN 'default' ELSE '2026-spring' END"
            )
            .bind(m1)
            .execute(p)
            .await
            .expect("file messages")
            .rows_affected()
            });

            assert_eq!(
                store
                    .rename_campaign("default", "2026-spring")
                    .await
                    .expect("rename"),
                Renamed::TargetInUse,
                "{backend}"
            );
            assert_eq!(
                store
                    .rename_campaign("2024-spring", "x")
                    .await
                    .expect("rename"),
                Renamed::Nothing,
                "{backend}"
            );
            let before = store.campaign_counts().await.expect("counts");
            assert_eq!(
                before,
                [("2026-spring".to_string(), 1), ("default".to_string(), 1)],
                "{backend}"
            );
            let Renamed::Moved(moved) = store
                .rename_campaign("default", "2025-autumn")
                .await
                .expect("rename")
            else {
                panic!("{backend}: nothing moved");
            };
            assert_eq!(
                moved.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
                [1, 1, 0, 0, 0, 0],
                "{backend}: {moved:?}"
            );
            let autumn = store.for_campaign("2025-autumn");
            let latest = autumn.latest_submissions().await.expect("latest");
            assert_eq!(latest.len(), 1, "{backend}");
            assert_eq!(latest[0].message, m1, "{backend}");
            assert!(
                store
                    .latest_submissions()
                    .await
                    .expect("default")
                    .is_empty(),
                "{backend}: nothing left under default"
            );
            assert_eq!(
                store.campaign_counts().await.expect("counts"),
                [
                    ("2025-autumn".to_string(), 1),
                    ("2026-spring".to_string(), 1)
                ],
                "{backend}"
            );
        }
    }
}
