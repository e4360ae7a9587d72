//! The SQL of staff corrections (`reprocess`, `assign`, `resolve`, see `crate::pipeline::correct`): what
//! a message was, forgetting what processing wrote, renumbering a branch's versions.

use super::{Result, Store, Tx};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// What one message is, as its rows say: disposition (or status), branch, its submission's
/// version and problems and fields (JSON as stored), whether it waits for a person.
#[derive(Debug, Clone)]
pub struct MessageState {
    pub disposition: String,
    pub branch: Option<String>,
    pub version: Option<i64>,
    pub latest: bool,
    pub problems: Option<String>,
    pub fields: Option<String>,
    pub needs_staff: bool,
}

/// A message as a correction sees it before acting on it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub status: String,
    pub disposition: Option<String>,
    /// INTERNALDATE, else when it was stored (db time text: sorts in time order).
    pub arrival: String,
    /// For an application whose branch was not recognised: the roster branch its form names.
    pub suggested_branch: Option<String>,
}

impl Store {
    /// Message `id` as a correction sees it; `None` when there is no such message.
    pub async fn candidate(&self, id: i64) -> Result<Option<Candidate>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT m.status, m.disposition, COALESCE(m.internal_date, m.stored_at),
                    (SELECT s.suggested_branch FROM submissions s WHERE s.message_id = m.id)
             FROM messages m WHERE m.id = $1",
        )
        .bind(id)
        .fetch_optional(p)
        .await?
        .map(|r| Candidate {
            status: r.get(0),
            disposition: r.get(1),
            arrival: r.get(2),
            suggested_branch: r.get(3),
        })))
    }

    /// Every processed message that can be replayed (not our own copies, not mail too large to
    /// read), in arrival order.
    pub async fn replayable_ids(&self) -> Result<Vec<i64>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT id FROM messages WHERE status != 'stored' AND COALESCE(disposition, '') NOT IN ('own_copy', 'too_large')
                 ORDER BY COALESCE(internal_date, stored_at), id",
            )
            .fetch_all(p)
            .await?
        }))
    }

    /// Messages whose processing failed, in arrival order.
    pub async fn failed_ids(&self) -> Result<Vec<i64>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT id FROM messages WHERE status = 'failed' ORDER BY COALESCE(internal_date, stored_at), id",
            )
            .fetch_all(p)
            .await?
        }))
    }

    /// Records staff's `assign` (`Some`), or takes back exactly that assignment (`None` with
    /// the name that was set).
    pub async fn set_assigned(&self, id: i64, branch: Option<&str>, was: &str) -> Result<()> {
        match branch {
            Some(b) => on_pool!(self, |p| sqlx::query(
                "UPDATE messages SET assigned_branch = $1 WHERE id = $2"
            )
            .bind(b)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()),
            None => {
                on_pool!(self, |p| {
                    sqlx::query(
                        "UPDATE messages SET assigned_branch = NULL WHERE id = $1 AND assigned_branch = $2",
                    )
                    .bind(id)
                    .bind(was)
                    .execute(p)
                    .await?
                    .rows_affected()
                })
            }
        };
        Ok(())
    }

    /// Marks message `id` handled when it waits for a person; `false` when it does not.
    pub async fn resolve(&self, id: i64, note: Option<&str>, now: DateTime<Utc>) -> Result<bool> {
        let done = on_pool!(self, |p| sqlx::query(concat!(
            "UPDATE messages SET resolved_at = $1, resolved_note = $2 WHERE id = $3 AND ",
            crate::needs_staff!()
        ))
        .bind(db_time(now))
        .bind(note)
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(done > 0)
    }
}

/// Message `id`'s state inside a transaction; `None` when there is no such message.
pub async fn message_state(tx: &mut Tx, id: i64) -> Result<Option<MessageState>> {
    Ok(on_conn!(tx.conn(), |c| {
        sqlx::query(
            "SELECT COALESCE(m.disposition, m.status), COALESCE(s.branch, m.branch), s.version, s.is_latest, s.problems, s.fields,
                    m.needs_staff
             FROM messages m LEFT JOIN submissions s ON s.message_id = m.id WHERE m.id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await?
        .map(|r| MessageState {
            disposition: r.get(0),
            branch: r.get(1),
            version: r.get(2),
            latest: r.get::<Option<bool>, _>(3).unwrap_or(false),
            problems: r.get(4),
            fields: r.get(5),
            needs_staff: r.get(6),
    })
    }))
}

/// The (campaign, kind, branch_key) of the submission message `id` is, if any.
pub async fn submission_keys(tx: &mut Tx, id: i64) -> Result<Vec<(String, String, String)>> {
    Ok(on_conn!(tx.conn(), |c| sqlx::query(
        "SELECT campaign, kind, branch_key FROM submissions WHERE message_id = $1"
    )
    .bind(id)
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()))
}

/// Forgets what processing wrote for message `id` (not the raw mail, not what was sent), so
/// the pipeline takes it up again.
pub async fn forget_processing(tx: &mut Tx, id: i64) -> Result<()> {
    on_conn!(tx.conn(), |c| {
        sqlx::query("DELETE FROM submissions WHERE message_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM attachments WHERE message_id = $1 AND parent_id IS NOT NULL")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM attachments WHERE message_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "UPDATE messages SET status = 'stored', disposition = NULL, reason = NULL, processed_at = NULL,
                    branch = NULL, thread_of = NULL, needs_staff = FALSE, no_answer = NULL, auto_hints = NULL
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// How many mails the outbox holds (to count what a replay queued).
pub async fn outbox_count(tx: &mut Tx) -> Result<usize> {
    let n: i64 = on_conn!(tx.conn(), |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox"
    )
    .fetch_one(c)
    .await?);
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Numbers a branch's submissions of one kind in `campaign` 1, 2, … by arrival and marks the
/// last latest.
pub async fn renumber_versions(tx: &mut Tx, campaign: &str, kind: &str, key: &str) -> Result<()> {
    on_conn!(tx.conn(), |c| {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM submissions WHERE campaign = $3 AND kind = $1 AND branch_key = $2 ORDER BY received_at, message_id",
        )
        .bind(kind)
        .bind(key)
        .bind(campaign)
        .fetch_all(&mut *c)
        .await?;
        // Negative first: UNIQUE (campaign, kind, branch_key, version) holds at every step.
        sqlx::query(
            "UPDATE submissions SET version = -version, is_latest = FALSE WHERE campaign = $3 AND kind = $1 AND branch_key = $2",
        )
        .bind(kind)
        .bind(key)
        .bind(campaign)
        .execute(&mut *c)
        .await?;
        let last = ids.len();
        for (i, id) in ids.iter().enumerate() {
            sqlx::query("UPDATE submissions SET version = $1, is_latest = $2 WHERE id = $3")
                .bind(i as i64 + 1)
                .bind(i + 1 == last)
                .bind(id)
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::attachments::{record_attachments, set_read_errors};
    use super::super::submissions::insert_version;
    use super::super::submissions::testing::{at, message, version};
    use super::*;

    /// A column of message `id`, read by SQL.
    async fn column(store: &Store, sql: &'static str, id: i64) -> Option<String> {
        on_pool!(store, |p| sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(p)
            .await
            .expect("column"))
    }

    /// What a correction reads of messages, and what `assign` and `resolve` write, on both
    /// backends.
    #[tokio::test]
    async fn candidates_assignments_and_resolutions() {
        for store in crate::store::test_stores("corrections").await {
            let store = store.for_campaign("2025-autumn");
            let backend = store.backend();
            // Arrival order: failed (1), application (2), own copy (3), stored (4).
            let failed = message(&store, 1, "failed", None).await;
            let applied = message(&store, 2, "processed", Some("application")).await;
            let own = message(&store, 3, "processed", Some("own_copy")).await;
            let stored = message(&store, 4, "stored", None).await;
            let question = message(&store, 5, "processed", Some("question")).await;
            let mut v = version("?某支部", 1, applied, 2, None);
            v.branch = None;
            v.suggested_branch = Some("第一党支部".into());
            let mut tx = store.begin_write().await.expect("tx");
            insert_version(&mut tx, &v).await.expect("version");
            tx.commit().await.expect("commit");

            let c = store
                .candidate(applied)
                .await
                .expect("read")
                .expect("found");
            assert_eq!(c.status, "processed", "{backend}");
            assert_eq!(c.disposition.as_deref(), Some("application"), "{backend}");
            assert_eq!(c.arrival, crate::store::db_time(at(2)), "{backend}");
            assert_eq!(
                c.suggested_branch.as_deref(),
                Some("第一党支部"),
                "{backend}"
            );
            let c = store.candidate(stored).await.expect("read").expect("found");
            assert_eq!((c.status.as_str(), c.disposition), ("stored", None));
            assert_eq!(c.suggested_branch, None, "{backend}");
            assert!(store.candidate(stored + 100).await.expect("read").is_none());

            assert_eq!(
                store.replayable_ids().await.expect("replayable"),
                [failed, applied, question],
                "{backend}"
            );
            assert_eq!(store.failed_ids().await.expect("failed"), [failed]);
            let _ = own;

            const ASSIGNED: &str = "SELECT assigned_branch FROM messages WHERE id = $1";
            store
                .set_assigned(applied, Some("第一党支部"), "")
                .await
                .expect("assign");
            assert_eq!(
                column(&store, ASSIGNED, applied).await.as_deref(),
                Some("第一党支部"),
                "{backend}"
            );
            // Taking back another assignment leaves this one.
            store
                .set_assigned(applied, None, "第二党支部")
                .await
                .expect("unassign other");
            assert_eq!(
                column(&store, ASSIGNED, applied).await.as_deref(),
                Some("第一党支部"),
                "{backend}"
            );
            store
                .set_assigned(applied, None, "第一党支部")
                .await
                .expect("unassign");
            assert_eq!(column(&store, ASSIGNED, applied).await, None, "{backend}");

            // Only mail waiting for a person is resolved, once.
            let now = at(2000);
            assert!(
                store
                    .resolve(failed, Some("已电话联系"), now)
                    .await
                    .expect("r")
            );
            assert!(!store.resolve(failed, None, now).await.expect("again"));
            assert!(store.resolve(question, None, now).await.expect("question"));
            assert!(
                !store
                    .resolve(applied, None, now)
                    .await
                    .expect("not waiting")
            );
            assert_eq!(
                column(
                    &store,
                    "SELECT resolved_at FROM messages WHERE id = $1",
                    failed
                )
                .await,
                Some(crate::store::db_time(now)),
                "{backend}"
            );
            assert_eq!(
                column(
                    &store,
                    "SELECT resolved_note FROM messages WHERE id = $1",
                    failed
                )
                .await
                .as_deref(),
                Some("已电话联系"),
                "{backend}"
            );
        }
    }

    /// `reprocess` inside one transaction: a message's state and keys, forgetting what
    /// processing wrote (its version and its files, zip entries first), renumbering the
    /// branch's remaining versions, and counting the outbox; on both backends.
    #[tokio::test]
    async fn forgetting_a_version_and_renumbering_the_rest() {
        for store in crate::store::test_stores("corrections_forget").await {
            let store = store.for_campaign("2025-autumn");
            let backend = store.backend();
            let a = "土木工程学院本科生第一党支部";
            let mut ids = Vec::new();
            for n in 1..=3 {
                ids.push(message(&store, n, "processed", Some("application")).await);
            }
            let mut tx = store.begin_write().await.expect("tx");
            for (i, id) in ids.iter().enumerate() {
                let n = i as i64 + 1;
                let fields = (n == 2).then_some(r#"{"section":"党建"}"#);
                insert_version(&mut tx, &version(a, n, *id, n, fields))
                    .await
                    .expect("version");
            }
            let mut zip = crate::message::attachment(
                "材料.zip".into(),
                "application/zip".into(),
                b"zip".to_vec(),
            );
            zip.entries = vec![crate::message::attachment(
                "申请表.docx".into(),
                "application/octet-stream".into(),
                b"docx".to_vec(),
            )];
            record_attachments(&mut tx, ids[1], &[zip], at(0))
                .await
                .expect("attachments");
            set_read_errors(
                &mut tx,
                ids[1],
                &[(crate::store::blobs::sha256_hex(b"docx"), "读不出".into())],
            )
            .await
            .expect("read errors");
            tx.commit().await.expect("commit");

            let mut tx = store.begin_write().await.expect("tx");
            let s = message_state(&mut tx, ids[1])
                .await
                .expect("state")
                .expect("found");
            assert_eq!(s.disposition, "application", "{backend}");
            assert_eq!(s.branch.as_deref(), Some(a), "{backend}");
            assert_eq!((s.version, s.latest), (Some(2), false), "{backend}");
            assert_eq!(s.problems.as_deref(), Some("[]"), "{backend}");
            assert_eq!(s.fields.as_deref(), Some(r#"{"section":"党建"}"#));
            assert!(!s.needs_staff, "{backend}");
            let last = message_state(&mut tx, ids[2])
                .await
                .expect("state")
                .expect("found");
            assert_eq!((last.version, last.latest), (Some(3), true), "{backend}");
            assert!(
                message_state(&mut tx, ids[2] + 100)
                    .await
                    .expect("state")
                    .is_none()
            );
            assert_eq!(
                submission_keys(&mut tx, ids[1]).await.expect("keys"),
                [(
                    "2025-autumn".to_string(),
                    "application".to_string(),
                    a.to_string()
                )],
                "{backend}"
            );
            assert_eq!(outbox_count(&mut tx).await.expect("outbox"), 0, "{backend}");
            on_conn!(tx.conn(), |c| {
                sqlx::query(
                    "INSERT INTO outbox (kind, message_id, to_addr, subject, raw, next_attempt_at, created_at)
                     VALUES ('ack', '<o1@x>', 'a@example.test', '回执', $1, $2, $2)"
                )
                .bind(b"raw".to_vec())
                .bind(crate::store::db_time(at(0)))
                .execute(c)
                .await
                .expect("outbox")
                .rows_affected()
            });
            assert_eq!(outbox_count(&mut tx).await.expect("outbox"), 1, "{backend}");

            forget_processing(&mut tx, ids[1]).await.expect("forget");
            let s = message_state(&mut tx, ids[1])
                .await
                .expect("state")
                .expect("found");
            assert_eq!(s.disposition, "stored", "{backend}");
            assert_eq!((s.branch, s.version, s.latest), (None, None, false));
            assert!(
                submission_keys(&mut tx, ids[1])
                    .await
                    .expect("keys")
                    .is_empty()
            );
            renumber_versions(&mut tx, "2025-autumn", "application", a)
                .await
                .expect("renumber");
            let first = message_state(&mut tx, ids[0])
                .await
                .expect("state")
                .expect("found");
            let last = message_state(&mut tx, ids[2])
                .await
                .expect("state")
                .expect("found");
            assert_eq!((first.version, first.latest), (Some(1), false), "{backend}");
            assert_eq!((last.version, last.latest), (Some(2), true), "{backend}");
            tx.commit().await.expect("commit");
            assert!(store.attachments(ids[1]).await.expect("files").is_empty());
            assert_eq!(
                store.latest_submissions().await.expect("latest")[0].version,
                2,
                "{backend}"
            );
        }
    }
}
