//! The `ledger` table: every scheduled mail (reminder, digest, review result) recorded once
//! under its key, sent or skipped with the reason, in the transaction that queues it, so a
//! restart, a second daemon or a clock jump never sends it twice. Keys are a campaign's own
//! (the primary key is `(campaign, key)`): next semester's result mail to the same branch at
//! the same level is a new one. The reads ask the store's campaign ([`Store::for_campaign`]).

use super::{Result, Store, Tx};
use super::{db_time, parse_db_time};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A reminder row of the ledger, as [`crate::schedule::remind::decide`] needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    pub key: String,
    /// `None` for rows written before reminders went per branch (keyed by address).
    pub branch: Option<String>,
    pub recipient: String,
    pub deadline: Option<DateTime<Utc>>,
    pub offset_secs: Option<i64>,
    /// The row records a skip (nothing was sent).
    pub skipped: bool,
}

/// A ledger row to write: what was planned under `key`.
#[derive(Debug, Clone, Copy)]
pub struct LedgerEntry<'a> {
    pub key: &'a str,
    /// `reminder`, `digest`, `result` …
    pub kind: &'a str,
    pub rule: &'a str,
    /// The address it goes to (empty for a skip).
    pub recipient: &'a str,
    pub branch: Option<&'a str>,
    /// Digests: the end of the period it covers.
    pub period_end: Option<DateTime<Utc>>,
    /// Reminders: the deadline and the offset before it.
    pub deadline: Option<DateTime<Utc>>,
    pub offset_secs: Option<i64>,
    /// Why nothing was sent, when nothing was.
    pub skipped: Option<&'a str>,
    /// The campaign it is for.
    pub campaign: &'a str,
}

impl Store {
    /// Whether `key` is in the ledger.
    pub async fn in_ledger(&self, key: &str) -> Result<bool> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM ledger WHERE campaign = $2 AND key = $1"
        )
        .bind(key)
        .bind(self.campaign())
        .fetch_one(p)
        .await?);
        Ok(n > 0)
    }

    /// When `key` was recorded, if it was.
    pub async fn ledger_recorded_at(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT created_at FROM ledger WHERE campaign = $2 AND key = $1"
        )
        .bind(key)
        .bind(self.campaign())
        .fetch_optional(p)
        .await?);
        Ok(at.map(|t| parse_db_time(&t).unwrap_or_default()))
    }

    /// The reminder rows of `rule`.
    pub async fn reminder_rows(&self, rule: &str) -> Result<Vec<LedgerRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
            "SELECT key, branch, recipient, deadline, offset_secs, skipped IS NOT NULL FROM ledger WHERE campaign = $2 AND kind = 'reminder' AND rule = $1",
        )
        .bind(rule)
        .bind(self.campaign())
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| LedgerRow {
            key: r.get(0),
            branch: r.get(1),
            recipient: r.get(2),
            deadline: r.get::<Option<String>, _>(3).as_deref().and_then(parse_db_time),
            offset_secs: r.get(4),
            skipped: r.get(5),
        })
        .collect()
        }))
    }

    /// The end of the last period a digest of `rule` covered.
    pub async fn last_digest(&self, rule: &str) -> Result<Option<DateTime<Utc>>> {
        let v: Option<String> = on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT MAX(period_end) FROM ledger WHERE campaign = $2 AND kind = 'digest' AND rule = $1",
        )
        .bind(rule)
        .bind(self.campaign())
        .fetch_one(p)
        .await?
        });
        Ok(v.as_deref().and_then(parse_db_time))
    }

    /// How many mails to `branch` were recorded as skipped.
    pub async fn skipped_for(&self, branch: &str) -> Result<i64> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT COUNT(*) FROM ledger WHERE campaign = $2 AND branch = $1 AND skipped IS NOT NULL",
        )
        .bind(branch)
        .bind(self.campaign())
        .fetch_one(p)
        .await?
        }))
    }
}

/// Records `entry` inside the caller's transaction; `false` when its key is in the ledger
/// already (another daemon was quicker): nothing was written.
pub async fn record(tx: &mut Tx, entry: &LedgerEntry<'_>, now: DateTime<Utc>) -> Result<bool> {
    let inserted = on_conn!(tx.conn(), |c| {
        sqlx::query(
        "INSERT INTO ledger (key, kind, rule, recipient, branch, period_end, deadline, offset_secs, skipped, created_at, campaign) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT DO NOTHING",
    )
    .bind(entry.key)
    .bind(entry.kind)
    .bind(entry.rule)
    .bind(entry.recipient)
    .bind(entry.branch)
    .bind(entry.period_end.map(db_time))
    .bind(entry.deadline.map(db_time))
    .bind(entry.offset_secs)
    .bind(entry.skipped)
    .bind(db_time(now))
    .bind(entry.campaign)
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(inserted == 1)
}

/// Names the outbox mail queued for `key` of `campaign`.
pub async fn set_outbox(tx: &mut Tx, campaign: &str, key: &str, outbox_id: i64) -> Result<()> {
    on_conn!(tx.conn(), |c| sqlx::query(
        "UPDATE ledger SET outbox_id = $1 WHERE campaign = $3 AND key = $2"
    )
    .bind(outbox_id)
    .bind(key)
    .bind(campaign)
    .execute(c)
    .await?
    .rows_affected());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{LedgerEntry, record};
    use chrono::{TimeZone as _, Utc};

    /// A key is recorded once: the second daemon's `record` writes nothing; the reminder rows,
    /// the last digest and the skips read back what was written. On both backends.
    #[tokio::test]
    async fn a_key_is_recorded_once_and_read_back() {
        for store in super::super::test_stores("ledger").await {
            let store = store.for_campaign("2025-autumn");
            let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            let deadline = Utc.with_ymd_and_hms(2025, 9, 27, 15, 59, 59).unwrap();
            let entry = LedgerEntry {
                key: "remind:r:x",
                kind: "reminder",
                rule: "r",
                recipient: "a@example.test",
                branch: Some("支部甲"),
                period_end: None,
                deadline: Some(deadline),
                offset_secs: Some(86_400),
                skipped: None,
                campaign: "2025-autumn",
            };
            let skip = LedgerEntry {
                key: "remind:r:y",
                recipient: "",
                branch: Some("支部乙"),
                skipped: Some("已申报"),
                ..entry
            };
            let digest = LedgerEntry {
                key: "digest:d:1",
                kind: "digest",
                rule: "d",
                branch: None,
                period_end: Some(now),
                deadline: None,
                offset_secs: None,
                ..entry
            };
            let mut tx = store.begin_write().await.expect("begin");
            assert!(record(&mut tx, &entry, now).await.expect("record"));
            assert!(!record(&mut tx, &entry, now).await.expect("again"));
            assert!(record(&mut tx, &skip, now).await.expect("skip"));
            assert!(record(&mut tx, &digest, now).await.expect("digest"));
            // The same key in next semester's campaign is that campaign's own.
            let spring = LedgerEntry {
                campaign: "2026-spring",
                key: "digest:d:1",
                ..digest
            };
            assert!(record(&mut tx, &spring, now).await.expect("spring"));
            assert!(!record(&mut tx, &spring, now).await.expect("spring again"));
            tx.commit().await.expect("commit");
            let backend = store.backend();
            let spring_store = store.for_campaign("2026-spring");
            assert!(
                spring_store.in_ledger("digest:d:1").await.expect("in"),
                "{backend}"
            );
            assert!(
                !spring_store.in_ledger("remind:r:x").await.expect("in"),
                "{backend}: another campaign's key"
            );
            assert!(
                store.in_ledger("remind:r:x").await.expect("in"),
                "{backend}"
            );
            assert!(
                !store.in_ledger("remind:r:z").await.expect("in"),
                "{backend}"
            );
            assert_eq!(
                store.ledger_recorded_at("remind:r:x").await.expect("at"),
                Some(now),
                "{backend}"
            );
            let mut rows = store.reminder_rows("r").await.expect("rows");
            rows.sort_by(|a, b| a.key.cmp(&b.key));
            assert_eq!(rows.len(), 2, "{backend}");
            assert_eq!(rows[0].deadline, Some(deadline), "{backend}");
            assert_eq!(rows[0].offset_secs, Some(86_400), "{backend}");
            assert!(!rows[0].skipped && rows[1].skipped, "{backend}");
            assert_eq!(store.last_digest("d").await.expect("digest"), Some(now));
            assert_eq!(store.skipped_for("支部乙").await.expect("skips"), 1);
            assert_eq!(store.skipped_for("支部甲").await.expect("skips"), 0);
            assert_eq!(
                crate::store::test_campaigns(&store, "ledger", "TRUE").await,
                ["2025-autumn", "2025-autumn", "2025-autumn", "2026-spring"],
                "{backend}: each row carries its campaign"
            );
        }
    }
}
