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

/// The addresses that sent `branch`'s earlier versions (message `except` left out): one part
/// of [`version_facts`], kept one by one as the reference its test compares with.
#[cfg(test)]
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
/// answered to the same address ([`identical_acks`]).
#[cfg(test)]
pub struct IdenticalContent<'a> {
    pub kind: &'a str,
    pub branch_key: &'a str,
    pub content_key: &'a str,
    pub to: &'a str,
}

/// How many acknowledgements went out in the window to the same address for earlier versions
/// of the same branch and kind with exactly this content (`message` itself excluded): a loop
/// re-sends one mail from one address; different people sending the same files are not one.
/// One part of [`version_facts`], kept one by one as the reference its test compares with.
#[cfg(test)]
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

/// What deciding a version reads of its branch ([`version_facts`]).
pub struct VersionQuery<'a> {
    pub campaign: &'a str,
    pub kind: &'a str,
    pub branch_key: &'a str,
    /// The roster branch, for its earlier senders.
    pub branch: Option<&'a str>,
    /// The roster branch whose latest version is wanted (`None`: not wanted).
    pub latest_of: Option<&'a str>,
    /// The message being decided, left out.
    pub message: i64,
    /// The content and address whose identical acks are counted (`None`: not counted).
    pub identical: Option<(&'a str, &'a str)>,
    pub since: DateTime<Utc>,
}

/// The answers of [`version_facts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFacts {
    /// The next version number of (campaign, kind, branch key), as
    /// [`crate::store::submissions::next_version`] gives it.
    pub next_version: i64,
    /// The latest version number of `latest_of`'s submissions of the kind, if any.
    pub latest_version: Option<i64>,
    /// The addresses that sent `branch`'s earlier versions (the message left out), sorted.
    pub earlier_senders: Vec<String>,
    /// How many acks went out since `since` to the address of `identical`, for earlier
    /// versions of the same branch and kind with that content (0 when not counted).
    pub identical_acks: i64,
}

/// Everything [`VersionQuery`] asks, in one statement rather than four: each statement is a
/// round trip to the database's thread or server, and these ran for every application
/// (issue 16). Each part is a subquery; a part not wanted gets NULL parameters and finds
/// nothing. The test compares it with the four queries one by one.
pub async fn version_facts(tx: &mut Tx, q: &VersionQuery<'_>) -> Result<VersionFacts> {
    // A separator no address contains, bound as a parameter (the two databases spell a
    // newline literal differently).
    const SEP: &str = "\n";
    let (content_key, to) = q.identical.unzip();
    let (next_version, latest_version, senders, identical_acks): (
        i64,
        Option<i64>,
        Option<String>,
        i64,
    ) = on_conn!(tx.conn(), |c| sqlx::query_as(
        "SELECT
           (SELECT COALESCE(MAX(version), 0) + 1 FROM submissions
              WHERE campaign = $1 AND kind = $2 AND branch_key = $3),
           (SELECT MAX(version) FROM submissions
              WHERE campaign = $1 AND kind = $2 AND branch = $4),
           (SELECT string_agg(sender, $9) FROM
              (SELECT DISTINCT sender FROM submissions WHERE branch = $5 AND message_id != $6) d),
           (SELECT COUNT(*) FROM outbox o JOIN submissions s ON s.message_id = o.related_message
              WHERE s.kind = $2 AND s.branch_key = $3 AND s.content_key = $7 AND s.message_id != $6
                AND o.kind = 'ack' AND o.to_addr = $8 AND o.created_at >= $10)",
    )
    .bind(q.campaign)
    .bind(q.kind)
    .bind(q.branch_key)
    .bind(q.latest_of)
    .bind(q.branch)
    .bind(q.message)
    .bind(content_key)
    .bind(to)
    .bind(SEP)
    .bind(db_time(q.since))
    .fetch_one(c)
    .await?);
    let mut earlier_senders: Vec<String> = senders
        .map(|s| s.split(SEP).map(str::to_string).collect())
        .unwrap_or_default();
    earlier_senders.sort();
    Ok(VersionFacts {
        next_version,
        latest_version,
        earlier_senders,
        identical_acks,
    })
}

/// The latest version number of a branch's submissions of `kind` in `campaign`, if any: one
/// part of [`version_facts`], kept one by one as the reference its test compares with.
#[cfg(test)]
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
        IdenticalContent, VersionFacts, VersionQuery, earlier_senders, identical_acks,
        latest_version, our_mail, recent_answers, version_facts,
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

            // All four in one statement: the answers of the queries one by one.
            let query = |branch, latest_of, message, identical, since| VersionQuery {
                campaign: "default",
                kind: "application",
                branch_key: "k",
                branch,
                latest_of,
                message,
                identical,
                since,
            };
            let facts = version_facts(
                &mut tx,
                &query(
                    Some("支部甲"),
                    Some("支部甲"),
                    m2,
                    Some(("c1", "a@x.test")),
                    two_hours_ago,
                ),
            )
            .await
            .expect("facts");
            assert_eq!(
                facts,
                VersionFacts {
                    next_version: 3,
                    latest_version: Some(2),
                    earlier_senders: vec!["a@x.test".into()],
                    identical_acks: 1,
                },
                "{backend}"
            );
            let m3 = m2 + 1000;
            for q in [
                query(Some("支部甲"), None, m3, None, two_hours_ago),
                query(
                    Some("支部乙"),
                    Some("支部乙"),
                    m1,
                    Some(("c1", "a@x.test")),
                    now,
                ),
                query(None, None, m1, Some(("c1", "a@x.test")), two_hours_ago),
                query(None, None, m2, Some(("c2", "a@x.test")), two_hours_ago),
                query(
                    Some("支部甲"),
                    Some("支部甲"),
                    m1,
                    Some(("c1", "b@x.test")),
                    now,
                ),
            ] {
                let mut senders = match q.branch {
                    Some(b) => earlier_senders(&mut tx, b, q.message)
                        .await
                        .expect("senders"),
                    None => Vec::new(),
                };
                senders.sort();
                let one_by_one = VersionFacts {
                    next_version: crate::store::submissions::next_version(
                        &mut tx,
                        q.campaign,
                        q.kind,
                        q.branch_key,
                    )
                    .await
                    .expect("next"),
                    latest_version: match q.latest_of {
                        Some(b) => latest_version(&mut tx, q.campaign, q.kind, b)
                            .await
                            .expect("latest"),
                        None => None,
                    },
                    earlier_senders: senders,
                    identical_acks: match q.identical {
                        Some((content_key, to)) => identical_acks(
                            &mut tx,
                            IdenticalContent {
                                kind: q.kind,
                                branch_key: q.branch_key,
                                content_key,
                                to,
                            },
                            q.message,
                            q.since,
                        )
                        .await
                        .expect("acks"),
                        None => 0,
                    },
                };
                assert_eq!(
                    version_facts(&mut tx, &q).await.expect("facts"),
                    one_by_one,
                    "{backend}: {:?} {:?} {} {:?}",
                    q.branch,
                    q.latest_of,
                    q.message,
                    q.identical
                );
            }
            // Both senders, when neither is the message left out.
            assert_eq!(
                version_facts(&mut tx, &query(Some("支部甲"), None, m3, None, now))
                    .await
                    .expect("facts")
                    .earlier_senders,
                ["a@x.test", "b@x.test"],
                "{backend}"
            );
            tx.rollback().await.expect("rollback");
        }
    }
}
