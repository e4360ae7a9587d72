//! The SQL of conversations and loop protection (see `crate::campaign::conversation` and the
//! pipeline): which of our mails a reply answers, a branch's earlier senders and latest
//! version, how often identical content was acknowledged.

use super::{Result, Tx};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A mail of ours, as the outbox remembers it.
#[derive(Debug, Clone)]
pub struct OurMail {
    /// `ack`, `reminder`, `result` …
    pub kind: String,
    /// The branch it was about (recorded with it, or the submission it answered).
    pub branch: Option<String>,
    /// `application` or `closure` when it answered a submission.
    pub submission_kind: Option<String>,
    pub subject: String,
}

/// The mail we sent with this Message-ID (without <>), if it is ours.
pub async fn our_mail(tx: &mut Tx, message_id: &str) -> Result<Option<OurMail>> {
    Ok(on_conn!(tx.conn(), |c| sqlx::query(
        "SELECT o.kind, COALESCE(o.branch, s.branch), s.kind, o.subject FROM outbox o
         LEFT JOIN submissions s ON s.message_id = o.related_message
         WHERE o.message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(c)
    .await?
    .map(|r| OurMail {
        kind: r.get(0),
        branch: r.get(1),
        submission_kind: r.get(2),
        subject: r.get(3),
    })))
}

/// The addresses that sent `branch`'s earlier versions (message `except` left out).
pub async fn earlier_senders(tx: &mut Tx, branch: &str, except: i64) -> Result<Vec<String>> {
    Ok(on_conn!(tx.conn(), |c| sqlx::query_scalar(
        "SELECT DISTINCT sender FROM submissions WHERE branch = $1 AND message_id != $2",
    )
    .bind(branch)
    .bind(except)
    .fetch_all(c)
    .await?))
}

/// A version's content as loop protection sees it: the same files for the same branch,
/// answered to the same address.
pub struct IdenticalContent<'a> {
    pub kind: &'a str,
    pub branch_key: &'a str,
    pub content_key: &'a str,
    pub to: &'a str,
}

/// How many acknowledgements went out in the window to the same address for earlier versions
/// of the same branch and kind with exactly this content (`message` itself excluded): a loop
/// re-sends one mail from one address; different people sending the same files are not one.
pub async fn identical_acks(
    tx: &mut Tx,
    c: IdenticalContent<'_>,
    message: i64,
    since: DateTime<Utc>,
) -> Result<i64> {
    Ok(on_conn!(tx.conn(), |conn| sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox o JOIN submissions s ON s.message_id = o.related_message
         WHERE s.kind = $1 AND s.branch_key = $2 AND s.content_key = $3 AND s.message_id != $4
           AND o.kind = 'ack' AND o.to_addr = $5 AND o.created_at >= $6",
    )
    .bind(c.kind)
    .bind(c.branch_key)
    .bind(c.content_key)
    .bind(message)
    .bind(c.to)
    .bind(db_time(since))
    .fetch_one(conn)
    .await?))
}

/// The latest version number of a branch's submissions of `kind` in `campaign`, if any.
pub async fn latest_version(
    tx: &mut Tx,
    campaign: &str,
    kind: &str,
    branch: &str,
) -> Result<Option<i64>> {
    Ok(on_conn!(tx.conn(), |c| sqlx::query_scalar(
        "SELECT MAX(version) FROM submissions WHERE campaign = $3 AND kind = $1 AND branch = $2"
    )
    .bind(kind)
    .bind(branch)
    .bind(campaign)
    .fetch_one(c)
    .await?))
}

/// How many automatic mails of `kind_like` (an SQL `LIKE` pattern: `subject_help`,
/// `no_materials`) went to `to` since `since`: the cap on notes to one address.
pub async fn recent_answers(
    tx: &mut Tx,
    to: &str,
    kind_like: &str,
    since: DateTime<Utc>,
) -> Result<i64> {
    Ok(on_conn!(tx.conn(), |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE to_addr = $1 AND kind LIKE $2 AND created_at >= $3",
    )
    .bind(to)
    .bind(kind_like)
    .bind(db_time(since))
    .fetch_one(c)
    .await?))
}

#[cfg(test)]
mod tests {
    use super::{
        IdenticalContent, earlier_senders, identical_acks, latest_version, our_mail, recent_answers,
    };
    use crate::store::{Store, db_time};
    use chrono::{DateTime, Duration, TimeZone as _, Utc};

    /// A submission of message `message` (`application`, key `k`).
    async fn submission(
        store: &Store,
        message: i64,
        version: i64,
        sender: &str,
        now: DateTime<Utc>,
    ) {
        on_pool!(store, |p| {
            sqlx::query(
            "INSERT INTO submissions (kind, branch_key, branch, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at, content_key)
             VALUES ('application', 'k', '支部甲', 'exact', $1, '名单', $2, $3, $4, $5, $6, $7, '[]', $6, 'c1')",
        )
        .bind(1.0_f64)
        .bind(version)
        .bind(false)
        .bind(message)
        .bind(sender)
        .bind(db_time(now))
        .bind(false)
        .execute(p)
        .await
        .expect("submission")
        .rows_affected()
        });
    }

    /// One of our mails in the outbox.
    async fn ours(
        store: &Store,
        (kind, message_id, related, to, branch): (&str, &str, Option<i64>, &str, Option<&str>),
        at: DateTime<Utc>,
    ) {
        on_pool!(store, |p| {
            sqlx::query(
            "INSERT INTO outbox (kind, message_id, related_message, to_addr, subject, raw, next_attempt_at, created_at, branch)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
        )
        .bind(kind)
        .bind(message_id)
        .bind(related)
        .bind(to)
        .bind(format!("主题 {message_id}"))
        .bind(b"raw".to_vec())
        .bind(db_time(at))
        .bind(branch)
        .execute(p)
        .await
        .expect("outbox")
        .rows_affected()
        });
    }

    /// What conversations and loop protection read, on both backends: our mail a reply
    /// answers (with the branch of the submission it acknowledged), a branch's earlier
    /// senders and latest version, identical acknowledgements and recent notes in a window.
    #[tokio::test]
    async fn conversations_read_our_mail_and_a_branchs_history() {
        for store in crate::store::test_stores("threads").await {
            let backend = store.backend();
            let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            let mut ids = Vec::new();
            for body in ["one", "two"] {
                let raw = format!("Subject: {body}\r\n\r\n{body}");
                ids.push(
                    store
                        .insert_file_message(raw.as_bytes(), None, now)
                        .await
                        .expect("insert")
                        .id(),
                );
            }
            let (m1, m2) = (ids[0], ids[1]);
            submission(&store, m1, 1, "a@x.test", now).await;
            submission(&store, m2, 2, "b@x.test", now).await;
            let hour_ago = now - Duration::hours(1);
            ours(
                &store,
                ("ack", "ack1@us", Some(m1), "a@x.test", None),
                hour_ago,
            )
            .await;
            ours(
                &store,
                ("reminder", "rem@us", None, "c@x.test", Some("支部乙")),
                hour_ago,
            )
            .await;
            ours(
                &store,
                ("subject_help", "help@us", None, "a@x.test", None),
                now,
            )
            .await;

            let mut tx = store.begin_write().await.expect("begin");
            let ack = our_mail(&mut tx, "ack1@us")
                .await
                .expect("read")
                .expect("ours");
            assert_eq!(
                (
                    ack.kind.as_str(),
                    ack.branch.as_deref(),
                    ack.submission_kind.as_deref()
                ),
                ("ack", Some("支部甲"), Some("application")),
                "{backend}"
            );
            assert_eq!(ack.subject, "主题 ack1@us");
            let rem = our_mail(&mut tx, "rem@us")
                .await
                .expect("read")
                .expect("ours");
            assert_eq!(
                (rem.branch.as_deref(), rem.submission_kind),
                (Some("支部乙"), None),
                "{backend}"
            );
            assert!(our_mail(&mut tx, "nope@us").await.expect("read").is_none());

            assert_eq!(
                earlier_senders(&mut tx, "支部甲", m2)
                    .await
                    .expect("senders"),
                ["a@x.test"],
                "{backend}"
            );
            assert!(
                earlier_senders(&mut tx, "支部乙", m2)
                    .await
                    .expect("senders")
                    .is_empty()
            );
            assert_eq!(
                latest_version(&mut tx, "default", "application", "支部甲")
                    .await
                    .expect("latest"),
                Some(2),
                "{backend}"
            );
            assert_eq!(
                latest_version(&mut tx, "default", "closure", "支部甲")
                    .await
                    .expect("latest"),
                None,
                "{backend}"
            );

            let content = |to| IdenticalContent {
                kind: "application",
                branch_key: "k",
                content_key: "c1",
                to,
            };
            let two_hours_ago = now - Duration::hours(2);
            assert_eq!(
                identical_acks(&mut tx, content("a@x.test"), m2, two_hours_ago)
                    .await
                    .expect("acks"),
                1,
                "{backend}"
            );
            assert_eq!(
                identical_acks(&mut tx, content("a@x.test"), m2, now)
                    .await
                    .expect("acks"),
                0,
                "{backend}: outside the window"
            );
            assert_eq!(
                identical_acks(&mut tx, content("b@x.test"), m2, two_hours_ago)
                    .await
                    .expect("acks"),
                0,
                "{backend}: another address"
            );
            assert_eq!(
                identical_acks(&mut tx, content("a@x.test"), m1, two_hours_ago)
                    .await
                    .expect("acks"),
                0,
                "{backend}: the message itself is left out"
            );

            assert_eq!(
                recent_answers(&mut tx, "a@x.test", "subject%", two_hours_ago)
                    .await
                    .expect("recent"),
                1,
                "{backend}"
            );
            assert_eq!(
                recent_answers(&mut tx, "a@x.test", "%", two_hours_ago)
                    .await
                    .expect("recent"),
                2,
                "{backend}"
            );
            assert_eq!(
                recent_answers(&mut tx, "a@x.test", "%", now - Duration::minutes(1))
                    .await
                    .expect("recent"),
                1,
                "{backend}"
            );
            assert_eq!(
                recent_answers(&mut tx, "b@x.test", "%", two_hours_ago)
                    .await
                    .expect("recent"),
                0
            );
            tx.rollback().await.expect("rollback");
        }
    }
}
