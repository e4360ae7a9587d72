//! The SQL of a message's processing (see `crate::pipeline`): whether it still waits to be
//! processed, the disposition recorded for it, and a failure. (The review a closure mail is
//! checked against is read by [`super::reviews::current_level`].)
//!
//! Not pure: SQL.

use super::{Result, Store, Tx};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// A message still in the `stored` state, as processing reads it first.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The branch staff assigned it to (`shenbao assign`).
    pub assigned: Option<String>,
}

/// Message `id` if it is still `stored` (not yet processed); `None` when it is unknown or
/// already processed.
pub async fn pending(tx: &mut Tx, id: i64) -> Result<Option<Pending>> {
    let row: Option<(String, Option<String>)> = on_conn!(tx.conn(), |c| sqlx::query(
        "SELECT status, assigned_branch FROM messages WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await?
    .map(|r| (r.get(0), r.get(1))));
    Ok(row
        .filter(|(status, _)| status == "stored")
        .map(|(_, assigned)| Pending { assigned }))
}

/// [`pending`] for a group of messages in one statement per 500 (a round trip per statement
/// was the largest cost in issue 16's profile): the ids still `stored`, with the branch staff
/// assigned them. Read inside the write transaction that then records them, so nothing
/// changes in between.
pub async fn pending_many(tx: &mut Tx, ids: &[i64]) -> Result<HashMap<i64, Pending>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        // Built at run time: one `$n` per id; run on both backends by the tests.
        let sql = format!(
            "SELECT id, status, assigned_branch FROM messages WHERE id IN ({})",
            super::params(1..=chunk.len())
        );
        let rows: Vec<(i64, String, Option<String>)> = on_conn!(tx.conn(), |c| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(c).await?
        });
        out.extend(
            rows.into_iter()
                .filter(|(_, status, _)| status == "stored")
                .map(|(id, _, assigned)| (id, Pending { assigned })),
        );
    }
    Ok(out)
}

/// What processing records on the message itself.
#[derive(Debug, Clone)]
pub struct Processed {
    pub id: i64,
    /// `application`, `closure`, `reply` …
    pub disposition: &'static str,
    pub reason: String,
    pub subject: String,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    /// The sender's Message-ID, kept unless one is already recorded.
    pub message_id: Option<String>,
    pub processed_at: DateTime<Utc>,
    pub branch: Option<String>,
    /// The Message-ID of our mail it answers.
    pub thread_of: Option<String>,
    pub needs_staff: bool,
    pub no_answer: Option<String>,
    /// The weak automatic signals, as JSON.
    pub auto_hints: Option<String>,
    /// The campaign the mail belongs to ([`crate::campaign::calendar::select`]).
    pub campaign: String,
}

/// Marks a message `processed` with its disposition.
pub async fn record_processed(tx: &mut Tx, p: &Processed) -> Result<()> {
    on_conn!(tx.conn(), |c| {
        sqlx::query(
        "UPDATE messages SET status = 'processed', disposition = $1, reason = $2, subject = $3, from_addr = $4, from_name = $5, message_id = COALESCE(message_id, $6), processed_at = $7,
                             branch = $8, thread_of = $9, needs_staff = $10, no_answer = $11, auto_hints = $12, campaign = $13
         WHERE id = $14",
    )
    .bind(p.disposition)
    .bind(&p.reason)
    .bind(&p.subject)
    .bind(&p.from_addr)
    .bind(&p.from_name)
    .bind(&p.message_id)
    .bind(db_time(p.processed_at))
    .bind(&p.branch)
    .bind(&p.thread_of)
    .bind(p.needs_staff)
    .bind(&p.no_answer)
    .bind(&p.auto_hints)
    .bind(&p.campaign)
    .bind(p.id)
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(())
}

impl Store {
    /// Marks a message that is still `stored` as `failed`, with the reason for staff and the
    /// campaign it is filed under (its subject was not read to the end: the current one).
    pub async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        campaign: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
            "UPDATE messages SET status = 'failed', reason = $1, processed_at = $2, campaign = $3 WHERE id = $4 AND status = 'stored'"
        )
        .bind(format!("处理失败：{error}"))
        .bind(db_time(now))
        .bind(campaign)
        .bind(id)
        .execute(p)
        .await?
        .rows_affected()
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Processed, pending, pending_many, record_processed};
    use chrono::{Duration, TimeZone as _, Utc};

    /// A stored message is pending (with the branch staff assigned) until its disposition is
    /// recorded, which the message's record then shows; a failure is recorded only on a
    /// message still `stored`. On both backends.
    #[tokio::test]
    async fn a_message_is_pending_until_processed_or_failed() {
        for store in super::super::test_stores("register").await {
            let backend = store.backend();
            let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            let raw: &[u8] = b"Message-ID: <q@t>\r\nSubject: x\r\n\r\nbody";
            let id = store
                .insert_file_message(raw, None, now)
                .await
                .expect("insert")
                .id();
            let other = store
                .insert_file_message(b"Subject: y\r\n\r\nother", None, now)
                .await
                .expect("insert")
                .id();
            on_pool!(store, |p| sqlx::query(
                "UPDATE messages SET assigned_branch = $1 WHERE id = $2"
            )
            .bind("支部甲")
            .bind(id)
            .execute(p)
            .await
            .expect("assign")
            .rows_affected());

            let mut tx = store.begin_write().await.expect("begin");
            let p = pending(&mut tx, id)
                .await
                .expect("pending")
                .expect("stored");
            assert_eq!(p.assigned.as_deref(), Some("支部甲"), "{backend}");
            let p = pending(&mut tx, other)
                .await
                .expect("pending")
                .expect("stored");
            assert_eq!(p.assigned, None, "{backend}");
            assert!(pending(&mut tx, 9999).await.expect("pending").is_none());
            let many = pending_many(&mut tx, &[id, 9999, other])
                .await
                .expect("pending_many");
            assert_eq!(many.len(), 2, "{backend}: the unknown id is left out");
            assert_eq!(many[&id].assigned.as_deref(), Some("支部甲"), "{backend}");
            assert_eq!(many[&other].assigned, None, "{backend}");
            let later = now + Duration::minutes(1);
            record_processed(
                &mut tx,
                &Processed {
                    id,
                    disposition: "question",
                    reason: "正文是提问".into(),
                    subject: "请问截止时间".into(),
                    from_addr: Some("a@b.test".into()),
                    from_name: Some("张三".into()),
                    message_id: Some("other@t".into()),
                    processed_at: later,
                    branch: Some("支部甲".into()),
                    thread_of: None,
                    needs_staff: true,
                    no_answer: Some("提问由人工答复".into()),
                    auto_hints: None,
                    campaign: "2026-spring".to_string(),
                },
            )
            .await
            .expect("record");
            assert!(
                pending(&mut tx, id).await.expect("pending").is_none(),
                "{backend}: processed is no longer pending"
            );
            let many = pending_many(&mut tx, &[id, other]).await.expect("many");
            assert!(
                !many.contains_key(&id) && many.contains_key(&other),
                "{backend}"
            );
            tx.commit().await.expect("commit");

            let r = store.message_record(id).await.expect("read").expect("row");
            assert_eq!(
                (r.status.as_str(), r.disposition.as_str(), r.reason.as_str()),
                ("processed", "question", "正文是提问"),
                "{backend}"
            );
            assert_eq!(
                (r.subject.as_str(), r.from.as_str(), r.branch.as_deref()),
                ("请问截止时间", "a@b.test", Some("支部甲"))
            );
            assert!(r.waits_for_staff, "{backend}");
            assert_eq!(r.no_answer.as_deref(), Some("提问由人工答复"));
            // The Message-ID read at storing is kept.
            assert!(store.has_message_id("q@t").await.expect("has"));
            assert!(!store.has_message_id("other@t").await.expect("has"));

            store
                .mark_failed(id, "不会发生", "default", later)
                .await
                .expect("failed");
            let r = store.message_record(id).await.expect("read").expect("row");
            assert_eq!(
                r.status, "processed",
                "{backend}: only a stored message fails"
            );
            store
                .mark_failed(other, "附件损坏", "2025-autumn", later)
                .await
                .expect("failed");
            assert_eq!(
                crate::store::test_campaigns(&store, "messages", &format!("id = {id}")).await,
                ["2026-spring"],
                "{backend}: processing files the mail under its campaign"
            );
            assert_eq!(
                crate::store::test_campaigns(&store, "messages", &format!("id = {other}")).await,
                ["2025-autumn"],
                "{backend}: so does a failure"
            );
            let r = store
                .message_record(other)
                .await
                .expect("read")
                .expect("row");
            assert_eq!(
                (r.status.as_str(), r.disposition.as_str(), r.reason.as_str()),
                ("failed", "failed", "处理失败：附件损坏"),
                "{backend}"
            );
            assert!(r.waits_for_staff, "{backend}: a failure waits for staff");
            assert!(store.pending().await.expect("pending").is_empty());
        }
    }
}
