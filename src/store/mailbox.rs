//! The `mailbox_state` table: the IMAP watermark of each folder (UIDVALIDITY and the last
//! UID committed), which only moves forward unless staff ask for a backfill.

use super::{Conn, ImapKey, Pool, Result, Store};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::Row;

impl Store {
    /// The watermark of a folder: (UIDVALIDITY, last committed UID).
    pub async fn mailbox_state(&self, account: &str, folder: &str) -> Result<Option<(u32, u32)>> {
        let row: Option<(i64, i64)> = on_pool!(self, |p| {
            sqlx::query(
            "SELECT uidvalidity, last_uid FROM mailbox_state WHERE account = $1 AND folder = $2",
        )
        .bind(account)
        .bind(folder)
        .fetch_optional(p)
        .await?
        .map(|r| (r.get(0), r.get(1)))
        });
        Ok(row.map(|(v, u)| (u32::try_from(v).unwrap_or(0), u32::try_from(u).unwrap_or(0))))
    }

    pub async fn set_mailbox_state(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let key = ImapKey {
            account: account.to_string(),
            folder: folder.to_string(),
            uidvalidity,
            uid: last_uid,
        };
        match &self.pool {
            Pool::Sqlite(p) => {
                set_watermark(Conn::Sqlite(&mut *p.acquire().await?), &key, now).await
            }
            Pool::Postgres(p) => {
                set_watermark(Conn::Postgres(&mut *p.acquire().await?), &key, now).await
            }
        }
    }

    /// Lowers the watermark of a folder to `last_uid` (`--backfill-since` on a later start),
    /// which [`Store::set_mailbox_state`] never does: the folder is read again from there, and
    /// mail already stored is recognised as such.
    pub async fn rewind_mailbox_state(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
            "UPDATE mailbox_state SET last_uid = $1, updated_at = $2 WHERE account = $3 AND folder = $4 AND uidvalidity = $5 AND last_uid > $6",
        )
        .bind(i64::from(last_uid))
        .bind(db_time(now))
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(last_uid))
        .execute(p)
        .await?
        .rows_affected()
        });
        Ok(())
    }

    /// Every folder's watermark: (account, folder, UIDVALIDITY, last UID), for `status`.
    pub async fn watermarks(&self) -> Result<Vec<(String, String, i64, i64)>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT account, folder, uidvalidity, last_uid FROM mailbox_state ORDER BY 1, 2",
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()))
    }
}

/// Moves the watermark of `key`'s folder to `key.uid` (never backwards within one UIDVALIDITY).
pub(super) async fn set_watermark(conn: Conn<'_>, key: &ImapKey, now: DateTime<Utc>) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query(
        "INSERT INTO mailbox_state (account, folder, uidvalidity, last_uid, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account, folder) DO UPDATE SET
           last_uid = CASE WHEN mailbox_state.uidvalidity = excluded.uidvalidity AND mailbox_state.last_uid > excluded.last_uid
                           THEN mailbox_state.last_uid ELSE excluded.last_uid END,
           uidvalidity = excluded.uidvalidity,
           updated_at = excluded.updated_at",
    )
    .bind(&key.account)
    .bind(&key.folder)
    .bind(i64::from(key.uidvalidity))
    .bind(i64::from(key.uid))
    .bind(db_time(now))
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};

    /// The watermark moves forward only within one UIDVALIDITY, starts over with a new one,
    /// goes back only when rewound (and never up by a rewind), and `watermarks` lists every
    /// folder. On both backends.
    #[tokio::test]
    async fn a_watermark_moves_forward_unless_rewound() {
        for store in super::super::test_stores("mailbox").await {
            let backend = store.backend();
            let now = Utc.with_ymd_and_hms(2025, 9, 20, 1, 0, 0).unwrap();
            assert_eq!(store.mailbox_state("a", "INBOX").await.expect("read"), None);
            store
                .set_mailbox_state("a", "INBOX", 7, 10, now)
                .await
                .expect("set");
            assert_eq!(
                store.mailbox_state("a", "INBOX").await.expect("read"),
                Some((7, 10)),
                "{backend}"
            );
            store
                .set_mailbox_state("a", "INBOX", 7, 4, now)
                .await
                .expect("set lower");
            assert_eq!(
                store.mailbox_state("a", "INBOX").await.expect("read"),
                Some((7, 10)),
                "{backend}: not backwards within one UIDVALIDITY"
            );
            store
                .set_mailbox_state("a", "INBOX", 8, 3, now)
                .await
                .expect("new uidvalidity");
            assert_eq!(
                store.mailbox_state("a", "INBOX").await.expect("read"),
                Some((8, 3)),
                "{backend}: a new UIDVALIDITY starts over"
            );
            store
                .set_mailbox_state("a", "INBOX", 8, 20, now)
                .await
                .expect("forward");
            store
                .rewind_mailbox_state("a", "INBOX", 8, 25, now)
                .await
                .expect("rewind up");
            store
                .rewind_mailbox_state("a", "INBOX", 7, 1, now)
                .await
                .expect("rewind other uidvalidity");
            assert_eq!(
                store.mailbox_state("a", "INBOX").await.expect("read"),
                Some((8, 20)),
                "{backend}: a rewind never raises, nor touches another UIDVALIDITY"
            );
            store
                .rewind_mailbox_state("a", "INBOX", 8, 5, now)
                .await
                .expect("rewind");
            assert_eq!(
                store.mailbox_state("a", "INBOX").await.expect("read"),
                Some((8, 5)),
                "{backend}"
            );
            store
                .set_mailbox_state("a", "Archive", 2, 9, now)
                .await
                .expect("set");
            assert_eq!(
                store.watermarks().await.expect("list"),
                [
                    ("a".to_string(), "Archive".to_string(), 2, 9),
                    ("a".to_string(), "INBOX".to_string(), 8, 5)
                ],
                "{backend}"
            );
        }
    }
}
